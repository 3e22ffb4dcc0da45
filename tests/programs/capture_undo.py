"""Every patch `atpack.capture()` makes is undone when its block raises.

    python capture_undo.py early|late
`early`: torch's and triton's modules are imported before the capture starts (patched at once);
`late`: they are first imported inside the block (patched as they are imported). Prints JSON:
whose each patched function is (atpack's, or its module) inside the block and after it, whether torch's Megacache
recording is the process's own again, and the imports atpack still waits for.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import torch  # noqa: F401  (torch loads atpack's plug-in, which waits for Inductor's runtime)

import atpack
from atpack import seam


def patched_functions() -> dict[str, str]:
    import triton
    from torch._inductor.runtime.autotune_cache import AutotuneCache
    from torch._inductor.triton_bundler import TritonBundler
    from triton.runtime.autotuner import Autotuner

    found = {"save": vars(AutotuneCache)["save"], "put_winner": vars(TritonBundler)["put_winner"]}
    tuning = triton.knobs.autotuning
    if hasattr(tuning, "listener"):  # triton 3.8+: atpack listens, Triton's own way
        found["listener"] = tuning.listener or (lambda: None)
    else:
        found["run"] = vars(Autotuner)["run"]
    return {name: _whose(f) for name, f in found.items()}


def _whose(f: Any) -> str:
    """ "atpack.seam" for atpack's wrapper (which keeps torch's names, so that pickle finds it),
    else the module of the function."""
    if getattr(f, "_atpack_feature", None) or getattr(getattr(f, "__func__", None), "_atpack_feature", None):
        return "atpack.seam"
    return str(getattr(f, "__func__", f).__module__)


def recording() -> Any:
    from torch.compiler._cache import CacheArtifactManager

    return CacheArtifactManager._new_cache_artifacts


if sys.argv[1] == "early":
    patched_functions()
own, waiting = recording(), {name: len(calls) for name, calls in seam._pending.items()}
inside: dict[str, str] = {}
try:
    with atpack.capture():
        inside = patched_functions()
        fresh = recording() is not own
        raise ValueError("the block fails")
except ValueError:
    pass
print(
    json.dumps(
        {
            "inside": inside,
            "fresh_recording_inside": fresh,
            "after": patched_functions(),
            "own_recording_after": recording() is own,
            "waiting": waiting == {name: len(calls) for name, calls in seam._pending.items()},
        }
    )
)
