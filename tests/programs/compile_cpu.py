"""A real torch.compile of a training step on the CPU (Inductor's C++ backend), saved or
loaded with atpack.

    python compile_cpu.py save URL    compile inside atpack.capture(), save the capture to URL
    python compile_cpu.py load URL [--trust-pickles]
                                      load URL into the (empty) caches, then compile
Prints JSON: outputs, torch's cache counters, and for load, atpack's report.
$ATPACK_STORAGE_OPTIONS holds storage_options as JSON.
"""

from __future__ import annotations

import json
import os
import sys

import torch

import atpack

torch.manual_seed(0)


class Model(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.up = torch.nn.Linear(32, 64)
        self.down = torch.nn.Linear(64, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(torch.nn.functional.gelu(self.up(x)))


def run() -> list[float]:
    """One training step's forward outputs and gradients (forward and backward both compile)."""
    model = Model()
    compiled = torch.compile(model)
    x = torch.arange(4 * 32, dtype=torch.float32).reshape(4, 32) / 100
    out = compiled(x)
    out.square().sum().backward()
    values = out.flatten().tolist() + model.up.weight.grad.flatten().tolist()[:16]
    return [round(v, 6) for v in values]


def counters() -> dict[str, int]:
    from torch._dynamo.utils import counters

    return {
        "fxgraph_cache_hit": counters["inductor"]["fxgraph_cache_hit"],
        "fxgraph_cache_miss": counters["inductor"]["fxgraph_cache_miss"],
        "autograd_cache_hit": counters["aot_autograd"]["autograd_cache_hit"],
        "autograd_cache_miss": counters["aot_autograd"]["autograd_cache_miss"],
    }


mode, url = sys.argv[1], sys.argv[2]
options = json.loads(os.environ.get("ATPACK_STORAGE_OPTIONS", "null"))
result: dict[str, object] = {}
if mode == "save":
    with atpack.capture() as cap:
        result["outputs"] = run()
    info = atpack.save_cache_artifacts(url, capture=cap, storage_options=options)
    result["pack_bytes"] = info.size
    result["kinds"] = sorted({a.kind for a in atpack.open(url, storage_options=options).artifacts})
else:
    report = atpack.load_cache_artifacts(url, trust_pickles="--trust-pickles" in sys.argv, storage_options=options)
    result["report"] = [[o.kind, o.action, o.detail] for o in report.outcomes]
    result["outputs"] = run()
result["counters"] = counters()
print(json.dumps(result))
