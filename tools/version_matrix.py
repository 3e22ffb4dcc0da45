"""The torch/triton version matrix: the tests that touch torch's and triton's internals, run
against each release pair atpack claims (torch 2.8 to 2.14, triton 3.4 to 3.9).

    python tools/version_matrix.py                       every pair; writes tools/results/version_matrix.{json,md}
    python tools/version_matrix.py --pairs 2.8/3.4,2.13/3.9
    python tools/version_matrix.py --list                the pairs, and what each installs

For each pair, one at a time: a fresh venv under ``--envs`` (default <temp folder>/atpack-matrix-envs, outside
the repository), torch and triton pinned (never an unpinned torch), atpack from this repository
(editable, so that torch finds its plug-in), the test tools pinned; then the tests below, with
pytest's JUnit report read back per test; then the venv is removed (``--keep`` keeps it), since
a Linux torch wheel from PyPI is a CUDA build that pulls several GB of nvidia packages.

Installs read the index pip's configuration names, with ``--no-cache-dir``; pairs marked ``local``
take torch from ``--find-links`` (default ``$PIP_FIND_LINKS``: here, a CPU build) too.

A rerun of some pairs replaces those pairs' rows in the results and keeps the others.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "tools" / "results"
TESTS = [
    "tests/test_read_paths.py",
    "tests/test_megacache.py",
    "tests/test_collect_populate.py",
    "tests/test_zero_config.py",
    "tests/test_seam.py",  # every entry of atpack.seam.INTERNALS claimed for the pair's releases
    "tests/test_foreign_builds.py",
    "tests/test_local_values.py",  # Inductor's local cache values, through torch's own writers and readers
    "tests/test_explain.py",  # the lookup record's hooks, through torch's own FX graph and AOT autograd caches
    "tests/test_explain_kernels.py",  # and through Inductor's .best_config and Triton's caches
    "tests/test_explain_records.py",
    "tests/test_hints.py",  # hints, through Inductor's, the GEMM cache's and Triton's own tuning code
]

# The test tools and atpack's own dependencies, pinned so that only torch and triton differ
# between pairs (the versions the main development environment had).
TOOLS = [
    "msgspec==0.22.0",
    "zstandard==0.25.0",
    "fsspec==2026.9.0",
    "s3fs==2026.9.0",
    "numpy==2.4.6",
    "pytest==9.2.0",
    "pytest-xdist==3.8.0",
    "hypothesis==6.170.17",
    "moto[server]==5.2.5",
]


@dataclass(frozen=True)
class Pair:
    name: str
    torch: str
    triton: str
    note: str
    local: bool = False  # torch from --find-links (a CPU build), not PyPI

    def requirements(self) -> list[str]:
        return [f"torch=={self.torch}", f"triton=={self.triton}"]


PAIRS = [
    Pair("2.8/3.4", "2.8.0", "3.4.0", "PyPI CUDA 12.8 build; triton as torch pins it"),
    Pair("2.9/3.5", "2.9.1", "3.5.1", "PyPI CUDA 12.8 build; triton as torch pins it"),
    Pair("2.10/3.6", "2.10.0", "3.6.0", "PyPI CUDA 12.8 build; triton as torch pins it"),
    Pair("2.11/3.6", "2.11.0", "3.6.0", "PyPI CUDA 13.0 build; triton as torch pins it (the GPU sample's pair)"),
    Pair("2.12/3.7", "2.12.1", "3.7.1", "PyPI CUDA 13.0 build; triton as torch pins it"),
    Pair("2.13/3.7", "2.13.0", "3.7.1", "PyPI CUDA 13.0 build; triton as torch's PyPI wheel pins it"),
    Pair("2.13/3.9", "2.13.0+cpu", "3.9.0", "local CPU build; the newest triton (the development pair)", local=True),
    Pair("2.14/3.8", "2.14.1", "3.8.0", "PyPI CUDA 13.0 build; triton as torch's PyPI wheel pins it"),
]


def run(argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    print("+", " ".join(argv), flush=True)
    return subprocess.run(argv, text=True, **kwargs)


def clean_environment() -> dict[str, str]:
    """This process's variables without pip's and the caches' (the tests set their own folders)."""
    drop = ("PIP_", "TORCHINDUCTOR_", "TRITON_", "ATPACK_", "VIRTUAL_ENV", "PYTHONPATH")
    return {k: v for k, v in os.environ.items() if not k.startswith(drop)}


def install(pair: Pair, env: Path, find_links: str | None) -> float:
    """A fresh venv at `env` with the pair, the tools and atpack; returns the seconds it took."""
    started = time.monotonic()
    if env.exists():
        shutil.rmtree(env)
    run([sys.executable, "-m", "venv", str(env)], check=True)
    python = str(env / "bin" / "python")
    pip = [python, "-m", "pip", "--disable-pip-version-check", "install", "--no-cache-dir", "-q"]
    pip += ["--timeout", "180", "--retries", "10"]  # CUDA wheels of several GB (pip's own timeout: 15 s)
    index: list[str] = []  # the index pip's configuration names
    if pair.local:
        assert find_links, "checked by main()"
        index += ["--find-links", find_links]
    # torch and triton together with the tools, so that nothing the tools need moves them
    run([*pip, *index, *pair.requirements(), *TOOLS], check=True, env=clean_environment())
    # atpack itself: editable from this repository (its torch plug-in entry point registered),
    # without dependencies (pinned above); hatchling, its build backend, from the index
    run([*pip, "--no-deps", "-e", str(REPO)], check=True, env=clean_environment())
    return time.monotonic() - started


PROBE = """
import json, platform, sys
import torch, triton
print(json.dumps({
    "torch": torch.__version__, "triton": triton.__version__, "cuda": torch.version.cuda,
    "python": platform.python_version(),
    "atpack_from": __import__("atpack").__file__,
}))
"""


def versions(env: Path) -> dict[str, Any]:
    result = run([str(env / "bin" / "python"), "-c", PROBE], capture_output=True, check=True, cwd="/")
    found: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return found


def test_outcomes(junit: Path) -> list[dict[str, str]]:
    """Every test case of a JUnit report: its id, outcome and, unless passed, the reason."""
    outcomes = []
    for case in ET.parse(junit).getroot().iter("testcase"):
        module = case.get("classname", "").replace(".", "/")
        name = f"{module}.py::{case.get('name')}"
        outcome, reason = "passed", ""
        for child in case:
            if child.tag in ("failure", "error"):
                outcome = "failed" if child.tag == "failure" else "error"
                reason = (child.get("message") or "").strip() or (child.text or "").strip()[-600:]
            elif child.tag == "skipped":
                outcome = "skipped"
                reason = (child.get("message") or "").strip()
        outcomes.append({"test": name, "outcome": outcome, "reason": reason[:1000]})
    return outcomes


def run_tests(env: Path, workers: int, tests: list[str]) -> tuple[list[dict[str, str]], float, int]:
    junit = env / "junit.xml"
    argv = [str(env / "bin" / "python"), "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={junit}"]
    if workers > 1:
        argv += ["-n", str(workers)]
    started = time.monotonic()
    result = run([*argv, *tests], cwd=REPO, env=clean_environment())
    seconds = time.monotonic() - started
    return (test_outcomes(junit) if junit.exists() else []), seconds, result.returncode


SEAM_TEST = "tests/test_seam.py::test_each_internal_claimed_for_the_installed_releases_is_as_described"


def seam_outcomes(outcomes: list[dict[str, str]]) -> dict[str, str]:
    """Each entry of atpack.seam.INTERNALS (its test's id) and how its check ended on this pair."""
    found = {}
    for o in outcomes:
        test, _, entry = o["test"].partition("[")
        if test == SEAM_TEST and entry:
            found[entry[:-1]] = o["outcome"]
    return found


def seam_table(rows: list[dict[str, Any]]) -> list[str]:
    """Entries down, pairs across: checked and as described (yes), not claimed (-), or not as described."""
    ran = [r for r in rows if r.get("seam")]
    if not ran:
        return []
    mark = {"passed": "yes", "skipped": "-"}
    lines = [
        "## The seam's table, entry by entry",
        "",
        "Each entry of `atpack.seam.INTERNALS` checked on each pair (`yes`: there and as described;",
        "`-`: the entry does not claim that release; formats: held to the real reader by the test named).",
        "",
        "| entry | " + " | ".join(r["pair"] for r in ran) + " |",
        "|---|" + "---|" * len(ran),
    ]
    entries = dict.fromkeys(e for r in ran for e in r["seam"])
    for entry in entries:
        cells = [mark.get(r["seam"].get(entry, "absent"), r["seam"].get(entry, "absent").upper()) for r in ran]
        lines.append(f"| `{entry}` | " + " | ".join(cells) + " |")
    return [*lines, ""]


def run_pair(pair: Pair, args: argparse.Namespace) -> dict[str, Any]:
    env = Path(args.envs) / pair.name.replace("/", "-")
    row: dict[str, Any] = {"pair": pair.name, "requested": pair.requirements(), "note": pair.note}
    commit = run(["git", "describe", "--always", "--dirty"], cwd=REPO, capture_output=True, check=False)
    row["commit"] = commit.stdout.strip()
    try:
        row["install_s"] = round(install(pair, env, args.find_links), 1)
        row["versions"] = versions(env)
        assert str(REPO) in row["versions"]["atpack_from"], row["versions"]  # this checkout's atpack
        row["versions"]["atpack_from"] = os.path.relpath(row["versions"]["atpack_from"], REPO)
        row["disk_gb"] = round(sum(f.stat().st_size for f in env.rglob("*") if f.is_file()) / 1e9, 2)
        outcomes, seconds, code = run_tests(env, args.workers, args.tests)
        row["tests_s"] = round(seconds, 1)
        row["pytest_exit"] = code
        row["counts"] = {k: sum(o["outcome"] == k for o in outcomes) for k in ("passed", "failed", "error", "skipped")}
        row["not_passed"] = [o for o in outcomes if o["outcome"] != "passed"]
        row["seam"] = seam_outcomes(outcomes)
    except (subprocess.CalledProcessError, AssertionError, OSError) as e:
        row["setup_error"] = str(e)[-2000:]
    finally:
        if not args.keep and env.exists():
            shutil.rmtree(env)
            row["env_removed"] = True
    return row


def markdown(results: dict[str, Any]) -> str:
    lines = [
        "# Version matrix",
        "",
        "`python tools/version_matrix.py` (see its docstring): per torch/triton pair, a fresh venv, the tests",
        f"{', '.join(f'`{t}`' for t in results['tests'])}, on {results['machine']}",
        "(Python " + results["python"] + "). Torch and triton from PyPI unless noted; on Linux those are",
        "CUDA builds, which also run without a GPU (Triton's and Inductor's host-side code runs with the",
        "tests' stand-in driver, tests/programs/standin.py). Skips name the release and what it lacks.",
        "Pairs may have run two at a time: install and test times are wall times on a shared machine.",
        "atpack: the commit each pair ran (`-dirty`: with edits not yet committed when the pair started).",
        "",
        "| pair | torch | triton | passed | failed | skipped | install | tests | env size | atpack |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    order = [p.name for p in PAIRS]
    rows = sorted(results["pairs"].values(), key=lambda r: order.index(r["pair"]) if r["pair"] in order else 99)
    for r in rows:
        if "setup_error" in r:
            lines.append(f"| {r['pair']} | - | - | - | - | - | setup failed | - | - | {r.get('commit', '?')} |")
            continue
        v, c = r["versions"], r["counts"]
        lines.append(
            f"| {r['pair']} | {v['torch']} | {v['triton']} | {c['passed']} | {c['failed'] + c['error']} | "
            f"{c['skipped']} | {r['install_s']:.0f} s | {r['tests_s']:.0f} s | {r['disk_gb']:.1f} GB | "
            f"{r.get('commit', '?')} |"
        )
    lines += ["", "Run: " + ", ".join(f"{r['pair']} {r.get('date', '?')}" for r in rows) + ".", ""]
    lines += seam_table(rows)
    for r in rows:
        lines.append(f"## {r['pair']}: {r['note']}")
        lines.append("")
        if "setup_error" in r:
            lines += ["Setup failed:", "", "```", r["setup_error"], "```", ""]
            continue
        if not r["not_passed"]:
            lines += ["Every test passed.", ""]
            continue
        for o in r["not_passed"]:
            reason = " ".join(o["reason"].split())
            lines.append(f"- **{o['outcome']}** `{o['test']}`: {reason}")
        lines.append("")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    names = ", ".join(p.name for p in PAIRS)
    parser.add_argument("--pairs", help=f"comma-separated pair names (default: all): {names}")
    parser.add_argument(
        "--envs",
        default=os.path.join(tempfile.gettempdir(), "atpack-matrix-envs"),
        help="where the venvs are made (outside the repo; default: <temp folder>/atpack-matrix-envs)",
    )
    parser.add_argument(
        "--find-links",
        default=os.environ.get("PIP_FIND_LINKS"),
        help="the local wheels of the pairs marked local (default: $PIP_FIND_LINKS)",
    )
    parser.add_argument("--out", default=str(RESULTS), help="folder of version_matrix.json and .md")
    parser.add_argument("--workers", type=int, default=2, help="pytest-xdist workers (1: none)")
    parser.add_argument("--tests", nargs="+", default=TESTS)
    parser.add_argument("--keep", action="store_true", help="keep each venv (5 to 7 GB each)")
    parser.add_argument("--list", action="store_true", help="show the pairs and exit")
    parser.add_argument(
        "--merge", nargs="+", metavar="JSON", help="add these results files' pairs to --out's (no run), then render"
    )
    args = parser.parse_args()

    chosen = PAIRS
    if args.pairs:
        names = args.pairs.split(",")
        unknown = sorted(set(names) - {p.name for p in PAIRS})
        if unknown:
            parser.error(f"unknown pair(s) {unknown}; known: {[p.name for p in PAIRS]}")
        chosen = [p for p in PAIRS if p.name in names]
    if not args.merge and not args.list and not args.find_links and any(p.local for p in chosen):
        parser.error("the pairs marked local install a local torch build: give --find-links (or set PIP_FIND_LINKS)")
    if args.list:
        for p in chosen:
            print(f"{p.name:10} {' '.join(p.requirements()):40} {p.note}")
        return 0

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "version_matrix.json"
    results: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {"pairs": {}}
    if args.merge:
        for other in args.merge:
            theirs = json.loads(Path(other).read_text())
            results["pairs"].update(theirs["pairs"])
            results.update({k: v for k, v in theirs.items() if k != "pairs"})
        path.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")
        (out / "version_matrix.md").write_text(markdown(results))
        return 0
    gpu = "an NVIDIA driver present" if shutil.which("nvidia-smi") else "no GPU"
    machine = f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs, {gpu}"
    results.update(tests=args.tests, python=platform.python_version(), machine=machine)
    Path(args.envs).mkdir(parents=True, exist_ok=True)
    for pair in chosen:
        row = run_pair(pair, args)
        row["date"] = datetime.date.today().isoformat()
        results["pairs"][pair.name] = row
        path.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")
        (out / "version_matrix.md").write_text(markdown(results))
        print(json.dumps({k: row.get(k) for k in ("pair", "versions", "counts", "tests_s", "setup_error")}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
