"""A container's warm start on a GPU, measured: a pack against torch's Megacache and a hot cache.

    python tools/gpu_e2e.py --out DIR          the full run (an NVIDIA GPU; see the recipe below)
    python tools/gpu_e2e.py --out DIR --smoke  the same orchestration on the CPU, tiny models
    python tools/report_gpu_e2e.py DIR/results.json   the tables (and a chart, with matplotlib)

Each model has its own pack and its own Megacache blob, made by its cold run. Every other run of
every model is a fresh container: a new machine folder with HOME and the temp folder inside it;
TORCHINDUCTOR_CACHE_DIR, TRITON_CACHE_DIR, TRITON_HOME, CUDA_CACHE_PATH, XDG_CACHE_HOME and
ATPACK_CACHE_DIR unset; nothing carried from an earlier run (no atpack cache, no compiled host
module, no CUDA compute cache), except for `hot`, which gets the cold run's folder back. So
Inductor uses <tmp>/torchinductor_<user> (its kernels in <that>/triton/0), Triton ~/.triton/cache.
By default every machine folder is at one path (`--paths one`): torch's FX graph cache restores
kernels at the absolute path they were compiled at. With `--paths per-phase`, each phase's is at
a path of its own, as on a machine whose cache folder path differs from the capturing machine's.
After a run its folder is kept aside (the latest run of each model and phase).

Phases, per model (M):
  cold         `atpack capture -o PACK_M -- python gpu_e2e.py --worker cold --model M`
               (the README's flags: the default pack, kernels without their IR): the model
               compiled with mode="max-autotune-no-cudagraphs" by a process that never imports atpack
               (torch loads atpack's plug-in, which records it); the process also saves torch's
               Megacache blob of M
  megacache    torch.compiler.load_cache_artifacts(blob of M) in the process, then the first step
  cli-full     `atpack populate PACK_M --trust-pickles` in a process of its own, timed from spawn
               to exit, then the training process, which never imports atpack
  cli-safe     the same without --trust-pickles
  cli-quiet    cli-full without --explain: the control for what recording the lookups costs
  hot          the cold run's own folders, then the first step
  atpack-full, atpack-safe (not run by default): atpack.load_cache_artifacts(PACK_M) in the
               process (trust_pickles=True, False), then the first step
  cli-foreign, cli-hints (not run by default; need --hints-from DIR, the packs of another GPU or
               release, DIR/M.atpack, as --keep-packs leaves them): cli-full with that pack
               instead of PACK_M, without and with `--hints` (spec §17)
Models: `gpt2`, transformers' GPT2LMHeadModel(GPT2Config()) (random weights, no download), one
training step (bf16 autocast over fp32 weights, 8 x 512 tokens: forward, loss, backward, gradient
clipping, fused AdamW step); `resnet18`, torchvision's resnet18(weights=None) in inference (fp16,
channels_last, 64 x 3 x 224 x 224); `mlp`, an fp16 MLP in inference; `block`, a transformer block
(attention + MLP) in training, forward and backward; `kernel`, a user `@triton.autotune` kernel
(24 configs, 2 tuning keys) at two shapes. Every model but `kernel` is compiled with
torch.compile(mode="max-autotune-no-cudagraphs"). `gpt2` and `resnet18` run where transformers and
torchvision import (else they are skipped, said so); with --smoke, tiny configs, or tiny stand-ins
where those packages are missing (said so in the output and in results.json), and `kernel` is
2a + b compiled (no Triton on the CPU).

Timed per run, on the wall clock, by the parent against marks the process prints:
  populate_s          the populate process, spawn to exit (cli-*)
  train_first_step_s  the training process, spawn to the end of its first step (synchronized)
  start_s             populate_s + train_first_step_s: the container's start cost (megacache and
                      hot: train_first_step_s, Megacache's load included)
  train_exit_s        the training process, spawn to exit; `exit` breaks down what it does after
                      its first step: its own remaining work, Python joining threads, each atexit
                      handler (the slowest named), and the teardown after them
  first_step_s        the first step itself (its compile, cache loads and GPU work), as before
  steady_step_s       the median of 10 steps after it (3 more first), synchronized: the kernels
                      chosen, whatever the tuning cost
`start` breaks train_first_step_s down: interpreter, import torch, the benchmark counters installed
(importing Inductor's runtime, which the first step would import), load (megacache, API), Triton's
once-a-process costs (hashing its install, setting up its runtime: paid before the model, else
they land in the step), building the model and its inputs, the first step.
Explained (`atpack explain`, spec §16), per run but cli-quiet's: the training process records its
cache lookups (populate --explain for cli-*, ATPACK_EXPLAIN=1 otherwise; the cold run's under its
capture), and after it `atpack explain PACK_M --json` (cold: without the pack it made) gives each
cache's hits and misses, what the misses cost, each miss's cause and what recording cost.
Counted at the source, per model and run: GPU benchmark calls made through Inductor's benchmarker
(pointwise/reduction autotuning, coordinate descent, the rest: GEMM autotuning and fusion
benchmarks), `@triton.autotune` benchmark calls, Triton kernels compiled; torch's autotune-cache
misses and `.best_config` saves. Outputs are compared with the cold run's.

Order: the cold runs first (each skipped if its guessed length would overrun --budget-s), then
--rounds rounds of the warm phases, model after model, in an order rotated each round (the phases
in --once run in the first round only), each run skipped if it would overrun --budget-s.
DIR/results.json (and WORK/results.json) is written after every run; --resume goes on from WORK.

The hints recipe (issue 24; spec §17): on the H100, `--models resnet18,gpt2 --phases cold
--keep-packs` leaves each cold run's pack in OUT; copy them into a folder of the repository that
.git/info/exclude ignores (.hints/), and on the H200, carrying it: `--models resnet18,gpt2 --phases
cold,cli-full,cli-foreign,cli-hints --hints-from .hints`. The report's "Another GPU's pack, as hints"
table holds them to the issue's bounds.

The H100 recipe: all models, 3 rounds, in commands of at most 10 minutes on one machine kept
warm between them (WORK in /tmp survives from one command to the next; OUT may be a fresh folder
each time: each command writes the whole results.json there):
    python tools/gpu_e2e.py --out $OUT --work /tmp/e2e --budget-s 540
    python tools/gpu_e2e.py --out $OUT --work /tmp/e2e --budget-s 540 --resume
    python tools/gpu_e2e.py --out $OUT --work /tmp/e2e --budget-s 540 --resume   # if "left: ..."
    python tools/report_gpu_e2e.py $OUT/results.json --before tools/results/gpu_e2e.json
Each command starts no run that its guess says would end past --budget-s, and ends with "left:
..." (what the next --resume runs) or "all done". Guessed from earlier H100 runs (per-model
processes not measured yet): the cold runs take 8 to 12 minutes in all (the block's 3 to 3.5,
GPT-2's training graphs most likely more), so the first command is mostly cold runs, the block's
left to the second; the 50 warm runs (10 a model: 3 rounds of megacache, cli-full and hot, one
of cli-safe) take 10 to 15 minutes: 20 to 27 minutes of commands in all, so the third command
is likely needed. For less, the issue's models alone (about half): add `--models gpt2,resnet18`
to every command.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import platform
import shutil
import subprocess
import sys
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

STARTED = time.time()  # a worker's start (past these imports): its spawn to here is the interpreter's own
EXPLAIN = "ATPACK_EXPLAIN"  # atpack.settings.EXPLAIN: a worker imports no atpack
RECORDS = "atpack-lookups"  # atpack.lookups.RECORDS

PHASES = (
    "cold",
    "megacache",
    "cli-full",
    "cli-quiet",
    "cli-safe",
    "hot",
    "atpack-full",
    "atpack-safe",
    "cli-foreign",
    "cli-hints",
)
DEFAULT_PHASES = ("cold", "megacache", "cli-full", "cli-quiet", "cli-safe", "hot")
QUIET = ("cli-quiet",)
"""The phases whose processes do not record their cache lookups: every other records them
(`populate --explain` for cli-*, ATPACK_EXPLAIN=1 otherwise), and `atpack explain` reads them."""
MODELS = ("gpt2", "resnet18", "mlp", "block", "kernel")
NEEDS = {"gpt2": "transformers", "resnet18": "torchvision"}  # a model runs where its package imports
# How long a cold run may take on an H100, guessed high (the block's took 181 to 212 s, the MLP's 18
# to 22, the kernel's 7 to 8): a command starts no cold run that might overrun its budget.
COLD_GUESS_S = {"gpt2": 400, "resnet18": 200, "block": 280, "mlp": 45, "kernel": 25}
SMOKE_COLD_GUESS_S = 150
WARM_GUESS_S = 60  # a model's first warm run, before any is measured (never above its cold run)
# Where a container's caches would go, were these set: every run clears them.
CACHE_VARIABLES = (
    "TORCHINDUCTOR_CACHE_DIR",
    "TRITON_CACHE_DIR",
    "TRITON_HOME",
    "CUDA_CACHE_PATH",
    "XDG_CACHE_HOME",
    "ATPACK_CACHE_DIR",
    "ATPACK_CAPTURE",
    "ATPACK_CAPTURE_BINARIES_ONLY",
)


# --------------------------------------------------------------------------- the models


def build(name: str, smoke: bool) -> Any:
    """A callable doing one step of model `name`, returning tensors to compare across phases."""
    import torch

    torch.manual_seed(0)
    return BUILDERS[name](smoke)


def _device(smoke: bool) -> str:
    return "cpu" if smoke else "cuda"


def _compile(module: Any, smoke: bool) -> Any:
    import torch

    return torch.compile(module, mode=None if smoke else "max-autotune-no-cudagraphs")


def stand_in(name: str) -> str | None:
    """Why `name` cannot run as itself here (its package missing), or None."""
    package = NEEDS.get(name)
    if package is None or importlib.util.find_spec(package) is not None:
        return None
    return f"{package} is not installed"


def _gpt2(smoke: bool) -> Any:
    """GPT-2 (124M) trained one step: bf16 autocast over fp32 weights, fused AdamW, as one would."""
    import torch

    if stand_in("gpt2"):
        return _tiny_lm(smoke)
    from transformers import GPT2Config, GPT2LMHeadModel

    tiny = dict(n_layer=2, n_head=2, n_embd=64, vocab_size=512, n_positions=64, bos_token_id=0, eos_token_id=0)
    config = GPT2Config(**tiny) if smoke else GPT2Config()
    batch, seq = (2, 32) if smoke else (8, 512)
    with torch.device(_device(smoke)):  # weights made where they run: no 124M-parameter copy
        model = GPT2LMHeadModel(config).train()
    compiled = _compile(model, smoke)
    ids = torch.randint(0, config.vocab_size, (batch, seq), device=_device(smoke))
    return _training(model, lambda: compiled(input_ids=ids, labels=ids, use_cache=False).loss, smoke)


def _tiny_lm(smoke: bool) -> Any:
    """GPT-2's stand-in where transformers is missing (the smoke only): embeddings, one block, a tied head."""
    import torch

    assert smoke, "gpt2 needs transformers"
    vocab, d, heads, batch, seq = 256, 64, 4, 2, 32

    class TinyLM(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.wte, self.wpe = torch.nn.Embedding(vocab, d), torch.nn.Embedding(seq, d)
            self.block, self.ln = _block_class()(d, heads), torch.nn.LayerNorm(d)

        def forward(self, ids: Any) -> Any:
            x = self.wte(ids) + self.wpe(torch.arange(ids.shape[1], device=ids.device))
            logits = self.ln(self.block(x)) @ self.wte.weight.T
            return torch.nn.functional.cross_entropy(logits[:, :-1].flatten(0, 1).float(), ids[:, 1:].flatten())

    model = TinyLM()
    compiled = _compile(model, smoke)
    ids = torch.randint(0, vocab, (batch, seq))
    return _training(model, lambda: compiled(ids), smoke)


def _training(model: Any, loss_of: Any, smoke: bool) -> Any:
    """One training step of `model`: the loss, backward, gradients clipped, an AdamW step."""
    import torch

    params = list(model.parameters())
    optimizer = torch.optim.AdamW(params, lr=1e-4, fused=not smoke)

    def step() -> list[Any]:
        autocast = contextlib.nullcontext() if smoke else torch.autocast("cuda", dtype=torch.bfloat16)
        with autocast:
            loss = loss_of()
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return [loss.detach(), norm]

    return step


def _resnet18(smoke: bool) -> Any:
    """ResNet-18 in inference: fp16, channels_last, a batch of 64 images."""
    import torch

    if stand_in("resnet18"):
        return _inference(_tiny_convnet(smoke), (2, 3, 32, 32), torch.float32, smoke)
    from torchvision.models import resnet18

    shape, dtype = ((2, 3, 32, 32), torch.float32) if smoke else ((64, 3, 224, 224), torch.float16)
    return _inference(resnet18(weights=None), shape, dtype, smoke)


def _tiny_convnet(smoke: bool) -> Any:
    """ResNet-18's stand-in where torchvision is missing (the smoke only): conv, batch norm, a residual."""
    import torch
    from torch import nn

    assert smoke, "resnet18 needs torchvision"

    class TinyResNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU())
            self.body = nn.Sequential(nn.Conv2d(16, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16))
            self.head = nn.Linear(16, 10)

        def forward(self, x: Any) -> Any:
            x = self.stem(x)
            x = torch.relu(x + self.body(x))
            return self.head(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))

    return TinyResNet()


def _inference(model: Any, shape: tuple[int, ...], dtype: Any, smoke: bool) -> Any:
    import torch

    model = model.eval().to(_device(smoke), dtype, memory_format=torch.channels_last)
    compiled = _compile(model, smoke)
    x = torch.randn(shape, device=_device(smoke), dtype=dtype).to(memory_format=torch.channels_last)

    def step() -> list[Any]:
        with torch.no_grad():
            return [compiled(x)]

    return step


def _mlp(smoke: bool) -> Any:
    import torch

    d, hidden, batch, dtype = (64, 128, 32, torch.float32) if smoke else (1024, 4096, 512, torch.float16)
    mlp = torch.nn.Sequential(
        torch.nn.Linear(d, hidden),
        torch.nn.GELU(),
        torch.nn.LayerNorm(hidden),
        torch.nn.Linear(hidden, d),
        torch.nn.ReLU(),
        torch.nn.Linear(d, d),
    ).to(_device(smoke), dtype)
    compiled = _compile(mlp, smoke)
    x = torch.randn(batch, d, device=_device(smoke), dtype=dtype)

    def step() -> list[Any]:
        with torch.no_grad():
            return [compiled(x)]

    return step


def _block(smoke: bool) -> Any:
    import torch

    d, heads, batch, seq, dtype = (64, 4, 2, 32, torch.float32) if smoke else (1024, 16, 8, 512, torch.bfloat16)
    block = _block_class()(d, heads).to(_device(smoke), dtype)
    compiled = _compile(block, smoke)
    x = torch.randn(batch, seq, d, device=_device(smoke), dtype=dtype)

    def step() -> list[Any]:
        out = compiled(x)
        loss = out.float().square().mean()
        loss.backward()
        return [loss.detach(), block.fc1.weight.grad.float().norm(), block.qkv.weight.grad.float().norm()]

    return step


def _kernel(smoke: bool) -> Any:
    import torch

    if smoke:  # no Triton on the CPU: 2a + b compiled stands in (a run that records nothing packs nothing)
        scaled = _compile(lambda a, b: 2.0 * a + b, smoke)
        a, b = torch.randn(64, 32), torch.randn(64, 32)
        return lambda: [scaled(a, b)]
    from gpu_e2e_kernel import scaled_rows

    a = torch.randn(8192, 2048, device="cuda")
    b = torch.randn(8192, 2048, device="cuda")
    # Inputs made here, not in the step: the step is the kernel's first call, not the copies
    # (whose cost depends on what the process ran before).
    inputs = [(a[:4096, :1024].contiguous(), b[:4096, :1024].contiguous()), (a, b)]

    def step() -> list[Any]:
        return [scaled_rows(x, y) for x, y in inputs]

    return step


BUILDERS = {"gpt2": _gpt2, "resnet18": _resnet18, "mlp": _mlp, "block": _block, "kernel": _kernel}


def describe(name: str, smoke: bool) -> str:
    """What runs as model `name` here, for the output."""
    missing = stand_in(name)
    if smoke and name == "kernel":
        return "a stand-in: 2a + b compiled (no Triton on the CPU)"
    if missing:
        return f"a tiny stand-in ({missing})" if smoke else f"skipped ({missing})"
    return "tiny config" if smoke and name in NEEDS else "as described"


def first_step(step: Any, smoke: bool) -> tuple[Any, float]:
    """Run `step` once: its outputs and the seconds it took, the GPU's work included."""
    import torch

    if not smoke:
        torch.cuda.synchronize()
    t = time.perf_counter()
    out = step()
    if not smoke:
        torch.cuda.synchronize()
    return out, time.perf_counter() - t


def steady_step(step: Any, smoke: bool, warmup: int = 3, timed: int = 10) -> float:
    """The median seconds of `timed` steps after `warmup` more (the outputs of the first step
    are already taken: a training step changes the weights, never what is compared)."""
    import statistics

    for _ in range(warmup):
        first_step(step, smoke)
    return statistics.median(first_step(step, smoke)[1] for _ in range(timed))


def _block_class() -> Any:
    import torch

    class Block(torch.nn.Module):
        """A pre-norm transformer block: causal self-attention (SDPA) and a GELU MLP."""

        def __init__(self, d: int, heads: int) -> None:
            super().__init__()
            self.heads = heads
            self.ln1, self.ln2 = torch.nn.LayerNorm(d), torch.nn.LayerNorm(d)
            self.qkv, self.proj = torch.nn.Linear(d, 3 * d), torch.nn.Linear(d, d)
            self.fc1, self.fc2 = torch.nn.Linear(d, 4 * d), torch.nn.Linear(4 * d, d)

        def forward(self, x: Any) -> Any:
            b, t, d = x.shape
            q, k, v = self.qkv(self.ln1(x)).split(d, dim=-1)
            q, k, v = (z.view(b, t, self.heads, d // self.heads).transpose(1, 2) for z in (q, k, v))
            a = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
            x = x + self.proj(a.transpose(1, 2).reshape(b, t, d))
            return x + self.fc2(torch.nn.functional.gelu(self.fc1(self.ln2(x))))

    return Block


# --------------------------------------------------------------------------- counting


class Counts:
    """Benchmark calls counted where they happen, not from torch's (replayed) counters."""

    def __init__(self) -> None:
        self.n: dict[str, int] = {"autotune": 0, "coordesc": 0, "other": 0, "triton_autotune": 0}
        self.where: list[str] = []
        self.context: list[str] = []
        self.checks: list[str] = []
        self.saves: list[str] = []

    def install(self) -> None:
        from torch._inductor.runtime import benchmarking, triton_heuristics

        bench = benchmarking.benchmarker
        for method in ("benchmark_gpu", "benchmark_cpu"):
            self._wrap_method(bench, method)
        cls = triton_heuristics.CachingAutotuner
        for method, label in (("benchmark_all_configs", "autotune"), ("coordinate_descent_tuning", "coordesc")):
            self._wrap_context(cls, method, label)
        self._wrap_check(triton_heuristics)
        self._wrap_save()
        with contextlib.suppress(ImportError):
            from triton.runtime.autotuner import Autotuner

            original = Autotuner._bench

            def bench_user(autotuner: Any, *args: Any, **kwargs: Any) -> Any:
                self.n["triton_autotune"] += 1
                return original(autotuner, *args, **kwargs)

            Autotuner._bench = bench_user

    def _wrap_method(self, obj: Any, method: str) -> None:
        original = getattr(obj, method)

        def counted(*args: Any, **kwargs: Any) -> Any:
            label = self.context[-1] if self.context else "other"
            self.n[label] += 1
            if label != "other" or len(self.where) < 40:
                frames = [f"{Path(f.filename).name}:{f.name}" for f in traceback.extract_stack(limit=8)[:-1]]
                self.where.append(f"{label}: {' < '.join(reversed(frames[-5:]))}")
            return original(*args, **kwargs)

        setattr(obj, method, counted)

    def _wrap_context(self, cls: Any, method: str, label: str) -> None:
        original = getattr(cls, method)
        counts = self

        def within(autotuner: Any, *args: Any, **kwargs: Any) -> Any:
            counts.context.append(label)
            launchers = [args[0]] if label == "coordesc" and args else list(getattr(autotuner, "launchers", []))
            configs = "; ".join(
                f"{dict(c.kwargs)} w{c.num_warps} s{c.num_stages} coordesc={getattr(c, 'found_by_coordesc', '-')}"
                for c in (getattr(x, "config", None) for x in launchers[:10])
                if c is not None
            )
            counts.where.append(f"{label} launchers: {configs}")
            info = getattr(autotuner, "autotune_cache_info", {})
            meta = getattr(autotuner, "inductor_meta", {})
            counts.where.append(
                f"{label} of {meta.get('kernel_name')} ({os.path.basename(getattr(autotuner, 'filename', '') or '')}):"
                f" cache {info.get('autotune_cache_state')}; {_best_config(autotuner)}"
            )
            try:
                return original(autotuner, *args, **kwargs)
            finally:
                counts.context.pop()

        setattr(cls, method, within)

    def _wrap_check(self, module: Any) -> None:
        """Torch's own autotune-cache checks in this process (installed before atpack's replay,
        so it sees what torch alone decided): the misses, with the hashes compared."""
        original = module.check_autotune_cache

        def check(configs: Any, filename: Any, inductor_meta: Any) -> Any:
            found, cache, info = original(configs, filename, inductor_meta)
            if info.get("autotune_cache_state") == "miss":
                recorded = _best_config_at(cache)
                self.checks.append(
                    f"miss in {_caller()}: {os.path.basename(filename or '')}"
                    f" {len(configs)} configs hash {module.hash_configs(configs)[:12]}, record {recorded}"
                )
            return found, cache, info

        module.check_autotune_cache = check

    def _wrap_save(self) -> None:
        """Every `.best_config` this process saves: which file, what, marked how, from where."""
        from torch._inductor.runtime.autotune_cache import AutotuneCache

        original = AutotuneCache.save

        def save(
            cache: Any, config: Any, time_taken_ns: Any, found_by_coordesc: bool = False, *a: Any, **k: Any
        ) -> Any:
            local = getattr(cache, "local_cache", None)
            frames = [f.name for f in traceback.extract_stack(limit=6)[:-1]]
            self.saves.append(
                f"{os.path.basename(str(local[1]))[:12] if local else '-'} {dict(config.kwargs)} w{config.num_warps}"
                f" coordesc={found_by_coordesc} mark={getattr(config, 'found_by_coordesc', '-')}"
                f" from {' < '.join(reversed(frames))}"
            )
            return original(cache, config, time_taken_ns, found_by_coordesc, *a, **k)

        AutotuneCache.save = save

    def snapshot(self) -> dict[str, int]:
        return dict(self.n)


def _best_config(autotuner: Any) -> str:
    """What the kernel's .best_config file holds, for the diagnostics (found as torch finds it:
    this process may not import atpack)."""
    from torch._inductor.runtime.autotune_cache import AutotuneCache

    try:
        cache = AutotuneCache.create(autotuner.inductor_meta, autotuner.filename, "")
        path = cache.local_cache[1] if cache and cache.local_cache else None
    except Exception as e:
        return f"no autotune cache ({type(e).__name__})"
    if path is None:
        return "no autotune cache"
    try:
        with open(path) as f:
            return f"best_config {f.read()[:160]}"
    except OSError as e:
        return f"no best_config ({e.strerror})"


def _triton_key_s() -> float:
    """Triton hashes its own install (`triton_key()`, libtriton included) once per process, at the
    first kernel it compiles or looks up on disk: paid here, before the models, so that it lands in
    no model's first step (else in the first model that reaches Triton's JIT, which differs by phase:
    a warm phase loading every kernel from the FX graph cache reaches it later than one compiling)."""
    try:
        from triton.runtime.cache import triton_key  # triton 3.5+
    except ImportError:
        try:
            from triton.compiler.compiler import triton_key  # type: ignore[no-redef,attr-defined]
        except ImportError:
            return 0.0
    start = time.perf_counter()
    triton_key()
    return time.perf_counter() - start


def _triton_runtime_s(smoke: bool, model: str) -> float:
    """The same for the rest of Triton's once-a-process setup, before the model: the CUDA context
    and Triton's driver (its host module built or loaded), which every process using Triton pays.
    For the user kernel, as before, one launch of a one-line kernel (Triton's JIT and a launcher
    too, which its first call needs). Not for Inductor's models: their kernels launch through
    torch's own launcher, so that launch would be this script's work alone, paid in full only
    where nothing is cached (Megacache's process), and their start would be unfair to Megacache."""
    if smoke:
        return 0.0
    import torch
    from triton.runtime.driver import driver

    start = time.perf_counter()
    if model == "kernel":
        from gpu_e2e_kernel import touch_runtime

        touch_runtime()
    else:
        torch.zeros(1, device="cuda")
        torch.cuda.synchronize()
        _ = driver.active.utils  # Triton's host module: built, or loaded from its cache
        driver.active.get_current_target()
    return time.perf_counter() - start


def _timed() -> dict[str, float]:
    """Seconds spent so far in each of torch's `dynamo_timed` regions (compile steps)."""
    from torch._dynamo.utils import compilation_time_metrics

    return {name: sum(values) for name, values in compilation_time_metrics.items()}


def _slowest(before: dict[str, float], after: dict[str, float], n: int = 12) -> dict[str, float]:
    """Where the step's compile time went: the regions that took longest during it."""
    spent = {name: after[name] - before.get(name, 0.0) for name in after}
    return {name: round(t, 4) for name, t in sorted(spent.items(), key=lambda kv: -kv[1])[:n] if t > 0.001}


def _caller() -> str:
    """The torch function that asked for the autotune-cache check (past atpack's wrapper)."""
    frame = sys._getframe(2)
    while frame.f_back is not None and frame.f_code.co_name == "check_autotune_cache":
        frame = frame.f_back
    return frame.f_code.co_name


def _best_config_at(cache: Any) -> str:
    local = getattr(cache, "local_cache", None)
    if not local:
        return "none"
    try:
        with open(local[1]) as f:
            return f.read()[:220]
    except OSError:
        return "absent"


def triton_folder() -> str:
    """The Triton folder this process's kernels go to: the one Inductor gives device 0."""
    from torch._inductor.runtime.cache_dir_utils import triton_cache_dir

    return triton_cache_dir(0)


def _kernel_names(folder: str) -> str:
    names = [n[7:-5] for n in os.listdir(Path(triton_folder()) / folder) if n.startswith("__grp__")]
    return f"{folder}: {', '.join(sorted(names)) or '(no group file)'}"


def triton_folders() -> set[str]:
    root = triton_folder()
    return set(os.listdir(root)) if os.path.isdir(root) else set()


# --------------------------------------------------------------------------- a run, in its own process


def model_files(work: Path, model: str) -> dict[str, Path]:
    """A model's files, made by its cold run: its pack, its Megacache blob, its outputs."""
    folder = work / "models" / model
    return {
        "pack": folder / "pack.atpack",
        "blob": folder / "megacache.bin",
        "outputs": folder / "outputs.pt",
    }


def mark(name: str) -> float:
    """Print a moment of this process's life, for the parent, which spawned it, to time against."""
    now = time.time()
    print(f"MARK {name} {now}", flush=True)
    return now


def time_exit() -> None:
    """Make the process say what it does after its work. Python first joins its threads
    (`threading._shutdown`), then runs the atexit handlers, the last registered first, then tears
    itself down. Installed before `import torch`, so every handler torch (and atpack's plug-in)
    registers prints when it ran; one registered here, run last, marks where the teardown starts."""
    import atexit
    import threading

    register, unregister = atexit.register, atexit.unregister
    stand_ins: dict[Any, Any] = {}

    def timed(fn: Any, *args: Any, **kwargs: Any) -> Any:
        name = f"{getattr(fn, '__module__', None) or '?'}.{getattr(fn, '__qualname__', type(fn).__name__)}"

        def run(*a: Any, **k: Any) -> Any:
            start = time.time()
            try:
                return fn(*a, **k)
            finally:
                print(f"EXIT {name} {start} {time.time()}", flush=True)

        stand_ins[fn] = run
        register(run, *args, **kwargs)
        return fn  # as atexit.register does: it serves as a decorator

    def untimed(fn: Any) -> None:
        unregister(stand_ins.pop(fn, fn))

    atexit.register, atexit.unregister = timed, untimed  # type: ignore[assignment]
    shutdown = threading._shutdown  # type: ignore[attr-defined]

    def timed_shutdown() -> None:
        start = time.time()
        try:
            shutdown()
        finally:
            print(f"EXIT threading._shutdown {start} {time.time()}", flush=True)

    threading._shutdown = timed_shutdown  # type: ignore[attr-defined]
    register(_atexit_end)


def _atexit_end() -> None:
    """The last atexit handler: the teardown starts here. What is still alive may make it long."""
    mark("atexit_end")
    with contextlib.suppress(OSError):
        tasks = os.listdir("/proc/self/task")
        children = sum(len(Path(f"/proc/self/task/{t}/children").read_text().split()) for t in tasks)
        print(f"STATE native_threads={len(tasks)} child_processes={children}", flush=True)


def worker(phase: str, model: str, work: Path, smoke: bool) -> dict[str, Any]:
    """One process of a run: the phase's load, Triton's once-a-process costs, the model built,
    its first step; then what the step did, and (cold) the Megacache blob and outputs saved."""
    marks = {"start": STARTED}
    time_exit()
    sys.path.insert(0, str(Path(__file__).parent))
    import torch

    marks["torch_imported"] = time.time()
    counts = Counts()
    counts.install()  # imports Inductor's runtime, which a compiling process imports anyway
    marks["counting"] = time.time()
    files = model_files(work, model)
    result: dict[str, Any] = {"phase": phase, "model": model, "ran": describe(model, smoke)}
    result["load"] = _load(phase, files)
    marks["loaded"] = time.time()
    result["triton_key_s"] = _triton_key_s()
    result["triton_runtime_s"] = _triton_runtime_s(smoke, model)
    marks["triton_ready"] = time.time()
    step = build(model, smoke)
    if not smoke:
        torch.cuda.synchronize()
    marks["built"] = time.time()
    before, folders, timed = counts.snapshot(), triton_folders(), _timed()
    out, result["first_step_s"] = first_step(step, smoke)
    marks["step_end"] = mark("step_end")
    result["steady_step_s"] = steady_step(step, smoke)
    result.update(_what_the_step_did(counts, before, folders, timed, phase))
    outputs = [o.detach().float().cpu() for o in out]
    if phase == "cold":
        result["save"] = _save(files, outputs)
    else:
        reference = torch.load(files["outputs"])
        diffs = [float((a - b).abs().max()) if a.numel() else 0.0 for a, b in zip(outputs, reference)]
        result["max_abs_diff_vs_cold"] = max(diffs, default=0.0)
    result["atpack_modules"] = sorted(m for m in sys.modules if m.split(".")[0] == "atpack")
    result["marks"] = marks
    return result


def _load(phase: str, files: dict[str, Path]) -> dict[str, Any] | None:
    """What the process loads before its model: Megacache's blob, or (API phases) the pack."""
    import torch

    start = time.perf_counter()
    if phase == "megacache":
        blob = files["blob"].read_bytes()
        if blob:  # a model that torch.compile never saw (the user kernel) has no blob
            torch.compiler.load_cache_artifacts(blob)
        return {"seconds": time.perf_counter() - start, "bytes_read": len(blob)}
    if phase.startswith("atpack-"):
        import atpack  # the API path: the only phases whose own code imports atpack

        report = atpack.load_cache_artifacts(files["pack"], trust_pickles=phase == "atpack-full")
        return {
            "seconds": time.perf_counter() - start,
            "bytes_read": report.bytes_read,
            "actions": {a: report.count(a) for a in ("written", "merged", "present", "skipped", "failed")},
            "report": report.format(),
        }
    return None


def _what_the_step_did(
    counts: Counts, before: dict[str, int], folders: set[str], timed: dict[str, float], phase: str
) -> dict[str, Any]:
    """Benchmark calls, kernels compiled, torch's cache misses and saves, where compile time went."""
    from torch._dynamo.utils import counters as torch_counters

    after = counts.snapshot()
    new = triton_folders() - folders
    host = {f for f in new if any(n.endswith(".so") for n in os.listdir(Path(triton_folder()) / f))}
    return {
        "torch_counters": {k: dict(v) for k, v in torch_counters.items() if k in ("inductor", "aot_autograd")},
        "benchmarks": {k: after[k] - before[k] for k in after},
        "triton_compiles": len(new - host),
        "host_modules_built": len(host),
        "torch_misses": counts.checks[:40],
        "saves": counts.saves[:150],
        "timed_s": _slowest(timed, _timed()),
        "where": counts.where[:60],
        # which kernels a warm phase still compiles (folder: kernel names), to find what a pack lacks
        "new_kernels": [] if phase == "cold" else [_kernel_names(f) for f in sorted(new - host)][:40],
    }


def _save(files: dict[str, Path], outputs: list[Any]) -> dict[str, Any]:
    """The cold run's Megacache blob (empty where torch.compile saw nothing) and outputs."""
    import torch

    saved = torch.compiler.save_cache_artifacts()
    blob = saved[0] if saved is not None else b""
    files["blob"].write_bytes(blob)
    torch.save(outputs, files["outputs"])
    return {"megacache_bytes": len(blob)}


# --------------------------------------------------------------------------- a run, seen from outside


@contextlib.contextmanager
def container(work: Path, model: str, phase: str, one_path: bool) -> Iterator[Path]:
    """A machine folder for one run: fresh (HOME and the temp folder inside, nothing else), or for
    `hot` the cold run's; at the one path every run uses or at one of the phase's own. Afterwards
    it is kept aside as kept/<model>-<phase> (hot: put back as the cold run's)."""
    source = "cold" if phase == "hot" else phase
    kept = work / "kept" / f"{model}-{source}"
    machine = work / "machine" if one_path else work / "machines" / f"{model}-{source}"
    _reclaim(machine)
    if phase == "hot":
        if not kept.is_dir():
            raise RuntimeError(f"the cold run's folders are gone ({kept})")
        kept.rename(machine)
    else:
        shutil.rmtree(kept, ignore_errors=True)
        (machine / "home").mkdir(parents=True)
        (machine / "tmp").mkdir()
    # Whose folder this is: a command cut off during a run leaves it here, and the next one puts it
    # back (the cold run's folder, which `hot` borrows, must survive that).
    (machine / "kept-as").write_text(str(kept))
    try:
        yield machine
    finally:
        _reclaim(machine)


def _reclaim(machine: Path) -> None:
    """Move a machine folder left at `machine` to where it is kept."""
    if not machine.exists():
        return
    owner = machine / "kept-as"
    if not owner.exists():
        shutil.rmtree(machine)
        return
    kept = Path(owner.read_text())
    shutil.rmtree(kept, ignore_errors=True)
    kept.parent.mkdir(parents=True, exist_ok=True)
    machine.rename(kept)


def container_env(machine: Path) -> dict[str, str]:
    """A fresh container's environment: HOME and the temp folder in its machine folder, no cache
    folder variable (torch's, Triton's, CUDA's, atpack's defaults all land in the machine folder)."""
    env = {k: v for k, v in os.environ.items() if k not in CACHE_VARIABLES}
    env.update(HOME=str(machine / "home"), TMPDIR=str(machine / "tmp"), PYTHONUNBUFFERED="1")
    # GPT-2 is built from its config: nothing to download, and nothing to try (no network there).
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    return env


def spawn(argv: list[str], env: dict[str, str], log: Path) -> dict[str, Any]:
    """Run `argv` to its exit, its output into files (a pipe would end when the last process
    holding it does, not when this one exits): when it started and ended on the wall clock."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{log}.out", "w") as out, open(f"{log}.err", "w") as err:
        started = time.time()
        code = subprocess.Popen(argv, env=env, stdout=out, stderr=err).wait()
        ended = time.time()
    return {
        "spawned": started,
        "exited": ended,
        "returncode": code,
        "stdout": Path(f"{log}.out").read_text(),
        "stderr": Path(f"{log}.err").read_text(),
    }


def run_once(args: argparse.Namespace, work: Path, model: str, phase: str, round_: int) -> dict[str, Any]:
    """One run of `phase` for `model` in a container of its own, timed from outside."""
    record: dict[str, Any] = {"phase": phase, "model": model, "round": round_}
    files = model_files(work, model)
    files["pack"].parent.mkdir(parents=True, exist_ok=True)
    log = work / "logs" / f"{model}-{phase}-{round_}"
    started = time.perf_counter()
    try:
        with container(work, model, phase, args.paths == "one") as machine:
            env = container_env(machine)
            explaining = phase not in QUIET
            for records in machine.glob(f"tmp/torchinductor_*/{RECORDS}"):
                shutil.rmtree(records)  # hot: the cold run's records, explained after that run
            if phase.startswith("cli-"):
                foreign = phase in ("cli-foreign", "cli-hints")
                pack = Path(args.hints_from) / f"{model}.atpack" if foreign else files["pack"]
                trust = phase in ("cli-full", "cli-quiet") or foreign
                flags = ["--hints"] if phase == "cli-hints" else []
                record.update(populate(pack, trust, explaining, env, Path(f"{log}-populate"), flags))
            elif explaining:
                env[EXPLAIN] = "1"
            if "error" not in record:
                argv = _training_argv(args, work, model, phase, files["pack"])
                record.update(training(spawn(argv, env, log), record.get("populate_s", 0.0)))
            if explaining and "error" not in record:
                pack = None if phase == "cold" else files["pack"]  # cold: the run that made the pack
                record["explain"] = explain(pack, env, Path(f"{log}-explain"))
    except Exception as e:  # one run's failure is recorded; the others go on
        record["error"] = f"{type(e).__name__}: {e}\n{traceback.format_exc()[-3000:]}"
    record["wall_s"] = time.perf_counter() - started
    if phase == "cold" and "error" not in record:
        record["pack"] = _pack_facts(files["pack"], record.pop("capture_output", ""))
        if args.keep_packs:
            shutil.copyfile(files["pack"], Path(args.out) / f"{model}.atpack")
    record.pop("capture_output", None)
    return record


def _training_argv(args: argparse.Namespace, work: Path, model: str, phase: str, pack: Path) -> list[str]:
    """The training process's command: this script as a worker; for the cold run, under `atpack capture`."""
    argv = [sys.executable, __file__, "--work", str(work), "--worker", phase, "--model", model]
    argv += ["--smoke"] if args.smoke else []
    if phase == "cold":
        argv = [sys.executable, "-m", "atpack", "capture", "-o", str(pack), "--", *argv]
    return argv


def populate(
    pack: Path, trust: bool, explaining: bool, env: dict[str, str], log: Path, flags: list[str]
) -> dict[str, Any]:
    """`atpack populate` in a process of its own: its seconds from spawn to exit, and its report."""
    argv = [sys.executable, "-m", "atpack", "populate", str(pack), "--json", *flags]
    argv += (["--trust-pickles"] if trust else []) + (["--explain"] if explaining else [])
    done = spawn(argv, env, log)
    seconds = done["exited"] - done["spawned"]
    if done["returncode"] != 0:
        return {"populate_s": seconds, "error": done["stdout"][-3000:] + done["stderr"][-3000:]}
    report = json.loads(done["stdout"])
    actions = [o["action"] for o in report["outcomes"]]
    return {
        "populate_s": seconds,
        "populate": {
            "bytes_read": report["bytes_read"],
            "actions": {a: actions.count(a) for a in ("written", "merged", "present", "hinted", "skipped", "failed")},
            "triton_dirs": report["triton_dirs"],
            "replay": report["replay"],
            "hints": report["hints"],
        },
    }


def explain(pack: Path | None, env: dict[str, str], log: Path) -> dict[str, Any]:
    """`atpack explain PACK --json` after the training process: the hit rate of each cache, what
    the misses cost, each miss's cause (the first few in full), what recording cost."""
    done = spawn([sys.executable, "-m", "atpack", "explain", *([str(pack)] if pack else []), "--json"], env, log)
    if done["returncode"] != 0:
        return {"error": done["stderr"][-3000:]}
    found = json.loads(done["stdout"])
    causes: dict[str, int] = {}
    for miss in found["misses"]:
        cause = miss["cause"].split(":")[0].split(";")[0]
        causes[f"{miss['cache']}: {cause}"] = causes.get(f"{miss['cache']}: {cause}", 0) + 1
    return {
        "explain_s": done["exited"] - done["spawned"],
        "caches": found["caches"],
        "benchmarks": found["benchmarks"],
        "benchmark_s": found["benchmark_s"],
        "spent_s": found["spent_s"],
        "causes": causes,
        "first_misses": found["misses"][:8],
    }


def training(done: dict[str, Any], populate_s: float) -> dict[str, Any]:
    """The training process's record: its own result, and its timings against its spawn."""
    marks, exits, result = _parse(done["stdout"])
    exit_s = done["exited"] - done["spawned"]
    if done["returncode"] != 0 or result is None or "step_end" not in marks:
        return {"error": done["stderr"][-6000:], "returncode": done["returncode"], "train_exit_s": exit_s}
    first = marks["step_end"] - done["spawned"]
    result.update(
        train_first_step_s=first,
        train_exit_s=exit_s,
        start_s=populate_s + first,
        start=_start_breakdown(result.pop("marks"), done["spawned"]),
        exit=_exit_breakdown(marks, exits, done["exited"]),
        capture_output=done["stdout"] + done["stderr"],
    )
    return result


def _parse(stdout: str) -> tuple[dict[str, float], list[tuple[str, float, float]], dict[str, Any] | None]:
    """The lines a worker prints: MARK name time, EXIT handler start end, RESULT json."""
    marks: dict[str, float] = {}
    exits: list[tuple[str, float, float]] = []
    result = None
    for line in stdout.splitlines():
        if line.startswith("MARK "):
            _, name, moment = line.split(" ", 2)
            marks[name] = float(moment)
        elif line.startswith("EXIT "):
            name, start, end = line[len("EXIT ") :].rsplit(" ", 2)
            exits.append((name, float(start), float(end)))
        elif line.startswith("STATE "):
            marks.update({k: float(v) for k, v in (x.split("=") for x in line.split()[1:])})
        elif line.startswith("RESULT "):
            result = json.loads(line[len("RESULT ") :])
    return marks, exits, result


def _start_breakdown(marks: dict[str, float], spawned: float) -> dict[str, float]:
    """Where spawn-to-first-step went, stage by stage (they add up to train_first_step_s)."""
    stages = ("start", "torch_imported", "counting", "loaded", "triton_ready", "built", "step_end")
    names = ("interpreter_s", "import_torch_s", "counting_s", "load_s", "triton_s", "build_s", "first_step_s")
    moments = [spawned] + [marks[s] for s in stages]
    return {name: moments[i + 1] - moments[i] for i, name in enumerate(names)}


def _exit_breakdown(marks: dict[str, float], exits: list[tuple[str, float, float]], exited: float) -> dict[str, Any]:
    """Where the first step's end to the process's exit went, in parts that add up: the process's
    remaining work (outputs compared or saved, the result printed), Python joining its threads,
    the atexit handlers (the slowest named), the teardown after them (modules, CUDA; for `cold`,
    atpack capture's merge too)."""
    handlers = [(n, b - a) for n, a, b in exits if n != "threading._shutdown"]
    joined = max((b for n, a, b in exits if n == "threading._shutdown"), default=None)
    moments = (("work_s", marks.get("returned")), ("threads_s", joined), ("atexit_s", marks.get("atexit_end")))
    parts: dict[str, Any] = {"after_step_s": exited - marks["step_end"]}
    last = marks["step_end"]
    for name, moment in (*moments, ("teardown_s", exited)):
        parts[name] = 0.0 if moment is None else moment - last  # a part not seen took no time
        last = last if moment is None else moment
    return parts | {
        "slowest_atexit": [[n, round(t, 4)] for n, t in sorted(handlers, key=lambda h: -h[1])[:3]],
        # alive when the teardown started: threads (Python's and native ones), processes not reaped
        "native_threads": marks.get("native_threads"),
        "child_processes": marks.get("child_processes"),
    }


def _pack_facts(pack: Path, capture_output: str) -> dict[str, Any]:
    import atpack

    with atpack.open(pack) as opened:
        return {
            "pack_bytes": opened.size,
            "pack_blob_bytes": sum(opened.blob_size(d) for d in opened.blob_digests),
            "kinds": _kinds(opened),
            "kernels": sorted(f"{a.cache_key}: {a.name}" for a in opened.artifacts if a.kind == "triton.kernel/1"),
            "capture": [x for x in capture_output.splitlines() if not x.startswith(("RESULT ", "MARK ", "EXIT "))][-4:],
        }


def _kinds(pack: Any) -> dict[str, int]:
    kinds: dict[str, int] = {}
    for a in pack.artifacts:
        kinds[a.kind] = kinds.get(a.kind, 0) + 1
    return kinds


# --------------------------------------------------------------------------- the schedule


class Schedule:
    """Which runs this command makes, in what order, within its budget."""

    def __init__(self, args: argparse.Namespace, results: dict[str, Any], save: Any) -> None:
        self.args, self.results, self.save = args, results, save
        self.models = args.models.split(",")
        self.phases = args.phases.split(",")
        self.once = set(args.once.split(",")) if args.once else set()
        self.started = time.perf_counter()
        self.left: list[str] = []

    def run(self, work: Path) -> None:
        for model in self.models:
            entry = self._entry(model)
            if "cold" in self.phases and "cold" not in entry and "skipped" not in entry:
                self._one(work, model, "cold", 0, entry)
        warm = [p for p in self.phases if p != "cold"]
        for n in range(self.args.rounds if warm else 0):
            rotated = warm[n % len(warm) :] + warm[: n % len(warm)]
            for model in self.models:
                entry = self._entry(model)
                if "pack" not in entry.get("cold", {}):  # nothing to start warm from
                    if n == 0 and "skipped" not in entry:
                        print(f"{model}: no warm run without a cold run that made a pack", flush=True)
                    continue
                for phase in rotated:
                    done = entry["runs"].setdefault(phase, [])
                    if len(done) <= n and not (phase in self.once and done):
                        self._one(work, model, phase, n + 1, entry)
        self.results["left"] = self.left
        self.save()
        print(f"left: {', '.join(self.left)} (--resume runs them)" if self.left else "all done", flush=True)

    def _entry(self, model: str) -> dict[str, Any]:
        models = self.results["models"]
        if model not in models:
            ran = describe(model, self.args.smoke)
            models[model] = {"ran": ran, "runs": {}}
            if ran.startswith("skipped"):
                models[model]["skipped"] = ran
                print(f"{model}: {ran}", flush=True)
            elif ran != "as described":
                print(f"{model}: {ran}", flush=True)
        return models[model]

    def _one(self, work: Path, model: str, phase: str, round_: int, entry: dict[str, Any]) -> None:
        what = f"{model} {phase}" + (f" round {round_}" if round_ else "")
        elapsed, guess = time.perf_counter() - self.started, self._guess_s(model, phase, entry)
        if elapsed + guess > self.args.budget_s:
            self.left.append(what)
            print(f"[{elapsed:5.0f} s] {what}: not started (budget)", flush=True)
            return
        print(f"[{elapsed:5.0f} s] {what}: started (guessed at most {guess:.0f} s)", flush=True)
        record = run_once(self.args, work, model, phase, round_)
        if phase == "cold":
            entry["cold"] = record
        else:
            entry["runs"][phase].append(record)
        self.save()
        print(f"[{time.perf_counter() - self.started:5.0f} s] {what}: {summary(record)}", flush=True)

    def _guess_s(self, model: str, phase: str, entry: dict[str, Any]) -> float:
        """How long a run may take: its phase's longest so far and a margin, else the model's
        longest warm run and more margin, else a guess (never above the model's cold run)."""
        if phase == "cold":
            return SMOKE_COLD_GUESS_S if self.args.smoke else COLD_GUESS_S.get(model, 300)
        mine = [r["wall_s"] for r in entry["runs"].get(phase, [])]
        if mine:
            return 1.2 * max(mine)
        warm = [r["wall_s"] for runs in entry["runs"].values() for r in runs]
        if warm:
            return 1.5 * max(warm)
        return min(WARM_GUESS_S, entry["cold"]["wall_s"])


def summary(r: dict[str, Any]) -> str:
    if "error" in r:
        return "FAILED " + str(r["error"])[-800:]
    populate = f"populate {r['populate_s']:.2f} s + " if "populate_s" in r else ""
    return (
        f"start {r['start_s']:.2f} s ({populate}first step's end at {r['train_first_step_s']:.2f} s);"
        f" first step {r['first_step_s']:.3f} s; steady {r['steady_step_s'] * 1000:.1f} ms;"
        f" exit at {r['train_exit_s']:.2f} s;"
        f" bench {r['benchmarks']}; compiles {r['triton_compiles']}"
    )


# --------------------------------------------------------------------------- the command


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", help="where results.json goes (required but for workers)")
    parser.add_argument("--work", help="scratch folder (default: a fresh one under /tmp)")
    parser.add_argument("--models", default=",".join(MODELS), help=f"default {','.join(MODELS)}")
    parser.add_argument("--phases", default=",".join(DEFAULT_PHASES), help=f"of {','.join(PHASES)}")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each warm phase (default 3)")
    parser.add_argument("--once", default="cli-safe,atpack-safe", help="warm phases run in the first round only")
    parser.add_argument("--budget-s", type=float, default=540, help="start no run that might end later (seconds)")
    parser.add_argument("--paths", choices=("one", "per-phase"), default="one", help="machine folder paths (above)")
    parser.add_argument("--resume", action="store_true", help="go on from the results in --work")
    parser.add_argument("--smoke", action="store_true", help="CPU, tiny models: checks the orchestration")
    parser.add_argument("--keep-packs", action="store_true", help="copy each cold run's pack to OUT/MODEL.atpack")
    parser.add_argument("--hints-from", metavar="DIR", help="cli-foreign, cli-hints: the packs DIR/MODEL.atpack")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    args = parser.parse_args()
    _check(parser, args)
    work = Path(args.work or f"/tmp/atpack-gpu-e2e-{os.getpid()}")
    if args.worker:
        print("RESULT " + json.dumps(worker(args.worker, args.model, work, args.smoke)), flush=True)
        mark("returned")
        return
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = _results(args, work)

    def save() -> None:
        text = portable(json.dumps(results, indent=1), work, out)
        for folder in (out, work):
            (folder / "results.json").write_text(text + "\n")

    Schedule(args, results, save).run(work)


def _check(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.worker:
        return
    if not args.out:
        parser.error("--out is required")
    for value, known in ((args.models, MODELS), (args.phases, PHASES)):
        unknown = set(value.split(",")) - set(known)
        if unknown:
            parser.error(f"unknown: {', '.join(sorted(unknown))} (known: {', '.join(known)})")
    if {"cli-foreign", "cli-hints"} & set(args.phases.split(",")) and not args.hints_from:
        parser.error("cli-foreign and cli-hints need --hints-from DIR")


def _results(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """The results so far (--resume) or new ones, with this command named."""
    command = "python tools/gpu_e2e.py " + " ".join(sys.argv[1:])
    if args.resume:
        results = json.loads((work / "results.json").read_text())
        results["command"] += f"; then {command}"
        return results
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    settings = {"rounds": args.rounds, "paths": args.paths, "smoke": args.smoke, "once": args.once}
    return {"format": "gpu_e2e/2", "machine": machine(), "command": command, "settings": settings, "models": {}}


REPO = Path(__file__).resolve().parent.parent


def portable(text: str, work: Path, out: Path) -> str:
    """`text` naming no folder of the machine it ran on: the work and output folders become
    WORK and OUT, this repository's files relative paths, the interpreter `python`."""
    for path, name in ((work, "WORK"), (out, "OUT"), (Path(sys.executable), "python"), (REPO, ".")):
        text = text.replace(json.dumps(str(path))[1:-1], name)
    return text


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {"python": platform.python_version(), "platform": platform.platform()}
    with contextlib.suppress(Exception):
        import torch
        import triton

        info.update(torch=torch.__version__, triton=triton.__version__, cuda=torch.version.cuda)
        if torch.cuda.is_available():
            info["device"] = torch.cuda.get_device_name(0)
    return info


if __name__ == "__main__":
    main()
