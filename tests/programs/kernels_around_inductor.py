"""A program with Triton kernels of its own, one compiled before Inductor's first kernel and one
after; it never imports atpack.

    python kernels_around_inductor.py COMPILED_BEFORE COMPILED_AFTER KERNEL.py...

Triton writes a compiled kernel into the cache folder of the moment (`knobs.cache.dir`): its own
folder until Inductor builds its first kernel, which sets $TRITON_CACHE_DIR to the device's
folder under Inductor's. The two compiled kernel folders given (real ones) are put there as
Triton's compile leaves them, around loading the Inductor kernel modules given and saving a
result for each, as its autotuning would. Prints JSON: the folder each kernel went to. With
$ATPACK_SAVE_TO set, the program then exports its caches there with `atpack.save_cache_artifacts`
(the only case it imports atpack).
"""

from __future__ import annotations

import json
import os
import shutil
import sys

import standin

standin.install()

import triton  # noqa: E402
from torch._inductor.codecache import PyCodeCache  # noqa: E402
from torch._inductor.runtime.autotune_cache import AutotuneCache  # noqa: E402
from torch._inductor.runtime.triton_heuristics import hash_configs  # noqa: E402


def compile_like_triton(compiled: str) -> str:
    folder = str(triton.knobs.cache.dir)
    shutil.copytree(compiled, os.path.join(folder, os.path.basename(compiled)))
    return folder


before = compile_like_triton(sys.argv[1])
for path in sys.argv[3:]:
    with open(path) as f:
        module = PyCodeCache.load(f.read())
    kernel = next(v for v in vars(module).values() if type(v).__name__ == "CachingAutotuner")
    cache = AutotuneCache.create(kernel.inductor_meta, module.__file__, hash_configs(kernel.configs))
    cache.save(kernel.configs[0], 42_000_000)
after = compile_like_triton(sys.argv[2])
if save_to := os.environ.get("ATPACK_SAVE_TO"):
    import atpack

    atpack.save_cache_artifacts(save_to)
print(json.dumps({"before": before, "after": after}))
