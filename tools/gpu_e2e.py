"""Warm starts on a GPU, measured: a pack against torch's Megacache and a hot local cache.

    python tools/gpu_e2e.py --out DIR          the full run (an NVIDIA GPU; about 10 minutes on an H100)
    python tools/gpu_e2e.py --out DIR --smoke  the same orchestration on the CPU, tiny models

Every process runs with torch's and triton's default folders, as on a fresh machine: neither
TORCHINDUCTOR_CACHE_DIR nor TRITON_CACHE_DIR is set, HOME and the temp folder point into one
machine folder (so Inductor uses <tmp>/torchinductor_<user>, and <that>/triton/0 for its
kernels, Triton ~/.triton/cache). Each phase runs in fresh processes with a fresh machine
folder (except `hot`), all at one path: torch's FX graph cache restores kernels with the
absolute path they were compiled at. Between phases, each phase's folder is moved aside (the
cold run's is moved back for `hot`). With `--paths per-phase`, each phase has a machine folder
at a path of its own instead, as on a machine whose cache folder path differs from the
capturing machine's.
  cold         `atpack capture -o PACK --binaries-only -- python gpu_e2e.py --worker cold`: the
               three models compiled and run with mode="max-autotune-no-cudagraphs" by a process
               that never imports atpack (torch loads atpack's plug-in); the process also saves
               torch's Megacache blob
  megacache    torch.compiler.load_cache_artifacts(blob), then the first step
  atpack-safe  atpack.load_cache_artifacts(pack) without pickled entries, then the first step (API)
  atpack-full  atpack.load_cache_artifacts(pack, trust_pickles=True), then the first step (API)
  cli-safe     `atpack populate PACK` in a process of its own, then the first step in a process
               that never imports atpack
  cli-full     `atpack populate PACK --trust-pickles`, then the same
  hot          the cold run's own cache folders, then the first step
Models: an fp16 MLP in inference; a transformer block (attention + MLP) in training, forward and
backward; a user `@triton.autotune` kernel (24 configs, 2 tuning keys) at two shapes. Each model
and its inputs are made before its first step, timed apart (`build_s`).

Counted at the source, per model and phase: GPU benchmark calls made through Inductor's
benchmarker (split into pointwise/reduction autotuning, coordinate descent, and the rest: GEMM
autotuning and fusion benchmarks), `@triton.autotune` benchmark calls, Triton kernels compiled
(new folders in the Triton cache); and torch's own autotune-cache misses and `.best_config`
saves. Outputs are compared with the cold run's. Each process pays Triton's once-a-process
costs before the first model, timed apart: hashing its install (`triton_key()`, `triton_key_s`)
and setting up its runtime with one launch of a one-line kernel (`triton_runtime_s`). Else they
land in whichever model first reaches Triton, which differs by phase.

After the first round, the timed warm phases (megacache, atpack-full, hot) run again, in a
rotated order, for `--rounds` rounds in all or until `--budget-s` would be overrun; each run is
a fresh process with fresh folders. Writes DIR/results.json after every phase.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any

PHASES = ("cold", "megacache", "atpack-safe", "atpack-full", "cli-safe", "cli-full", "hot")
REPEATED = ("megacache", "atpack-full", "cli-full", "hot")
MODELS = ("mlp", "block", "kernel")


# --------------------------------------------------------------------------- the models


def build(name: str, smoke: bool) -> Any:
    """A callable doing one step of model `name`, returning tensors to compare across phases."""
    import torch

    device = "cpu" if smoke else "cuda"
    torch.manual_seed(0)
    mode = None if smoke else "max-autotune-no-cudagraphs"
    if name == "mlp":
        d, hidden, batch, dtype = (64, 128, 32, torch.float32) if smoke else (1024, 4096, 512, torch.float16)
        mlp = torch.nn.Sequential(
            torch.nn.Linear(d, hidden),
            torch.nn.GELU(),
            torch.nn.LayerNorm(hidden),
            torch.nn.Linear(hidden, d),
            torch.nn.ReLU(),
            torch.nn.Linear(d, d),
        ).to(device, dtype)
        compiled = torch.compile(mlp, mode=mode)
        x = torch.randn(batch, d, device=device, dtype=dtype)

        def step() -> list[Any]:
            with torch.no_grad():
                return [compiled(x)]

        return step
    if name == "block":
        d, heads, batch, seq, dtype = (64, 4, 2, 32, torch.float32) if smoke else (1024, 16, 8, 512, torch.bfloat16)
        block = _block_class()(d, heads).to(device, dtype)
        compiled = torch.compile(block, mode=mode)
        x = torch.randn(batch, seq, d, device=device, dtype=dtype)

        def step() -> list[Any]:
            out = compiled(x)
            loss = out.float().square().mean()
            loss.backward()
            return [loss.detach(), block.fc1.weight.grad.float().norm(), block.qkv.weight.grad.float().norm()]

        return step
    if name == "kernel":
        if smoke:
            return lambda: []
        from gpu_e2e_kernel import scaled_rows

        a = torch.randn(8192, 2048, device=device)
        b = torch.randn(8192, 2048, device=device)
        # Inputs made here, not in the step: the step is the kernel's first call, not the copies
        # (whose cost depends on what the process ran before).
        inputs = [(a[:4096, :1024].contiguous(), b[:4096, :1024].contiguous()), (a, b)]

        def step() -> list[Any]:
            return [scaled_rows(x, y) for x, y in inputs]

        return step
    raise ValueError(name)


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


def _triton_runtime_s(smoke: bool) -> float:
    """The same for the rest of Triton's once-a-process setup (CUDA context, backend, driver,
    launcher): one launch of a one-line kernel before the models. A warm phase whose compiled
    graphs launch their kernels through torch's own launcher reaches Triton's runtime first in the
    user kernel's model, where the hot cache, compiling, had reached it earlier."""
    if smoke:
        return 0.0
    from gpu_e2e_kernel import touch_runtime

    start = time.perf_counter()
    touch_runtime()
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


# --------------------------------------------------------------------------- a phase, in its own process


def worker(phase: str, work: Path, smoke: bool) -> dict[str, Any]:
    started = time.perf_counter()
    sys.path.insert(0, str(Path(__file__).parent))
    import torch

    result: dict[str, Any] = {"phase": phase, "import_s": time.perf_counter() - started, "models": {}}
    counts = Counts()
    counts.install()
    pack, blob = work / "model.atpack", work / "megacache.bin"
    start = time.perf_counter()
    if phase == "megacache":
        torch.compiler.load_cache_artifacts(blob.read_bytes())
        result["load"] = {"seconds": time.perf_counter() - start, "bytes_read": blob.stat().st_size}
    elif phase.startswith("atpack"):
        import atpack  # the API path: the only phases whose process imports atpack

        report = atpack.load_cache_artifacts(pack, trust_pickles=phase == "atpack-full")
        result["load"] = {
            "seconds": time.perf_counter() - start,
            "bytes_read": report.bytes_read,
            "actions": {a: report.count(a) for a in ("written", "merged", "present", "skipped", "failed")},
            "report": report.format(),
        }
    result["triton_key_s"] = _triton_key_s()
    result["triton_runtime_s"] = _triton_runtime_s(smoke)
    outputs: dict[str, list[Any]] = {}
    for name in MODELS:
        before, folders = counts.snapshot(), triton_folders()
        mark, timed = len(counts.where), _timed()
        checked, saved = len(counts.checks), len(counts.saves)
        built = time.perf_counter()
        step = build(name, smoke)
        if not smoke:
            torch.cuda.synchronize()
        built_s = time.perf_counter() - built
        out, seconds = first_step(step, smoke)
        outputs[name] = [o.detach().float().cpu() for o in out]
        after = counts.snapshot()
        new = triton_folders() - folders
        host = {f for f in new if any(n.endswith(".so") for n in os.listdir(Path(triton_folder()) / f))}
        from torch._dynamo.utils import counters as torch_counters

        result["models"][name] = {
            "torch_counters": {k: dict(v) for k, v in torch_counters.items() if k in ("inductor", "aot_autograd")},
            "first_step_s": seconds,
            "build_s": built_s,  # the model and its inputs made, their GPU work included
            "benchmarks": {k: after[k] - before[k] for k in after},
            "triton_compiles": len(new - host),
            "host_modules_built": len(host),
            "torch_misses": counts.checks[checked : checked + 40],
            "saves": counts.saves[saved : saved + 150],
            "timed_s": _slowest(timed, _timed()),
            "where": counts.where[mark : mark + 60],
            # which kernels a warm phase still compiles (folder: kernel names), to find what a pack lacks
            "new_kernels": [] if phase == "cold" else [_kernel_names(f) for f in sorted(new - host)][:40],
        }
    result["atpack_modules"] = sorted(m for m in sys.modules if m.split(".")[0] == "atpack")
    if phase == "cold":
        saved = torch.compiler.save_cache_artifacts()
        assert saved is not None
        blob.write_bytes(saved[0])
        result["save"] = {"megacache_bytes": len(saved[0])}
        torch.save(outputs, work / "outputs.pt")
    else:
        reference = torch.load(work / "outputs.pt")
        for name, tensors in outputs.items():
            diffs = [float((a - b).abs().max()) if a.numel() else 0.0 for a, b in zip(tensors, reference[name])]
            result["models"][name]["max_abs_diff_vs_cold"] = max(diffs, default=0.0)
    result["total_s"] = time.perf_counter() - started
    return result


def _kinds(pack: Any) -> dict[str, int]:
    kinds: dict[str, int] = {}
    for a in pack.artifacts:
        kinds[a.kind] = kinds.get(a.kind, 0) + 1
    return kinds


# --------------------------------------------------------------------------- the run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="where results.json goes")
    parser.add_argument("--work", help="scratch folder (default: a fresh one under /tmp)")
    parser.add_argument("--phases", default=",".join(PHASES))
    parser.add_argument("--rounds", type=int, default=3, help="runs of each timed warm phase (default 3)")
    parser.add_argument("--budget-s", type=float, default=570, help="start no repeat that would end later")
    parser.add_argument("--paths", choices=("one", "per-phase"), default="one", help="cache folder paths (above)")
    parser.add_argument(
        "--resume",
        action="store_true",
        help="go on from the results in --work (a run cut in two commands): phases not run yet, then repeats",
    )
    parser.add_argument("--smoke", action="store_true", help="CPU, tiny models: checks the orchestration")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    work = Path(args.work or f"/tmp/atpack-gpu-e2e-{os.getpid()}")
    if args.worker:
        print("RESULT " + json.dumps(worker(args.worker, work, args.smoke)), flush=True)
        return
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    command = "python tools/gpu_e2e.py " + " ".join(sys.argv[1:])
    if args.resume:
        results = json.loads((work / "results.json").read_text())
        results["command"] += f"; then {command}"
    else:
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        results = {"machine": machine(), "command": command, "phases": {}}

    def save() -> None:
        text = portable(json.dumps(results, indent=1), work, out)
        for folder in (out, work):
            (folder / "results.json").write_text(text + "\n")

    started = time.perf_counter()
    for phase in args.phases.split(","):
        if phase in results["phases"]:
            continue
        if time.perf_counter() - started + _expected_s(phase, results) > args.budget_s:
            print(f"{phase}: not started (budget); --resume runs it", flush=True)
            break
        results["phases"][phase] = run_phase(phase, work, out, args.smoke, args.paths == "one")
        save()
        print(f"{phase}: {summary(results['phases'][phase])}", flush=True)
    repeated = [p for p in REPEATED if "models" in results["phases"].get(p, {})]
    for n in range(1, args.rounds):
        for phase in repeated[n % len(repeated) :] + repeated[: n % len(repeated)]:
            record = results["phases"][phase]
            if len(record.get("repeats", [])) >= n:
                continue  # this round ran before --resume
            if time.perf_counter() - started + 1.2 * record["process_s"] > args.budget_s:
                print(f"round {n + 1}: {phase} skipped (budget)", flush=True)
                continue
            again = run_phase(phase, work, out, args.smoke, args.paths == "one")
            record.setdefault("repeats", []).append(again)
            save()
            print(f"round {n + 1}: {phase}: {summary(again)}", flush=True)


def _expected_s(phase: str, results: dict[str, Any]) -> float:
    """How long a first-round phase should take: as long as the slowest warm phase so far (a
    warm phase is no slower than that), or nothing known yet."""
    warm = [r["process_s"] for p, r in results["phases"].items() if p != "cold" and "process_s" in r]
    return 1.5 * max(warm) if warm and phase != "cold" else 0.0


def run_phase(phase: str, work: Path, out: Path, smoke: bool, one_path: bool = True) -> dict[str, Any]:
    """One phase in fresh processes, with a fresh machine folder except for `hot`, at the one
    path every phase uses (`work/machine`) or at one of its own; afterwards it is kept aside as
    `work/<phase>`."""
    name = "cold" if phase == "hot" else phase
    machine, kept = work / ("machine" if one_path else f"machine-{name}"), work / name
    shutil.rmtree(machine, ignore_errors=True)
    if phase == "hot":
        kept.rename(machine)
    else:
        shutil.rmtree(kept, ignore_errors=True)
        (machine / "home").mkdir(parents=True)
        (machine / "tmp").mkdir()
    try:
        return _run_phase(phase, work, out, smoke, machine)
    finally:
        if machine.exists():
            machine.rename(kept)


def _run_phase(phase: str, work: Path, out: Path, smoke: bool, machine: Path) -> dict[str, Any]:
    env = {
        k: v for k, v in os.environ.items() if k not in ("TORCHINDUCTOR_CACHE_DIR", "TRITON_CACHE_DIR", "TRITON_HOME")
    }
    env.update(
        HOME=str(machine / "home"),
        TMPDIR=str(machine / "tmp"),
        ATPACK_CACHE_DIR=str(work / "atpack-cache"),  # torch_key() computed once, as on a node that populated before
        PYTHONUNBUFFERED="1",
    )
    pack = work / "model.atpack"
    worker = [sys.executable, __file__, "--out", str(out), "--work", str(work), "--worker", phase]
    worker += ["--smoke"] if smoke else []
    t = time.perf_counter()
    populated = None
    if phase == "cold":
        atpack = [sys.executable, "-m", "atpack", "capture", "-o", str(pack), "--binaries-only", "--"]
        proc = subprocess.run(atpack + worker, env=env, capture_output=True, text=True)
    else:
        if phase.startswith("cli-"):
            trust = ["--trust-pickles"] if phase == "cli-full" else []
            start = time.perf_counter()
            populate = [sys.executable, "-m", "atpack", "populate", str(pack), "--json", *trust]
            done = subprocess.run(populate, env=env, capture_output=True, text=True)
            if done.returncode != 0:
                return {"error": done.stdout[-3000:] + done.stderr[-3000:], "returncode": done.returncode}
            populated = (time.perf_counter() - start, json.loads(done.stdout))
        proc = subprocess.run(worker, env=env, capture_output=True, text=True)
    line = next((x for x in reversed(proc.stdout.splitlines()) if x.startswith("RESULT ")), None)
    if proc.returncode != 0 or line is None:
        result: dict[str, Any] = {"error": proc.stderr[-6000:], "returncode": proc.returncode}
    else:
        result = json.loads(line[len("RESULT ") :])
    result["process_s"] = time.perf_counter() - t
    if phase == "cold" and "error" not in result:
        result["save"].update(_pack_facts(pack, proc.stdout))
    if populated is not None and "error" not in result:
        seconds, report = populated
        actions = [o["action"] for o in report["outcomes"]]
        result["load"] = {
            "seconds": seconds,
            "bytes_read": report["bytes_read"],
            "actions": {a: actions.count(a) for a in ("written", "merged", "present", "skipped", "failed")},
            "triton_dirs": report["triton_dirs"],
            "replay": report["replay"],
        }
    return result


def _pack_facts(pack: Path, capture_output: str) -> dict[str, Any]:
    import atpack

    with atpack.open(pack) as opened:
        return {
            "pack_bytes": opened.size,
            "pack_blob_bytes": sum(opened.blob_size(d) for d in opened.blob_digests),
            "kinds": _kinds(opened),
            "kernels": sorted(f"{a.cache_key}: {a.name}" for a in opened.artifacts if a.kind == "triton.kernel/1"),
            "capture": [x for x in capture_output.splitlines() if not x.startswith("RESULT ")][-4:],
        }


REPO = Path(__file__).resolve().parent.parent


def portable(text: str, work: Path, out: Path) -> str:
    """`text` naming no folder of the machine it ran on: the work and output folders become
    WORK and OUT, this repository's files relative paths, the interpreter `python`."""
    for path, name in ((work, "WORK"), (out, "OUT"), (Path(sys.executable), "python"), (REPO, ".")):
        text = text.replace(json.dumps(str(path))[1:-1], name)
    return text


def summary(r: dict[str, Any]) -> str:
    if "error" in r:
        return "FAILED " + str(r["error"])[-800:]
    parts = [
        f"{m} {v['first_step_s']:.2f}s bench={v['benchmarks']} compiles={v['triton_compiles']}"
        for m, v in r["models"].items()
    ]
    return "; ".join(parts) + (f"; load {r['load']['seconds']:.2f}s" if "load" in r else "")


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
