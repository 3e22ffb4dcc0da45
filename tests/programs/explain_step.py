"""A user's training step, compiled by torch on the CPU (Inductor's C++ backend). It never imports
atpack: only torch loads atpack's plug-in, which records the cache lookups where asked.

    python explain_step.py [--dtype float64] [--batch N] [--dynamic] [--inductor NAME=VALUE]

Prints JSON: the loss.
"""

from __future__ import annotations

import argparse
import json

import torch

parser = argparse.ArgumentParser()
parser.add_argument("--dtype", default="float32")
parser.add_argument("--batch", type=int, default=4)
parser.add_argument("--dynamic", action="store_true")
parser.add_argument("--inductor", action="append", default=[], metavar="NAME=VALUE")
args = parser.parse_args()
for setting in args.inductor:
    name, _, value = setting.partition("=")
    setattr(torch._inductor.config, name, json.loads(value))

torch.manual_seed(0)
dtype = getattr(torch, args.dtype)
model = torch.nn.Sequential(torch.nn.Linear(32, 64), torch.nn.GELU(), torch.nn.Linear(64, 8)).to(dtype)
compiled = torch.compile(model, dynamic=True if args.dynamic else None)
x = torch.arange(args.batch * 32, dtype=dtype).reshape(args.batch, 32) / 100
loss = compiled(x).square().sum()
loss.backward()
print(json.dumps({"loss": round(loss.item(), 4)}))
