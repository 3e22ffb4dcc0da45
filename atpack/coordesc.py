"""Replaying coordinate-descent results that torch saves and then re-tunes anyway.

With ``coordinate_descent_tuning`` on (max-autotune turns it on), Inductor saves the config
coordinate descent found in the kernel's ``.best_config`` file, marked
``"found_by_coordesc": true``, and reads it back on a warm start. Between that read and the
kernel's first launch, torch 2.8 to 2.13 can lose the mark: a kernel restored from the FX graph
cache re-picks the equal config object from its compile results (`recheck_autotune_cache`), and
a config pickled back from a compile worker keeps only Triton's own fields. The launch then runs
coordinate descent again, starting from the winner it already had: on an H100 training step, 18
to 85 benchmark calls (`tools/results/gpu_e2e.md`) for results that are on disk.

`install()` wraps `CachingAutotuner.coordinate_descent_tuning`: when the kernel's
``.best_config`` says coordinate descent already ran for it, the launcher is returned as it is,
which is what torch meant to do (a kernel restored from the FX graph cache may hold the result
its graph was saved with rather than the file's latest, an equally tuned config). It also wraps
`autotune_to_one_config`, which torch reaches on a hit when it re-adds candidates (a reduction
whose recorded config spills registers gets smaller-block variants): when the recorded winner is
among the candidates, it is kept without benchmarking, and without saving over the record; a
recorded coordinate-descent result that is not among them (the kernel missed its record, below)
is compiled, as torch compiles one on a hit, instead of benchmarking the candidates.

And it wraps `check_autotune_cache`, where a kernel can miss its own record. The record's path
comes from the kernel's source, but torch also compares the record's `configs_hash` with a hash
of the candidates in hand, and a kernel restored from the FX graph cache (a statically launched
autotuner, torch 2.6+) hashes the configs it was compiled with, not the list its record was
saved under: on an H200 training step that miss cost 9 autotuning and 11 coordinate-descent
benchmark calls (`tools/results/gpu_e2e.md`). The source is the same, so the record still
answers: a coordinate-descent result is used as torch would use it on a hit, and any other
record when it names exactly one of the candidates.

A kernel restored from the FX graph cache also carries the absolute path it was compiled at, on
the machine that compiled it, and torch looks for its record beside that path. Where that is
outside this process's Inductor folder (another machine's folder, or another `TORCHINDUCTOR_CACHE_DIR`),
the replay looks in this folder instead, at the same place relative to it, where a pack put it.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any

__all__ = ["best_config_path", "install"]

log = logging.getLogger(__name__)

_MARK = "_atpack_replays_coordesc"


def install() -> bool:
    """Install the replay in this process (idempotent). False if torch's internals are not the
    ones it was written for (then nothing changes)."""
    try:
        from torch._inductor.runtime import autotune_cache, triton_heuristics
    except ImportError:
        return False
    autotuner_cls = triton_heuristics.CachingAutotuner
    coordesc = getattr(autotuner_cls, "coordinate_descent_tuning", None)
    autotune = getattr(autotuner_cls, "autotune_to_one_config", None)
    check = getattr(triton_heuristics, "check_autotune_cache", None)
    load = getattr(autotune_cache, "_load_cached_autotuning", None)
    hashable = getattr(triton_heuristics, "triton_config_to_hashable", None)
    if coordesc is None or autotune is None or not hasattr(autotune_cache.AutotuneCache, "create"):
        log.info("this torch's CachingAutotuner is not the one atpack knows: not replaying tuning results")
        return False
    if getattr(coordesc, _MARK, False):
        return True

    def coordinate_descent_tuning(self: Any, launcher: Any, *args: Any, **kwargs: Any) -> Any:
        best = _recorded(self)
        if best is not None and best.get("found_by_coordesc") is True:
            # Coordinate descent already ran for this kernel. The launcher holds its result, or
            # (a kernel restored from the FX graph cache) the result the compiled graph was saved
            # with: either way, searching again would only chase benchmark noise.
            launcher.config.found_by_coordesc = True
            return launcher
        return coordesc(self, launcher, *args, **kwargs)

    def autotune_to_one_config(self: Any, *args: Any, **kwargs: Any) -> Any:
        best = _recorded(self)
        chosen = [launcher for launcher in self.launchers if best is not None and _same(best, launcher.config)]
        if len(chosen) == 1:  # the recorded winner is among the candidates: no benchmark, no re-save
            if best is not None and best.get("found_by_coordesc") is True:
                chosen[0].config.found_by_coordesc = True
            self.launchers = chosen
            return None
        if not chosen and load is not None and (launcher := _compile_recorded(self, best, load)) is not None:
            log.debug("replayed %s's recorded coordinate-descent result, not among its candidates", self.filename)
            self.launchers = [launcher]
            return None
        return autotune(self, *args, **kwargs)

    def check_autotune_cache(configs: Any, filename: Any, inductor_meta: Any) -> Any:
        assert check is not None and load is not None and hashable is not None
        filename = _here(filename)
        found, cache, info = check(configs, filename, inductor_meta)
        if info.get("autotune_cache_state") != "miss" or cache is None or not configs:
            return found, cache, info
        best = _answer(_read(_local_path(cache)), configs, inductor_meta, load)
        if best is None:
            return found, cache, info
        log.debug("replayed %s's recorded config, which torch missed (configs hash)", filename)
        return [best], cache, {"best_config": hashable(best), "autotune_cache_state": "hit"}

    wrappers: list[tuple[Any, Any]] = [(coordinate_descent_tuning, coordesc), (autotune_to_one_config, autotune)]
    if check is not None and load is not None and hashable is not None:
        wrappers.append((check_autotune_cache, check))
        triton_heuristics.check_autotune_cache = check_autotune_cache
    for wrapper, original in wrappers:
        setattr(wrapper, _MARK, True)
        wrapper.__doc__ = original.__doc__
    autotuner_cls.coordinate_descent_tuning = coordinate_descent_tuning  # type: ignore[method-assign]
    autotuner_cls.autotune_to_one_config = autotune_to_one_config  # type: ignore[method-assign]
    return True


def best_config_path(autotuner: Any) -> str | None:
    """Where Inductor keeps this kernel's `.best_config` (torch's own key derivation, which
    changed between versions, through `AutotuneCache.create`)."""
    from torch._inductor.runtime.autotune_cache import AutotuneCache

    filename = getattr(autotuner, "filename", None)
    if not filename:
        return None
    try:
        cache = AutotuneCache.create(getattr(autotuner, "inductor_meta", {}), _here(filename), "")
    except Exception:
        return None
    return _local_path(cache)


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


def _local_path(cache: Any) -> str | None:
    local = getattr(cache, "local_cache", None)
    return str(local[1]) if local else None


def _recorded(autotuner: Any) -> dict[str, Any] | None:
    """The kernel's `.best_config`, if it has one. Its `configs_hash` is not checked (see the
    module's documentation); the callers only use a record that names one of the kernel's
    current configs exactly, or a coordinate-descent result."""
    return _read(best_config_path(autotuner))


def _read(path: str | None) -> dict[str, Any] | None:
    if path is None:
        return None
    try:
        with open(path, "rb") as f:
            best = json.load(f)
    except (OSError, ValueError):
        return None
    return best if isinstance(best, dict) else None


def _answer(best: dict[str, Any] | None, configs: list[Any], inductor_meta: dict[str, Any], load: Any) -> Any:
    """The config a record gives a kernel whose candidates hash differently from the ones it
    was saved under, through torch's own reading of a record (`_load_cached_autotuning`): a
    coordinate-descent result (when coordinate descent is on), or the one candidate it names."""
    if best is None or not isinstance(best.get("configs_hash"), str):
        return None
    by_coordesc = bool(inductor_meta.get("coordinate_descent_tuning")) and best.get("found_by_coordesc") is True
    if not by_coordesc and sum(_same(best, config) for config in configs) != 1:
        return None
    try:
        return load(dict(best), best["configs_hash"], configs, inductor_meta)
    except Exception:  # a record torch cannot read: torch tunes, as it would have
        log.debug("could not replay %s", best, exc_info=True)
        return None


def _compile_recorded(autotuner: Any, best: dict[str, Any] | None, load: Any) -> Any:
    """A launcher for a recorded coordinate-descent result that is not among the kernel's
    candidates (it missed its record on the way, see the module's documentation), compiled as
    torch compiles one on a hit; None if there is none or it cannot be built."""
    meta = getattr(autotuner, "inductor_meta", {})
    if best is None or not (meta.get("coordinate_descent_tuning") and best.get("found_by_coordesc") is True):
        return None
    config = _answer(best, [], meta, load)
    if config is None:
        return None
    try:
        if getattr(autotuner.fn, "fn", None) is None:  # compiled in a worker: load it here, as coordesc does
            autotuner.fn = autotuner._reload_kernel().fn
        with autotuner.lock:
            launcher = autotuner._precompile_config(config).make_launcher()
    except Exception:  # torch's internals moved: tune, as torch would have
        log.debug("could not compile the recorded config of %s", autotuner.filename, exc_info=True)
        return None
    launcher.config.found_by_coordesc = True
    return launcher


def _same(best: dict[str, Any], config: Any) -> bool:
    """Whether a `.best_config` names `config` (its block sizes, warps and stages)."""
    return bool(
        best.get("num_warps") == getattr(config, "num_warps", None)
        and best.get("num_stages") == getattr(config, "num_stages", None)
        and all(best.get(k) == v for k, v in getattr(config, "kwargs", {}).items())
    )
