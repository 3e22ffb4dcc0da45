"""Compile a Triton kernel for an H100 (`triton.compile` with an explicit CUDA target: LLVM and
ptxas from Triton's wheel, no GPU needed) through Triton's own compiled-kernel cache, and print
JSON: whether Triton's cache answered, and the kernel's cache folder. Uses $TRITON_CACHE_DIR.

    python explain_compile.py [--edited]

--edited: the kernel's source is edited (the same name, another body).

Imports torch (so that atpack's torch plug-in runs: ATPACK_EXPLAIN records the lookup). With
$ATPACK_CAPTURE_TO set, it compiles inside `atpack.capture()` and saves the capture there.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import sys

import standin

standin.install()

import torch  # noqa: E402, F401  (atpack's torch plug-in runs at its import)
import triton  # noqa: E402
import triton.language as tl  # noqa: E402
from triton.backends.compiler import GPUTarget  # noqa: E402
from triton.compiler import ASTSource  # noqa: E402
from user_kernel import listen  # noqa: E402

if "--edited" in sys.argv:

    @triton.jit
    def add_one(x_ptr, y_ptr, n, BLOCK: tl.constexpr):
        offsets = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
        mask = offsets < n
        tl.store(y_ptr + offsets, tl.load(x_ptr + offsets, mask=mask) + 2, mask=mask)  # edited: + 2

else:

    @triton.jit
    def add_one(x_ptr, y_ptr, n, BLOCK: tl.constexpr):
        offsets = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
        mask = offsets < n
        tl.store(y_ptr + offsets, tl.load(x_ptr + offsets, mask=mask) + 1, mask=mask)


hits: list[bool] = []
listen(triton.knobs.compilation, hits)
source = ASTSource(
    add_one, signature={"x_ptr": "*fp32", "y_ptr": "*fp32", "n": "i32", "BLOCK": "constexpr"}, constexprs={"BLOCK": 128}
)
capture_to = os.environ.get("ATPACK_CAPTURE_TO")
if capture_to:
    import atpack

recording = atpack.capture() if capture_to else contextlib.nullcontext()
with recording:
    kernel = triton.compile(source, target=GPUTarget("cuda", 90, 32))
if capture_to:
    atpack.save_cache_artifacts(capture_to, capture=recording)
folder = base64.b32encode(bytes.fromhex(kernel.hash)).decode().rstrip("=")
print(json.dumps({"cache_hits": hits, "folder": folder, "name": kernel.name}))
