"""Replaying coordinate-descent results that torch saves and then re-tunes anyway.

With ``coordinate_descent_tuning`` on (max-autotune turns it on), Inductor saves the config
coordinate descent found in the kernel's ``.best_config`` file, marked
``"found_by_coordesc": true``, and reads it back on a warm start. Between that read and the
kernel's first launch, torch 2.8 to 2.13 can lose the mark: a kernel restored from the FX graph
cache re-picks the equal config object from its compile results (`recheck_autotune_cache`), and
a config pickled back from a compile worker keeps only Triton's own fields. The launch then runs
coordinate descent again, starting from the winner it already had: on an H100 training step, 18
to 85 benchmark calls (`tools/results/gpu_e2e.md`) for results that are on disk.

`install()` wraps `CachingAutotuner.coordinate_descent_tuning`: when the kernel's autotune
cache was a hit and its ``.best_config`` says the launcher's config was found by coordinate
descent, the launcher is returned as it is, which is what torch meant to do.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any

__all__ = ["install"]

log = logging.getLogger(__name__)

_MARK = "_atpack_replays_coordesc"


def install() -> bool:
    """Install the replay in this process (idempotent). False if torch's internals are not the
    ones it was written for (then nothing changes)."""
    try:
        from torch._inductor.runtime.autotune_cache import AutotuneCache
        from torch._inductor.runtime.triton_heuristics import CachingAutotuner
    except ImportError:
        return False
    original = getattr(CachingAutotuner, "coordinate_descent_tuning", None)
    if original is None or not all(hasattr(AutotuneCache, n) for n in ("_prepare_key", "_make_local_cache_key")):
        log.info("this torch has no CachingAutotuner.coordinate_descent_tuning to wrap: not replaying")
        return False
    if getattr(original, _MARK, False):
        return True

    def coordinate_descent_tuning(self: Any, launcher: Any, *args: Any, **kwargs: Any) -> Any:
        if _found_by_coordesc(self, launcher.config):
            launcher.config.found_by_coordesc = True
            return launcher
        return original(self, launcher, *args, **kwargs)

    setattr(coordinate_descent_tuning, _MARK, True)
    coordinate_descent_tuning.__doc__ = original.__doc__
    CachingAutotuner.coordinate_descent_tuning = coordinate_descent_tuning  # type: ignore[method-assign]
    return True


def _found_by_coordesc(autotuner: Any, config: Any) -> bool:
    """Whether the kernel's `.best_config` (read as a hit) records `config` as coordinate
    descent's result."""
    from torch._inductor.runtime.autotune_cache import AutotuneCache

    info = getattr(autotuner, "autotune_cache_info", None) or {}
    filename = getattr(autotuner, "filename", None)
    if info.get("autotune_cache_state") != "hit" or not filename:
        return False
    try:
        key = AutotuneCache._prepare_key(filename)
        path = AutotuneCache._make_local_cache_key(os.path.dirname(filename), key)
        with open(path, "rb") as f:
            best = json.load(f)
    except (OSError, ValueError, TypeError):
        return False
    return bool(
        best.get("found_by_coordesc") is True
        and best.get("num_warps") == getattr(config, "num_warps", None)
        and best.get("num_stages") == getattr(config, "num_stages", None)
        and all(best.get(k) == v for k, v in getattr(config, "kwargs", {}).items())
    )
