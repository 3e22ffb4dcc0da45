"""Which Triton folders `atpack.capture()` keeps for a kernel that coordinate descent tuned.

    python capture_searched.py KERNEL.py PACK [--no-put-winner]

Inside the capture: the kernel's module is loaded, three folders are compiled for it (the
search's candidates, one of them its result) and one for a kernel the compiled code never
launches; coordinate descent's result is saved as torch saves it (no folder named). Torch
2.12+ names the winner (`TritonBundler.put_winner`); `--no-put-winner` is torch 2.11 and
earlier, which does not. Prints JSON: the folders made, and the pack's kernel folders.
Uses $TORCHINDUCTOR_CACHE_DIR.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import sys

import standin

standin.install()

from torch._inductor import triton_bundler  # noqa: E402
from torch._inductor.codecache import PyCodeCache  # noqa: E402
from torch._inductor.runtime.autotune_cache import AutotuneCache  # noqa: E402
from torch._inductor.runtime.triton_heuristics import hash_configs  # noqa: E402
from triton import Config  # noqa: E402

import atpack  # noqa: E402

if "--no-put-winner" in sys.argv and hasattr(triton_bundler.TritonBundler, "put_winner"):
    del triton_bundler.TritonBundler.put_winner


def compiled(name: str, n: int) -> str:
    """A kernel folder as Triton's compiler leaves it, in the folder Inductor gives device 0."""
    key = base64.b32encode(hashlib.sha256(f"{name}{n}".encode()).digest()).decode().rstrip("=")
    folder = os.path.join(os.environ["TORCHINDUCTOR_CACHE_DIR"], "triton", "0", key)
    os.makedirs(folder)
    children = {f"{name}.json": json.dumps({"name": name}).encode(), f"{name}.cubin": b"elf %d" % n}
    for child, data in children.items():
        with open(os.path.join(folder, child), "wb") as f:
            f.write(data)
    with open(os.path.join(folder, f"__grp__{name}.json"), "w") as f:
        json.dump({"child_paths": {c: os.path.join(folder, c) for c in children}}, f)
    return key


with open(sys.argv[1]) as f:  # a kernel module as Inductor writes it, its kernel named
    source = f.read().replace("Placeholder.DESCRIPTIVE_NAME", "triton_poi_fused_named_0")
    source = source.replace("def triton_(", "def triton_poi_fused_named_0(")
(NAME,) = re.findall(r"^def (triton_\w+)\(", source, re.MULTILINE)
with atpack.capture() as cap:
    module = PyCodeCache.load(source)
    kernel = next(v for v in vars(module).values() if type(v).__name__ == "CachingAutotuner")
    candidates = [compiled(NAME, n) for n in range(3)]
    unlaunched = compiled("triton_poi_fused_never_launched_0", 0)
    cache = AutotuneCache.create(kernel.inductor_meta, module.__file__, hash_configs(kernel.configs))
    heuristic = kernel.configs[0]
    searched = Config(dict(heuristic.kwargs), num_warps=heuristic.num_warps * 2, num_stages=heuristic.num_stages)
    cache.save(searched, 9_000_000, found_by_coordesc=True)
    if hasattr(triton_bundler.TritonBundler, "put_winner"):
        triton_bundler.TritonBundler.put_winner(candidates[1])
cap.save(sys.argv[2])
packed = sorted(a.cache_key for a in atpack.open(sys.argv[2]).artifacts if a.kind == "triton.kernel/1")
print(json.dumps({"candidates": candidates, "unlaunched": unlaunched, "packed": packed}))
