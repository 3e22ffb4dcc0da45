"""`atpack populate` as a container start sees it: whole processes, each in a fresh "container"
(a fresh, empty HOME and TMPDIR; no TORCHINDUCTOR_CACHE_DIR, TRITON_CACHE_DIR or ATPACK_CACHE_DIR,
so torch's and Triton's default folders and no atpack cache), timed from process start to exit,
against the floor: processes that write the same bytes to the same names.

    python tools/bench_container_start.py [--runs 7] [--quick] [--targets /dev/shm /tmp] [--out DIR]

Methods, each run in fresh folders at one path (so the absolute paths Triton's group files hold
are the same bytes for every method):

- ``atpack populate PACK --ignore-environment --trust-pickles``: the CLI (``python -m atpack``)
  into the default folders. The packs were made on an H100 (torch 2.11, triton 3.6): on any
  other machine every artifact is otherwise skipped as made elsewhere.
- ``atpack populate PACK``: the environment check on; here it skips every artifact (what the
  check and the report cost, nothing written).
- floor, ``tar -xf``: a tar of exactly the files populate wrote (taken once from a populated
  tree, hard links included), extracted.
- floor, Python: one process reads one file holding every byte and writes each file with
  open/write and `os.replace` from a temporary name, as atomic writers do (hard links as links);
  once on one thread, once on 8 (populate writes on 8 threads where creating files is slow).
- references (the sample only): ``python -c pass`` (interpreter start) and a process that only
  imports what populate imports.

Workloads: the shipped H100 sample packed as tools/demo.py packs it (with its environment file)
plus the sample's Megacache blob (``atpack pack --megacache``), and a 10,000-artifact pack
(tools/bench_populate.py's generator: 9,500 ``.best_config`` results and 500 Triton kernel folders
modelled on the sample's, recorded under the sample's environment). Each on every target folder
(by default /dev/shm and the temporary folder's disk), N runs per method, the methods rotated
each run; medians and ratios of medians. Then a profile of populating the sample into
/dev/shm (``-X importtime`` and cProfile). Writes tools/results/bench_container_start.json and .md.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import lzma
import os
import platform
import pstats
import random
import re
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "tests" / "data" / "h100-torch2.11-triton3.6-mlp.tar.xz"
SAMPLE_ENV = REPO / "tests" / "data" / "h100-torch2.11-triton3.6-mlp.environment.json"
RESULTS = REPO / "tools" / "results"
PY = sys.executable
TIME = "/usr/bin/time" if os.access("/usr/bin/time", os.X_OK) else ""

POPULATE = "atpack populate --ignore-environment --trust-pickles"
CHECKED = "atpack populate (environment check on)"
TAR = "floor: tar -xf"
FLOOR1 = "floor: python, atomic writes"
FLOOR8 = "floor: python, atomic writes, 8 threads"
PASS = "reference: python -c pass"
IMPORTS = "reference: python importing what populate imports"
FLOORS = (TAR, FLOOR1, FLOOR8)
WRITERS = (POPULATE, *FLOORS)

# The Python floor: one read of one file holding every byte, then each file written through a
# temporary name and os.replace; folders first, hard links last (as populate and tar make them).
FLOOR_SCRIPT = r"""
import os, sys, json
from concurrent.futures import ThreadPoolExecutor
with open(sys.argv[1], "rb") as f:
    blob = memoryview(f.read())
n = int.from_bytes(blob[:8], "little")
index = json.loads(bytes(blob[8 : 8 + n]))
data = blob[8 + n :]
for d in index["dirs"]:
    os.mkdir(d)
def write(batch):
    for path, start, size in batch:
        folder, name = os.path.split(path)
        tmp = os.path.join(folder, "." + name + ".tmp")
        with open(tmp, "wb") as f:
            f.write(data[start : start + size])
        os.replace(tmp, path)
files, threads = index["files"], int(sys.argv[2])
if threads > 1:
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(write, [files[i : i + 32] for i in range(0, len(files), 32)]))
else:
    write(files)
for existing, new in index["links"]:
    os.link(existing, new)
"""

# What is dropped from the environment of every timed process: a fresh container sets none of them.
DROPPED_PREFIXES = ("TORCHINDUCTOR_", "TRITON_", "ATPACK_", "TORCH_COMPILE_")
DROPPED = {"XDG_CACHE_HOME", "TMP", "TEMP", "TEMPDIR", "LOCAL_RANK", "CUDA_VISIBLE_DEVICES"}

REPORT_LINE = re.compile(r"(\d+) artifacts: (.*) in ([0-9.]+) s, ([0-9,]+) bytes read")


# --------------------------------------------------------------------------- trees


@dataclass
class Tree:
    """What a container holds: folders, files (size, inode) and which files are one inode."""

    dirs: list[str]
    files: dict[str, tuple[int, tuple[int, int]]]

    @classmethod
    def of(cls, root: Path) -> Tree:
        dirs, files = [], {}
        for folder, _, names in os.walk(root):
            rel = os.path.relpath(folder, root)
            if rel != ".":
                dirs.append(rel)
            for name in names:
                st = os.lstat(os.path.join(folder, name))
                files[os.path.normpath(os.path.join(rel, name))] = (st.st_size, (st.st_dev, st.st_ino))
        return cls(sorted(dirs), files)

    @property
    def inodes(self) -> int:
        return len({ino for _, ino in self.files.values()})

    @property
    def bytes(self) -> int:
        """Bytes of file content written: each inode once."""
        return sum({ino: size for size, ino in self.files.values()}.values())

    def same_shape(self, other: Tree) -> str:
        """ "" where `other` holds the same folders, names, sizes and number of inodes; else why not."""
        if set(self.dirs) != set(other.dirs):
            return f"folders differ: {sorted(set(self.dirs) ^ set(other.dirs))[:3]}"
        if self.files.keys() != other.files.keys():
            return f"files differ: {sorted(self.files.keys() ^ other.files.keys())[:3]}"
        sizes = [p for p in self.files if self.files[p][0] != other.files[p][0]]
        if sizes:
            return f"sizes differ: {sizes[:3]}"
        if self.inodes != other.inodes:
            return f"{other.inodes} inodes, expected {self.inodes}"
        return ""


def digests(root: Path, tree: Tree) -> dict[str, str]:
    out = {}
    for rel in tree.files:
        with open(root / rel, "rb") as f:
            out[rel] = hashlib.sha256(f.read()).hexdigest()
    return out


def write_payload(root: Path, tree: Tree, out: Path) -> None:
    """One file holding every byte of `tree` and its index, for the Python floor."""
    first: dict[tuple[int, int], str] = {}
    files, links, offset = [], [], 0
    with open(out, "wb") as f:
        body = bytearray()
        for rel in sorted(tree.files):
            size, ino = tree.files[rel]
            if ino in first:
                links.append([first[ino], rel])
                continue
            first[ino] = rel
            body += (root / rel).read_bytes()
            files.append([rel, offset, size])
            offset += size
        made = [d for d in tree.dirs if d not in ("home", "tmp")]  # a fresh container has those
        index = json.dumps({"dirs": made, "files": files, "links": links}).encode()
        f.write(len(index).to_bytes(8, "little") + index)
        f.write(body)


# --------------------------------------------------------------------------- processes


@dataclass
class Run:
    seconds: float
    cpu_seconds: float
    max_rss_kb: int
    stdout: str
    stderr: str


def container_env(container: Path) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if k not in DROPPED and not any(k.startswith(p) for p in DROPPED_PREFIXES)
    }
    env["HOME"] = str(container / "home")
    env["TMPDIR"] = str(container / "tmp")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    return env


def fresh(container: Path) -> None:
    """An empty container at `container`: its HOME and TMPDIR exist and hold nothing; the
    filesystem's pending writes of earlier runs flushed first (untimed)."""
    if container.exists():
        shutil.rmtree(container)
    (container / "home").mkdir(parents=True)
    (container / "tmp").mkdir()
    os.sync()


def timed(argv: list[str], container: Path, logs: Path) -> Run:
    """Run `argv` in `container` (its working folder), wall clock from spawn to exit, with its
    CPU time (`os.wait4`: the process and what it waited for) and its peak RSS, which
    /usr/bin/time reports: the RSS `wait4` reports of a child starts at this (larger) process's,
    which the child inherits through fork."""
    out, err, rss = logs / "stdout", logs / "stderr", logs / "rss"
    env = container_env(container)
    wrapped = [TIME, "-f", "%M", "-o", str(rss), *argv] if TIME else argv
    with open(out, "wb") as o, open(err, "wb") as e:
        start = time.perf_counter()
        proc = subprocess.Popen(wrapped, cwd=container, env=env, stdout=o, stderr=e)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    max_rss = int(rss.read_text().split()[-1]) if TIME else usage.ru_maxrss
    run = Run(seconds, usage.ru_utime + usage.ru_stime, max_rss, out.read_text(), err.read_text())
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} exited with {proc.returncode}:\n{run.stdout}\n{run.stderr}")
    return run


def compile_atpack() -> None:
    """Byte-compile the atpack being measured, as an installed package is (pip compiles on
    install): where PYTHONDONTWRITEBYTECODE is set, every process would compile it again."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    subprocess.run([PY, "-m", "compileall", "-q", str(REPO / "atpack")], env=env, check=True)


# --------------------------------------------------------------------------- workloads


@dataclass
class Workload:
    name: str
    pack: Path
    artifacts: int
    description: str
    facts: dict[str, Any] = field(default_factory=dict)


def build_sample(work: Path) -> Workload:
    """The shipped sample, packed as tools/demo.py packs it, plus its Megacache blob."""
    with tarfile.open(SAMPLE) as tar:
        tar.extractall(work / "sample", filter="data")
    mlp = work / "sample" / "mlp"
    blob = mlp / "megacache.bin"
    blob.write_bytes(lzma.decompress((mlp / "megacache.bin.xz").read_bytes()))
    pack = work / "sample.atpack"
    argv = [PY, "-m", "atpack", "pack", "--inductor-dir", str(mlp / "inductor"), "--triton-dir", str(mlp / "triton")]
    argv += ["--environment", str(SAMPLE_ENV), "--annotate", "org.atpack.sample=h100-mlp"]
    argv += ["--megacache", str(blob), "-o", str(pack)]
    done = subprocess.run(argv, capture_output=True, text=True, env={**os.environ, **_pythonpath()}, check=True)
    artifacts = int(re.search(r"packed (\d+) artifacts", done.stdout).group(1))  # type: ignore[union-attr]
    kinds = {m[1]: int(m[0]) for m in re.findall(r"^\s+(\d+)\s+(\S+)$", done.stdout, re.MULTILINE)}
    return Workload(
        "H100 sample",
        pack,
        artifacts,
        f"{SAMPLE.name} packed as tools/demo.py packs it (its environment file) plus its Megacache blob "
        f"(megacache.bin.xz, {blob.stat().st_size:,} bytes)",
        {"artifacts_by_kind": kinds, "megacache_blob_bytes": blob.stat().st_size},
    )


def build_large(work: Path, configs: int, kernels: int) -> Workload:
    """tools/bench_populate.py's generator: `configs` .best_config results and `kernels` Triton
    kernel folders modelled on the sample's, recorded under the sample's environment."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import bench_populate

    from atpack.env import environment_from_json

    env = environment_from_json(SAMPLE_ENV.read_bytes())
    rng = random.Random(0)
    pack = work / "large.atpack"
    bench_populate.write_pack(
        pack,
        env,
        bench_populate.best_configs(configs, env.digest, rng),
        bench_populate.kernel_folders(kernels, work / "sample" / "mlp" / "triton", rng),
    )
    return Workload(
        f"{configs + kernels:,} artifacts",
        pack,
        configs + kernels,
        f"{configs:,} `.best_config` results and {kernels} Triton kernel folders modelled on the sample's "
        "(tools/bench_populate.py's generator), recorded under the sample's H100 environment",
        {"best_configs": configs, "kernel_folders": kernels},
    )


def _pythonpath() -> dict[str, str]:
    return {"PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)}


# --------------------------------------------------------------------------- measuring


def populate_argv(pack: Path, *, checked: bool = False) -> list[str]:
    flags = [] if checked else ["--ignore-environment", "--trust-pickles"]
    return [PY, "-m", "atpack", "populate", str(pack), *flags]


def populate_imports(pack: Path, container: Path, logs: Path) -> tuple[list[str], list[tuple[str, int, int]]]:
    """The modules `python -m atpack populate` imports beyond a bare interpreter's (those it
    imports at the top level of its import tree), and every line of its ``-X importtime``."""

    def imported(argv: list[str]) -> list[tuple[str, int, int, int]]:
        fresh(container)
        run = timed([PY, "-X", "importtime", *argv[1:]], container, logs)
        rows = []
        for line in run.stderr.splitlines():
            m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)", line)
            if m:
                rows.append((m[4], int(m[1]), int(m[2]), len(m[3])))
        return rows

    bare = {name for name, *_ in imported([PY, "-c", "pass"])}
    rows = imported(populate_argv(pack))
    top = [name for name, _, _, depth in rows if depth == 1 and name not in bare and not name.endswith("__main__")]
    return top, [(name, self_us, cumulative) for name, self_us, cumulative, _ in rows if name not in bare]


@dataclass
class Target:
    folder: str
    base: Path
    container: Path

    @classmethod
    def make(cls, folder: str) -> Target:
        base = Path(tempfile.mkdtemp(prefix="atpack-container-start-", dir=folder))
        return cls(folder, base, base / "container")


def measure(
    target: Target, workload: Workload, runs: int, reference_imports: list[str] | None, log: Callable[[str], None]
) -> dict[str, Any]:
    """Every method `runs` times into fresh folders on `target`, rotating the order."""
    load_before = " ".join(f"{x:.2f}" for x in os.getloadavg())
    pack = target.base / workload.pack.name
    shutil.copyfile(workload.pack, pack)
    logs = target.base / "logs"
    logs.mkdir(exist_ok=True)

    # the reference tree: what populate writes, from which the floors are made
    fresh(target.container)
    run = timed(populate_argv(pack), target.container, logs)
    check_report(run, workload, written=True)
    tree = Tree.of(target.container)
    content = digests(target.container, tree)
    tar_file, payload = target.base / "floor.tar", target.base / "floor.payload"
    tops = [f"{side}/{name}" for side in ("home", "tmp") for name in sorted(os.listdir(target.container / side))]
    subprocess.run(["tar", "-cf", str(tar_file), "-C", str(target.container), *tops], check=True)
    write_payload(target.container, tree, payload)

    methods: dict[str, list[str]] = {
        POPULATE: populate_argv(pack),
        CHECKED: populate_argv(pack, checked=True),
        TAR: ["tar", "-xf", str(tar_file)],
        FLOOR1: [PY, "-c", FLOOR_SCRIPT, str(payload), "1"],
        FLOOR8: [PY, "-c", FLOOR_SCRIPT, str(payload), "8"],
    }
    if reference_imports is not None:
        methods[PASS] = [PY, "-c", "pass"]
        methods[IMPORTS] = [PY, "-c", "import " + ", ".join(reference_imports)]
    names = list(methods)
    runs_of: dict[str, list[Run]] = {m: [] for m in names}
    checked_content: set[str] = set()
    left: list[int] = []  # files the environment-checked populate leaves
    for r in range(runs):
        k = r % len(names)
        for name in names[k:] + names[:k]:
            fresh(target.container)
            run = timed(methods[name], target.container, logs)
            runs_of[name].append(run)
            if name == POPULATE:
                check_report(run, workload, written=True)
            elif name == CHECKED:
                check_report(run, workload, written=False)
                left.append(len(Tree.of(target.container).files))
            if name in WRITERS:
                got = Tree.of(target.container)
                if why := tree.same_shape(got):
                    raise SystemExit(f"{name} on {target.folder}, {workload.name}: not the reference tree: {why}")
                if name not in checked_content:
                    if digests(target.container, got) != content:
                        raise SystemExit(f"{name} on {target.folder}, {workload.name}: other bytes than populate's")
                    checked_content.add(name)
        log(f"  {target.folder}, {workload.name}: run {r + 1}/{runs} done")
    shutil.rmtree(target.container)
    medians = {m: statistics.median(x.seconds for x in v) for m, v in runs_of.items()}
    cpu = {m: statistics.median(x.cpu_seconds for x in v) for m, v in runs_of.items()}
    mins = {m: min(x.seconds for x in v) for m, v in runs_of.items()}
    floor = min(FLOORS, key=lambda m: medians[m])
    result: dict[str, Any] = {
        "load_average": {"before": load_before, "after": " ".join(f"{x:.2f}" for x in os.getloadavg())},
        "order": names,
        "seconds": {m: [round(x.seconds, 4) for x in v] for m, v in runs_of.items()},
        "cpu_seconds": {m: [round(x.cpu_seconds, 4) for x in v] for m, v in runs_of.items()},
        "median_seconds": medians,
        "median_cpu_seconds": cpu,
        "checked_files_left": max(left),
        "median_max_rss_kb": {m: statistics.median(x.max_rss_kb for x in v) for m, v in runs_of.items()},
        "populate_in_process_seconds": statistics.median(report_seconds(x) for x in runs_of[POPULATE]),
        "checked_in_process_seconds": statistics.median(report_seconds(x) for x in runs_of[CHECKED]),
        "ratios": {m: {f: medians[m] / medians[f] for f in FLOORS} for m in names},
        "cpu_ratios": {m: {f: cpu[m] / cpu[f] for f in FLOORS} for m in names},
        "fastest_floor": floor,
        "populate_over_fastest_floor": medians[POPULATE] / medians[floor],
        "min_seconds": mins,
        "populate_min_over_fastest_floor_min": mins[POPULATE] / min(mins[f] for f in FLOORS),
        "tree": {
            "files": len(tree.files),
            "inodes": tree.inodes,
            "hard_links": len(tree.files) - tree.inodes,
            "folders": len(tree.dirs),
            "bytes": tree.bytes,
            "tar_bytes": tar_file.stat().st_size,
            "pack_bytes": pack.stat().st_size,
        },
        "populate_stdout": runs_of[POPULATE][0].stdout,
        "checked_stdout_tail": runs_of[CHECKED][0].stdout.splitlines()[-2:],
        "commands": {m: " ".join(_shown(a) for a in argv) for m, argv in methods.items()},
    }
    return result


def _shown(arg: str) -> str:
    """An argument as the results show it: no path of this machine's interpreter, no script text."""
    if arg == FLOOR_SCRIPT:
        return "'<floor script>'"
    return "python" if arg == PY else arg


def check_report(run: Run, workload: Workload, *, written: bool) -> None:
    m = REPORT_LINE.search(run.stdout)
    if m is None or int(m[1]) != workload.artifacts or "failed" in m[2]:
        raise SystemExit(f"unexpected populate report for {workload.name}:\n{run.stdout}\n{run.stderr}")
    if written and "skipped" in m[2]:
        raise SystemExit(f"populate skipped artifacts of {workload.name}:\n{run.stdout}")
    if not written and m[2] != f"{workload.artifacts} skipped":
        raise SystemExit(f"the environment check did not skip every artifact of {workload.name}:\n{run.stdout}")


def report_seconds(run: Run) -> float:
    m = REPORT_LINE.search(run.stdout)
    assert m is not None
    return float(m[3])


# --------------------------------------------------------------------------- profile


def import_profile(import_rows: list[tuple[str, int, int]]) -> dict[str, Any]:
    """Import costs (``-X importtime`` of populating the sample, beyond a bare interpreter's
    imports): self time summed by top-level package, and the slowest modules, cumulative."""
    by_package: dict[str, int] = {}
    for name, self_us, _ in import_rows:
        top = name.split(".")[0]
        by_package[top] = by_package.get(top, 0) + self_us
    return {
        "self_ms_by_package": dict(sorted(((k, v / 1000) for k, v in by_package.items()), key=lambda kv: -kv[1])),
        "total_ms": sum(by_package.values()) / 1000,
        "slowest_cumulative_ms": [
            (name, cumulative / 1000) for name, _, cumulative in sorted(import_rows, key=lambda r: -r[2])[:15]
        ],
    }


def cprofile(target: Target, workload: Workload) -> dict[str, Any]:
    """One run of populating `workload` into a fresh container on `target` under cProfile: the
    cumulative time of each phase (`PROFILE_PHASES`) and the functions with the most own time."""
    pack = target.base / workload.pack.name
    if not pack.exists():
        shutil.copyfile(workload.pack, pack)
    logs = target.base / "logs"
    logs.mkdir(exist_ok=True)
    prof = target.base / "populate.prof"
    fresh(target.container)
    run = timed([PY, "-m", "cProfile", "-o", str(prof), *populate_argv(pack)[1:]], target.container, logs)
    check_report(run, workload, written=True)
    stats = pstats.Stats(str(prof))
    rows = []
    for (file, line, func), (_, nc, tt, ct, _) in stats.stats.items():  # type: ignore[attr-defined]
        rows.append({"function": _function(file, line, func), "calls": nc, "tottime": tt, "cumtime": ct})
    atpack_rows = [r for r in rows if r["function"].startswith("atpack/")]
    return {
        "total_s": max(r["cumtime"] for r in rows),
        "wall_s": run.seconds,
        "top_tottime": sorted(rows, key=lambda r: -r["tottime"])[:20],
        "top_atpack_cumtime": sorted(atpack_rows, key=lambda r: -r["cumtime"])[:25],
        "phases": {
            label: sum(r["cumtime"] for r in rows if r["function"] == function)
            for label, function in PROFILE_PHASES.items()
        },
    }


PROFILE_PHASES: dict[str, str] = {
    "every import (cumulative)": "<frozen importlib._bootstrap>:_find_and_load",
    "argument parsing (`cli._parser`)": "atpack/cli.py:_parser",
    "`populate()`": "atpack/populate.py:populate",
    "opening the pack, reading its index (`open_pack`)": "atpack/pack.py:open_pack",
    "environment check (`env.mismatches`)": "atpack/env.py:mismatches",
    "planning: each file's state in the folder (`_plan`)": "atpack/populate.py:_plan",
    "checking kernel blobs before writing (`_check_blobs`)": "atpack/populate.py:_check_blobs",
    "writing the artifacts' files (`_write`)": "atpack/populate.py:_write",
    "writing Megacache entries (`_replay`)": "atpack/populate.py:_replay",
    "reading blobs: read, verify, decompress (`Pack.read_blobs`)": "atpack/pack.py:read_blobs",
    "zstd decompression": "<method 'decompress' of 'zstandard.backend_c.ZstdDecompressor' objects>",
    "SHA-256 of blobs (`digest_bytes`)": "atpack/digest.py:digest_bytes",
    "creating files (`CacheDir.write`)": "atpack/files.py:write",
    "`os.write`": "<built-in method posix.write>",
    "formatting the report": "atpack/populate.py:format",
}


def _function(file: str, line: int, func: str) -> str:
    """A profiler row's function, with its file relative to atpack's folder or site-packages."""
    if file == "~":
        return func
    if file.startswith("<"):
        return f"{file}:{func}"
    for anchor in ("/atpack/", "/site-packages/"):
        if anchor in file:
            rel = file[file.rindex(anchor) + 1 :]
            return f"{rel.removeprefix('site-packages/')}:{func}"
    return f"{os.path.basename(file)}:{func}"


# --------------------------------------------------------------------------- report


def git_commit() -> str:
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "atpack"], cwd=REPO, capture_output=True, text=True)
        return commit.stdout.strip() + (" (atpack/ modified)" if dirty.stdout.strip() else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def markdown(result: dict[str, Any]) -> str:
    m = result["machine"]
    lines = [
        "# Container start: `atpack populate` against the floor",
        "",
        f"`{result['command']}`, atpack commit {result['atpack_commit']}, on {m['platform']}, {m['cpus']} CPUs, "
        f"Python {m['python']}; load average {m['load_before']} before, {m['load_after']} after "
        f"(a shared machine: other jobs ran on the same {m['cpus']} cores).",
        "",
        "Each run is a whole process in a fresh container: an empty HOME and TMPDIR, no "
        "TORCHINDUCTOR_CACHE_DIR, TRITON_CACHE_DIR or ATPACK_CACHE_DIR (torch's and Triton's default folders, "
        "no atpack cache), timed from spawn to exit. "
        f"Medians of {result['runs']} runs per method, the methods' order rotated each run, every run into "
        "fresh folders (the same path, emptied and `sync`ed untimed before each run), each run checked to "
        "leave the reference tree (names, sizes, hard links; every byte on each method's first run). "
        "The pack is read from the same filesystem (in the page cache, as after a pull).",
        "",
        "The packs were made on an H100 (torch 2.11, triton 3.6): on this CPU machine (torch "
        f"{m.get('torch', '?')}, triton {m.get('triton', '?')}, no GPU) populate skips every artifact as made "
        "elsewhere, so the timed populate passes `--ignore-environment --trust-pickles` (the full restore, "
        "Triton's host modules and pickled Megacache entries included). `atpack populate PACK` (environment "
        "check on) is timed too: it writes nothing here, and shows what the check and the report cost.",
        "",
        "Floors write the same bytes to the same names in the same folders: `tar -xf` of a tar of exactly the "
        "files populate wrote (taken once from a populated tree; hard links as links), and a Python process "
        "that reads one file holding every byte and writes each file through a temporary name and "
        "`os.replace` (hard links as links), on 1 thread and on 8 (populate switches to 8 threads where "
        "creating a file is slow). The acceptance ratio is against the fastest floor.",
        "",
        "## Workloads",
        "",
    ]
    for w in result["workloads"]:
        lines.append(f"- **{w['name']}**: {w['description']}; {w['artifacts']:,} artifacts.")
    lines.append("")
    lines.append("| workload | target | files | hard links | folders | bytes written | pack bytes |")
    lines.append("|---|---|---:|---:|---:|---:|---:|")
    for target, per in result["targets"].items():
        for wname, r in per.items():
            t = r["tree"]
            lines.append(
                f"| {wname} | {target} | {t['files']:,} | {t['hard_links']:,} | {t['folders']:,} | "
                f"{t['bytes']:,} | {t['pack_bytes']:,} |"
            )
    lines += ["", "## Results", ""]
    for target, per in result["targets"].items():
        for wname, r in per.items():
            med, cpu, rss = r["median_seconds"], r["median_cpu_seconds"], r["median_max_rss_kb"]
            load = r["load_average"]
            lines += [
                f"### {wname}, {target}",
                "",
                f"(load average {load['before']} before, {load['after']} after)",
                "",
                "| method | median wall s | / tar -xf | / python floor | / python floor, 8 threads "
                "| min wall s | median CPU s | peak RSS MiB |",
                "|---|---:|---:|---:|---:|---:|---:|---:|",
            ]
            for name in r["order"]:
                ratio = r["ratios"][name]
                lines.append(
                    f"| {name} | {med[name]:.3f} | {ratio[TAR]:.2f}x | {ratio[FLOOR1]:.2f}x | {ratio[FLOOR8]:.2f}x "
                    f"| {r['min_seconds'][name]:.3f} | {cpu[name]:.3f} | {rss[name] / 1024:.0f} |"
                )
            lines += [
                "",
                f"populate over the fastest floor ({r['fastest_floor']}): **{r['populate_over_fastest_floor']:.2f}x**; "
                f"populate's own report (the `populate()` call, in-process): {r['populate_in_process_seconds']:.3f} s "
                f"(environment check on: {r['checked_in_process_seconds']:.3f} s, every artifact skipped, "
                f"{r['checked_files_left']} files left). In CPU time (less sensitive to the "
                "other jobs on the machine), populate is "
                + ", ".join(f"{r['cpu_ratios'][POPULATE][f]:.2f}x {f}" for f in FLOORS)
                + f". Fastest run against the fastest floor's fastest run: "
                f"{r['populate_min_over_fastest_floor_min']:.2f}x.",
                "",
            ]
    acc = result["acceptance"]
    lines += ["## Acceptance", "", "| criterion | measured | holds |", "|---|---|---|"]
    lines += [f"| {a['criterion']} | {a['measured']} | {'yes' if a['holds'] else '**no**'} |" for a in acc]
    if "profile" in result:
        lines += ["", *profile_markdown(result)]
    return "\n".join(lines) + "\n"


def profile_markdown(result: dict[str, Any]) -> list[str]:
    p, b = result["profile"], result["breakdown"]
    wall, cpu = b["parts"]["wall"], b["parts"]["cpu"]
    lines = [
        f"## Where the time goes (the H100 sample, {b['target']})",
        "",
        "From the medians above (whole processes, no profiler):",
        "",
        "| part | wall s | share | CPU s | share |",
        "|---|---:|---:|---:|---:|",
    ]
    for label in wall:
        label_shown = "**populate, in all**" if label == "populate" else label
        lines.append(
            f"| {label_shown} | {wall[label]:.3f} | {wall[label] / wall['populate']:.0%} "
            f"| {cpu[label]:.3f} | {cpu[label] / cpu['populate']:.0%} |"
        )
    imports, profiles = p["imports"], p["cprofile"]
    lines += [
        "",
        f"Imports (`python -X importtime`, one run of populating the sample; {imports['total_ms']:.0f} ms of self "
        "time beyond a bare interpreter's imports, which the profiler inflates), self time summed by top-level "
        "package:",
        "",
        "| package | ms |",
        "|---|---:|",
    ]
    lines += [f"| {k} | {v:.1f} |" for k, v in list(imports["self_ms_by_package"].items())[:12]]
    lines += ["", "Slowest imports, cumulative (each includes what it imports):", "", "| module | ms |", "|---|---:|"]
    lines += [f"| {k} | {v:.1f} |" for k, v in imports["slowest_cumulative_ms"][:12]]
    names = list(profiles)
    lines += [
        "",
        f"cProfile of one run of each workload into {b['target']} (`python -m cProfile -m atpack populate ...`; "
        + "; ".join(f"{n}: {profiles[n]['wall_s']:.2f} s wall with the profiler" for n in names)
        + "; the profiler slows Python code more than C calls), cumulative time of the phases:",
        "",
        "| phase | " + " | ".join(f"{n} s" for n in names) + " |",
        "|---|" + "---:|" * len(names),
    ]
    for label in PROFILE_PHASES:
        lines.append(f"| {label} | " + " | ".join(f"{profiles[n]['phases'][label]:.3f}" for n in names) + " |")
    for n in names:
        lines += [
            "",
            f"Top functions by own time, {n}:",
            "",
            "| function | calls | own s | cumulative s |",
            "|---|---:|---:|---:|",
        ]
        lines += [
            f"| `{r['function']}` | {r['calls']:,} | {r['tottime']:.3f} | {r['cumtime']:.3f} |"
            for r in profiles[n]["top_tottime"][:12]
        ]
    return lines


def acceptance(result: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for target, per in result["targets"].items():
        for wname, r in per.items():
            wall = r["median_seconds"][POPULATE]
            ratio = r["populate_over_fastest_floor"]
            each = ", ".join(f"{r['ratios'][POPULATE][f]:.2f}x {f}" for f in FLOORS)
            if wname == "H100 sample":
                out.append(
                    {
                        "criterion": f"{wname}, {target}: populate <= 0.5 s wall",
                        "measured": f"{wall:.3f} s",
                        "holds": wall <= 0.5,
                    }
                )
            out.append(
                {
                    "criterion": f"{wname}, {target}: populate <= 1.5x the floor",
                    "measured": f"{ratio:.2f}x {r['fastest_floor']} ({each})",
                    "holds": ratio <= 1.5,
                }
            )
    return out


def breakdown(sample: dict[str, Any], target: str) -> dict[str, Any]:
    """Populate's wall clock and CPU time split by the reference processes: interpreter start,
    imports, and the work after them."""
    parts = {}
    for key, med in (("wall", sample["median_seconds"]), ("cpu", sample["median_cpu_seconds"])):
        parts[key] = {
            "interpreter start and exit (`python -c pass`)": med[PASS],
            "imports (a process importing what populate imports, less `python -c pass`)": med[IMPORTS] - med[PASS],
            "the work after the imports: read, check, write, report (populate less that process)": med[POPULATE]
            - med[IMPORTS],
        }
        parts[key]["populate"] = med[POPULATE]
        parts[key]["the fastest floor's work (less `python -c pass`)"] = min(med[f] for f in FLOORS) - med[PASS]
    return {"target": target, "parts": parts}


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("atpack", "torch", "triton", "msgspec", "zstandard", "fsspec"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "-"
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=7, help="runs per method (default 7)")
    parser.add_argument("--quick", action="store_true", help="2 runs, the sample only (a smoke run)")
    parser.add_argument("--configs", type=int, default=9_500, help=".best_config results of the large pack")
    parser.add_argument("--kernels", type=int, default=500, help="Triton kernel folders of the large pack")
    parser.add_argument("--targets", nargs="+", default=None, help="folders to populate into")
    parser.add_argument("--no-profile", action="store_true", help="skip the profile")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where to write the results")
    args = parser.parse_args()
    runs = 2 if args.quick else args.runs
    targets = args.targets or ([f for f in ("/dev/shm",) if os.path.isdir(f)] + [tempfile.gettempdir()])
    started = time.time()
    compile_atpack()

    def log(text: str) -> None:
        print(f"[{time.time() - started:6.1f} s] {text}", flush=True)

    load_before = " ".join(f"{x:.2f}" for x in os.getloadavg())
    build = Path(tempfile.mkdtemp(prefix="atpack-container-build-", dir=targets[0]))
    made: list[Target] = []
    try:
        sample = build_sample(build)
        workloads = [sample] if args.quick else [sample, build_large(build, args.configs, args.kernels)]
        log("packs built: " + ", ".join(f"{w.name} ({w.pack.stat().st_size:,} bytes)" for w in workloads))
        by_target: dict[str, dict[str, Any]] = {}
        imports_of: list[str] = []
        import_rows: list[tuple[str, int, int]] = []
        for folder in targets:
            target = Target.make(folder)
            made.append(target)
            if not imports_of:
                shutil.copyfile(sample.pack, target.base / sample.pack.name)
                (target.base / "logs").mkdir(exist_ok=True)
                imports_of, import_rows = populate_imports(
                    target.base / sample.pack.name, target.container, target.base / "logs"
                )
                log(f"populate imports {len(imports_of)} top-level modules beyond a bare interpreter")
            by_target[folder] = {}
            for w in workloads:
                by_target[folder][w.name] = measure(target, w, runs, imports_of if w is sample else None, log)
        result: dict[str, Any] = {
            "command": "python tools/bench_container_start.py " + " ".join(sys.argv[1:]),
            "atpack_commit": git_commit(),
            "machine": {
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "platform": platform.platform(),
                "tar": subprocess.run(["tar", "--version"], capture_output=True, text=True).stdout.splitlines()[0],
                "load_before": load_before,
                "load_after": " ".join(f"{x:.2f}" for x in os.getloadavg()),
                **versions(),
            },
            "runs": runs,
            "workloads": [
                {"name": w.name, "description": w.description, "artifacts": w.artifacts, **w.facts} for w in workloads
            ],
            "populate_imports": imports_of,
            "targets": by_target,
        }
        result["acceptance"] = acceptance(result)
        if not args.no_profile:
            shm = next((t for t in made if t.folder == "/dev/shm"), made[0])
            result["profile"] = {
                "imports": import_profile(import_rows),
                "cprofile": {w.name: cprofile(shm, w) for w in workloads},
            }
            result["breakdown"] = breakdown(by_target[shm.folder][sample.name], shm.folder)
            log("profiled")
    finally:
        shutil.rmtree(build, ignore_errors=True)
        for t in made:
            shutil.rmtree(t.base, ignore_errors=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench_container_start.json").write_text(json.dumps(result, indent=2) + "\n")
    text = markdown(result)
    (args.out / "bench_container_start.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
