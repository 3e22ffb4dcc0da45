"""A user's inference step with max-autotune on the CPU: Inductor tunes its GEMM (its C++ template
against the library's kernel, timed on the CPU) and keeps the timings in its GEMM timing file.
It never imports atpack: only torch loads atpack's plug-in.

    python explain_gemm.py [--batch N]

Prints JSON: the output's sum.
"""

from __future__ import annotations

import argparse
import json

import torch

parser = argparse.ArgumentParser()
parser.add_argument("--batch", type=int, default=32)
args = parser.parse_args()

torch._inductor.config.freezing = True  # the CPU's GEMM templates tune a frozen (packed) weight
torch.manual_seed(0)
model = torch.nn.Linear(64, 64)
compiled = torch.compile(model, mode="max-autotune-no-cudagraphs")
with torch.no_grad():
    out = compiled(torch.randn(args.batch, 64))
print(json.dumps({"sum": round(out.sum().item(), 3)}))
