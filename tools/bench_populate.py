"""Populate benchmark: 10,000 `.best_config` results plus 500 Triton kernel folders from a local
pack, against torch's own loader (`torch.compiler.load_cache_artifacts`) of the same results and
against the floor of writing the same files directly, all measured side by side in one run.

    python tools/bench_populate.py [--repeats 5] [--configs 10000] [--kernels 500]

Writes tools/results/bench_populate.json and .md. Each repeat runs every method once, in a
shuffled order, into fresh folders; the report gives medians and ratios of medians.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import platform
import random
import secrets
import shutil
import statistics
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

import atpack
from atpack.adapters import inductor, triton
from atpack.artifacts import InductorBestConfig, TritonKernel
from atpack.env import LocalEnvironment
from atpack.files import CacheDir
from atpack.populate import populate

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "tests" / "data" / "h100-torch2.11-triton3.6-mlp.tar.xz"
RESULTS = REPO / "tools" / "results"


def best_configs(n: int, env: str, rng: random.Random) -> list[InductorBestConfig]:
    out = []
    for i in range(n):
        digest = hashlib.sha256(f"kernel-{i}".encode()).hexdigest()
        shard = base64.b32encode(hashlib.sha256(digest.encode()).digest()).decode().lower()[1:3]
        kwargs: tuple[tuple[str, Any], ...] = (("XBLOCK", rng.choice([1, 8, 64, 256, 1024])),)
        if i % 2:
            kwargs += (("R0_BLOCK", rng.choice([64, 512, 2048])),)
        out.append(
            InductorBestConfig(
                env=env,
                path=f"{shard}/{digest}.best_config",
                kwargs=kwargs,
                num_warps=rng.choice([1, 2, 4, 8, 16]),
                num_stages=rng.choice([1, 2, 3]),
                configs_hash=hashlib.sha256(f"configs-{i % 97}".encode()).hexdigest(),
                found_by_coordesc=bool(i % 3),
                time_taken_ms=rng.randrange(5, 2000),
                triton_cache_hash=None,
            )
        )
    return out


def kernel_folders(
    n: int, sample_triton: Path, rng: random.Random
) -> list[tuple[str, str, list[str], dict[str, bytes]]]:
    """(cache key, kernel name, group order, files) for `n` folders modelled on the sample's:
    the same files, with the metadata's hash changed so that each folder is its own kernel."""
    sources = []
    for folder in sorted(sample_triton.iterdir()):
        group = next(folder.glob("__grp__*.json"), None)
        if group is None:
            continue
        name = group.name[len("__grp__") : -len(".json")]
        order = list(json.loads(group.read_text())["child_paths"])
        sources.append((name, order, {c: (folder / c).read_bytes() for c in order}))
    out = []
    for i in range(n):
        name, order, files = sources[i % len(sources)]
        key = base64.b32encode(hashlib.sha256(f"kernel-folder-{i}".encode()).digest()).decode().rstrip("=")
        files = dict(files)
        meta = json.loads(files[f"{name}.json"])
        meta["hash"] = hashlib.sha256(f"{meta['hash']}-{i}".encode()).hexdigest()
        files[f"{name}.json"] = json.dumps(meta).encode()
        out.append((key, name, order, files))
    return out


def write_pack(path: Path, env: atpack.Environment, configs: list[InductorBestConfig], kernels: list[Any]) -> None:
    with atpack.create(path) as w:
        w.add_environment(env)
        for c in configs:
            w.add(c)
        for key, name, order, files in kernels:
            refs = sorted(
                [fname, w.add_blob(data, hint=os.path.splitext(fname)[1]), len(data)] for fname, data in files.items()
            )
            w.add(
                msgspec.convert(
                    {"env": env.digest, "cache_key": key, "name": name, "files": refs, "group": order}, TritonKernel
                )
            )


def expected_files(pack_path: Path, inductor_dir: str, triton_dir: str) -> list[tuple[str, bytes]]:
    """Every file populate writes, rendered in memory: what the floor writes directly."""
    out: list[tuple[str, bytes]] = []
    inductor_root, triton_root = CacheDir(inductor_dir), CacheDir(triton_dir)
    with atpack.open(pack_path) as pack:
        for a in pack.artifacts:
            writes = (
                inductor.files(a, inductor_root) if isinstance(a, InductorBestConfig) else triton.files(a, triton_root)
            )
            out += [(w.path, w.data if w.data is not None else pack.read_blob(w.blob or "")) for w in writes]
    return out


def floor_plain(files: list[tuple[str, bytes]]) -> None:
    for path, data in files:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)


def floor_atomic(files: list[tuple[str, bytes]]) -> None:
    for path, data in files:
        folder = os.path.dirname(path)
        os.makedirs(folder, exist_ok=True)
        tmp = os.path.join(folder, f".tmp-{secrets.token_hex(6)}")
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)


def megacache_blob(configs: list[InductorBestConfig]) -> bytes:
    """The same results as torch's own Megacache artifacts ("autotune" entries)."""
    import torch
    import torch._inductor.runtime.autotune_cache
    from torch.compiler._cache import CacheArtifactManager

    with CacheArtifactManager.with_fresh_cache():
        for c in configs:
            CacheArtifactManager.record_artifact("autotune", c.path, json.loads(inductor.render_best_config(c)))
        saved = torch.compiler.save_cache_artifacts()
    assert saved is not None
    return saved[0]


def default_targets() -> list[str]:
    """A disk-backed folder and, where there is one, a memory-backed one (tmpfs): on disk the
    writes dominate; in memory atpack's own overhead shows."""
    return [tempfile.gettempdir()] + (["/dev/shm"] if os.path.isdir("/dev/shm") else [])


def measure(
    methods: dict[str, Callable[[tuple[str, str]], None]], out: Path, repeats: int, rng: random.Random
) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {m: [] for m in methods}
    for _ in range(repeats):
        order = list(methods)
        rng.shuffle(order)
        for name in order:
            root = out / name.replace(" ", "_").replace(",", "")
            shutil.rmtree(root, ignore_errors=True)
            dirs = (str(root / "inductor"), str(root / "triton"))
            start = time.perf_counter()
            methods[name](dirs)
            times[name].append(time.perf_counter() - start)
            shutil.rmtree(root, ignore_errors=True)
    return times


def ratios_of(medians: dict[str, float]) -> dict[str, float]:
    return {
        "atpack / floor (plain), full": medians["atpack populate, full"] / medians["floor (plain writes), full"],
        "atpack / floor (atomic), full": medians["atpack populate, full"] / medians["floor (atomic writes), full"],
        "atpack / torch, best_config only": medians["atpack populate, best_config only"]
        / medians["torch load_cache_artifacts, best_config only"],
        "atpack / floor (plain), best_config only": medians["atpack populate, best_config only"]
        / medians["floor (plain writes), best_config only"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--configs", type=int, default=10_000)
    parser.add_argument("--kernels", type=int, default=500)
    parser.add_argument("--targets", nargs="+", default=default_targets(), help="folders to populate into")
    args = parser.parse_args()
    rng = random.Random(0)
    work = Path(tempfile.mkdtemp(prefix="atpack-bench-"))
    try:
        with tarfile.open(SAMPLE) as tar:
            tar.extractall(work / "sample", filter="data")
        env = LocalEnvironment().snapshot()
        configs = best_configs(args.configs, env.digest, rng)
        kernels = kernel_folders(args.kernels, work / "sample" / "mlp" / "triton", rng)
        full, configs_only = work / "full.atpack", work / "configs.atpack"
        write_pack(full, env, configs, kernels)
        write_pack(configs_only, env, configs, [])
        blob = megacache_blob(configs)
        import torch

        render = str(work / "render")
        files_full = expected_files(full, f"{render}/inductor", f"{render}/triton")
        files_configs = expected_files(configs_only, f"{render}/inductor", f"{render}/triton")

        def relocate(files: list[tuple[str, bytes]], dirs: tuple[str, str]) -> list[tuple[str, bytes]]:
            return [(p.replace(render, os.path.dirname(dirs[0]), 1), d) for p, d in files]

        def run_atpack(pack: Path) -> Callable[[tuple[str, str]], None]:
            expected = len(atpack.open(pack).artifacts)

            def run(dirs: tuple[str, str]) -> None:
                report = populate(pack, inductor_dir=dirs[0], triton_dir=dirs[1])
                assert report.count("written") == expected, report.format()

            return run

        def run_torch(dirs: tuple[str, str]) -> None:
            os.environ["TORCHINDUCTOR_CACHE_DIR"] = dirs[0]
            torch.compiler.load_cache_artifacts(blob)

        methods: dict[str, Callable[[tuple[str, str]], None]] = {
            "atpack populate, full": run_atpack(full),
            "floor (plain writes), full": lambda d: floor_plain(relocate(files_full, d)),
            "floor (atomic writes), full": lambda d: floor_atomic(relocate(files_full, d)),
            "atpack populate, best_config only": run_atpack(configs_only),
            "torch load_cache_artifacts, best_config only": run_torch,
            "floor (plain writes), best_config only": lambda d: floor_plain(relocate(files_configs, d)),
        }
        by_target = {}
        for target in args.targets:
            out = Path(tempfile.mkdtemp(prefix="atpack-bench-out-", dir=target))
            try:
                times = measure(methods, out, args.repeats, rng)
            finally:
                shutil.rmtree(out, ignore_errors=True)
            medians = {m: statistics.median(t) for m, t in times.items()}
            by_target[target] = {"seconds": times, "median_seconds": medians, "ratios": ratios_of(medians)}
        result = {
            "command": "python tools/bench_populate.py " + " ".join(sys.argv[1:]),
            "machine": {
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "platform": platform.platform(),
                "torch": torch.__version__,
                "atpack": atpack.__version__,
            },
            "workload": {
                "best_configs": args.configs,
                "kernel_folders": args.kernels,
                "files_written": len(files_full),
                "bytes_written": sum(len(d) for _, d in files_full),
                "pack_bytes": full.stat().st_size,
                "megacache_blob_bytes": len(blob),
                "repeats": args.repeats,
            },
            "targets": by_target,
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "bench_populate.json").write_text(json.dumps(result, indent=2) + "\n")
    w = result["workload"]
    lines = [
        "# Populate benchmark",
        "",
        f"`{result['command']}` on {result['machine']['platform']}, {result['machine']['cpus']} CPUs, "
        f"Python {result['machine']['python']}, torch {result['machine']['torch']}.",
        "",
        f"Workload: {args.configs:,} `.best_config` results and {args.kernels} Triton kernel folders "
        f"({w['files_written']:,} files, {w['bytes_written']:,} bytes) from a local pack of {w['pack_bytes']:,} "
        f"bytes; torch's loader gets the same {args.configs:,} results as a Megacache blob of "
        f"{w['megacache_blob_bytes']:,} bytes (it has no kernel folders). Medians of {args.repeats} runs per "
        "method, methods interleaved in a shuffled order, fresh folders each run.",
    ]
    for target, r in by_target.items():
        lines += ["", f"## Populating into {target}", "", "| method | median s |", "|---|---:|"]
        lines += [f"| {m} | {v:.3f} |" for m, v in r["median_seconds"].items()]
        lines += ["", "| ratio of medians | value |", "|---|---:|"]
        lines += [f"| {k} | {v:.2f} |" for k, v in r["ratios"].items()]
    (RESULTS / "bench_populate.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
