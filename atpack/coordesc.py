"""Replaying coordinate-descent results that torch saves and then re-tunes anyway.

With ``coordinate_descent_tuning`` on (max-autotune turns it on), Inductor saves the config
coordinate descent found in the kernel's ``.best_config`` file, marked
``"found_by_coordesc": true``, and reads it back on a warm start. Between that read and the
kernel's first launch, torch 2.8 to 2.13 can lose the mark: a kernel restored from the FX graph
cache re-picks the equal config object from its compile results (`recheck_autotune_cache`), and
a config pickled back from a compile worker keeps only Triton's own fields. The launch then runs
coordinate descent again, starting from the winner it already had: on an H100 training step, up
to 9 + 35 benchmark calls from a hot cache (`tools/results/gpu_e2e.md`) for results on disk.

`install()` wraps `CachingAutotuner.coordinate_descent_tuning`: when the kernel's
``.best_config`` says coordinate descent already ran for it, the launcher is returned as it is,
which is what torch meant to do (a kernel restored from the FX graph cache may hold the result
its graph was saved with rather than the file's latest, an equally tuned config). It also wraps
`autotune_to_one_config`, which torch reaches on a hit when it re-adds candidates (a reduction
whose recorded config spills registers gets smaller-block variants): when the recorded winner is
among the candidates, it is kept without benchmarking, and without saving over the record.

And it wraps `check_autotune_cache`, Inductor's lookup of a kernel's record. A kernel restored
from the FX graph cache (a statically launched autotuner) carries the absolute path it was
compiled at, on the machine that compiled it, and torch looks for its record beside that path.
Where that is outside this process's Inductor folder (the capturing machine's folder had another
path: the default one names the user), the record is not there and the kernel tunes from
scratch: 51 autotuning and 97 coordinate-descent benchmark calls in the H100 training step of
`tools/results/gpu_e2e_paths.md`, loaded from Megacache. The replay looks in this process's
folder instead, at the same place relative to it, where a pack put the record.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["KNOWN_TORCH", "best_config_path", "install", "record_path"]

log = logging.getLogger(__name__)

_MARK = "_atpack_replays_coordesc"

KNOWN_TORCH = ((2, 8), (2, 13))
"""The torch releases whose tuning internals the replay was written for (first, last)."""

_given_up = False
_T = TypeVar("_T")


def install() -> bool:
    """Install the replay in this process (idempotent). False, with one log line, if this torch
    is not a release the replay knows or its internals are not the ones it was written for: then
    nothing changes. A wrapper that meets an internal it does not expect at run time gives up for
    the whole process (one log line) and leaves every decision to torch from then on."""
    try:
        import torch
        from torch._inductor.runtime import autotune_cache, triton_heuristics
    except ImportError:
        return False
    release = _release(getattr(torch, "__version__", ""))
    if release is None or not KNOWN_TORCH[0] <= release <= KNOWN_TORCH[1]:
        first, last = (f"{a}.{b}" for a, b in KNOWN_TORCH)
        log.warning(
            "atpack: torch %s is not a release the replay knows (%s to %s): not replaying",
            torch.__version__,
            first,
            last,
        )
        return False
    autotuner_cls = triton_heuristics.CachingAutotuner
    coordesc = getattr(autotuner_cls, "coordinate_descent_tuning", None)
    autotune = getattr(autotuner_cls, "autotune_to_one_config", None)
    check = getattr(triton_heuristics, "check_autotune_cache", None)  # torch 2.6+
    if coordesc is None or autotune is None or not hasattr(autotune_cache.AutotuneCache, "create"):
        log.warning("atpack: this torch's CachingAutotuner is not the one atpack knows: not replaying")
        return False
    if getattr(coordesc, _MARK, False):
        return True

    def coordinate_descent_tuning(self: Any, launcher: Any, *args: Any, **kwargs: Any) -> Any:
        if _guarded(_already_searched, self, launcher):
            return launcher
        return coordesc(self, launcher, *args, **kwargs)

    def autotune_to_one_config(self: Any, *args: Any, **kwargs: Any) -> Any:
        if _guarded(_keep_recorded_winner, self):
            return None
        return autotune(self, *args, **kwargs)

    def check_autotune_cache(configs: Any, filename: Any, inductor_meta: Any) -> Any:
        assert check is not None
        return check(configs, _guarded(_here, filename) or filename, inductor_meta)

    wrappers: list[tuple[Any, Any]] = [(coordinate_descent_tuning, coordesc), (autotune_to_one_config, autotune)]
    if check is not None:
        wrappers.append((check_autotune_cache, check))
        triton_heuristics.check_autotune_cache = check_autotune_cache
    for wrapper, original in wrappers:
        setattr(wrapper, _MARK, True)
        wrapper.__doc__ = original.__doc__
    autotuner_cls.coordinate_descent_tuning = coordinate_descent_tuning  # type: ignore[method-assign]
    autotuner_cls.autotune_to_one_config = autotune_to_one_config  # type: ignore[method-assign]
    return True


def _already_searched(autotuner: Any, launcher: Any) -> bool:
    """Whether coordinate descent already ran for this kernel: then the launcher holds its result,
    or (a kernel restored from the FX graph cache) the result the compiled graph was saved with;
    either way, searching again would only chase benchmark noise. Marks the launcher's config."""
    best = _recorded(autotuner)
    if best is None or best.get("found_by_coordesc") is not True:
        return False
    launcher.config.found_by_coordesc = True
    return True


def _keep_recorded_winner(autotuner: Any) -> bool:
    """When the recorded winner is among the candidates, keep it alone: no benchmark, no re-save."""
    best = _recorded(autotuner)
    if best is None:
        return False
    chosen = [launcher for launcher in autotuner.launchers if _same(best, launcher.config)]
    if len(chosen) != 1:
        return False
    if best.get("found_by_coordesc") is True:
        chosen[0].config.found_by_coordesc = True
    autotuner.launchers = chosen
    return True


def _guarded(replay: Callable[..., _T], *args: Any) -> _T | None:
    """`replay(*args)`, or None once the replay has given up in this process. The first
    unexpected error is logged once and gives the replay up: torch decides from then on."""
    global _given_up
    if _given_up:
        return None
    try:
        return replay(*args)
    except Exception as e:
        _given_up = True
        log.warning(
            "atpack: the replay met a torch internal it does not know (%s: %s); torch decides now", type(e).__name__, e
        )
        log.debug("the replay gave up here", exc_info=True)
        return None


def _release(version: str) -> tuple[int, int] | None:
    parts = version.split(".")
    try:
        return int(parts[0]), int(parts[1])
    except (IndexError, ValueError):
        return None


def best_config_path(autotuner: Any) -> str | None:
    """Where Inductor keeps this kernel's `.best_config`, looked for in this process's folder."""
    filename = getattr(autotuner, "filename", None)
    return record_path(_here(filename), getattr(autotuner, "inductor_meta", {})) if filename else None


def record_path(module: str, inductor_meta: Any = None) -> str | None:
    """The `.best_config` path torch gives the kernel module `module` (None: cannot tell), by
    torch's own key derivation, which changed between versions, through `AutotuneCache.create`."""
    try:
        from torch._inductor.runtime.autotune_cache import AutotuneCache

        cache = AutotuneCache.create(inductor_meta or {}, module, "")
    except Exception:
        return None
    local = getattr(cache, "local_cache", None)
    return str(local[1]) if local else None


def _here(filename: Any) -> Any:
    """A kernel module's path in this process's Inductor folder: the same path if it is in it,
    else the same shard and name in it (see the module's documentation)."""
    if not isinstance(filename, str) or not os.path.isabs(filename):
        return filename
    try:
        from torch._inductor.runtime.cache_dir_utils import cache_dir
    except ImportError:
        return filename
    root = os.path.abspath(cache_dir())
    if os.path.abspath(filename).startswith(root + os.sep):
        return filename
    return os.path.join(root, os.path.basename(os.path.dirname(filename)), os.path.basename(filename))


def _recorded(autotuner: Any) -> dict[str, Any] | None:
    """The kernel's `.best_config`, if it has one. Its `configs_hash` is not checked: the callers
    only use a record that names one of the kernel's current configs exactly, or a mark."""
    path = best_config_path(autotuner)
    if path is None:
        return None
    try:
        with open(path, "rb") as f:
            best = json.load(f)
    except (OSError, ValueError, RecursionError):  # a file nested too deeply for Python's parser
        return None
    return best if isinstance(best, dict) else None


def _same(best: dict[str, Any], config: Any) -> bool:
    """Whether a `.best_config` names `config` (its block sizes, warps and stages)."""
    return bool(
        best.get("num_warps") == getattr(config, "num_warps", None)
        and best.get("num_stages") == getattr(config, "num_stages", None)
        and all(best.get(k) == v for k, v in getattr(config, "kwargs", {}).items())
    )
