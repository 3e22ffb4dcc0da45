"""What atpack's torch plug-in costs a process that never imports atpack.

    python tools/bench_autoload.py [--runs 15]      writes tools/results/bench_autoload.{md,json}

Each run is a fresh interpreter, the three settings interleaved so that the machine's noise
falls on all of them alike; medians. Measured in the child, around the statements themselves:
  import torch                       `import torch` (torch calls the plug-in at its end)
  import Inductor's runtime          `import torch._inductor.runtime.triton_heuristics` after it
                                     (the plug-in checks the replay switch there, and installs
                                     the replay when it is on)
Settings: `off` (TORCH_DEVICE_BACKEND_AUTOLOAD=0: torch loads no plug-in, as without atpack),
`plug-in` (the plug-in, no pack populated: the replay stays off), `replay` (a folder atpack
populated: the replay is installed).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = """
import json, time
t = time.perf_counter()
import torch
t1 = time.perf_counter()
import torch._inductor.runtime.triton_heuristics
t2 = time.perf_counter()
print(json.dumps({"import torch": t1 - t, "import Inductor's runtime": t2 - t1}))
"""
SETTINGS = ("off", "plug-in", "replay")


def run_once(setting: str, folder: Path) -> dict[str, float]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ATPACK_", "TORCHINDUCTOR_", "TRITON_CACHE"))}
    env["TORCHINDUCTOR_CACHE_DIR"] = str(folder / ("replay" if setting == "replay" else "plain"))
    if setting == "off":
        env["TORCH_DEVICE_BACKEND_AUTOLOAD"] = "0"
    out = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, check=True).stdout
    return dict(json.loads(out.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "bench_autoload"))
    args = parser.parse_args()
    from atpack import replay

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "plain").mkdir()
        replay.enable(str(folder / "replay"))
        runs: dict[str, list[dict[str, float]]] = {s: [] for s in SETTINGS}
        run_once("off", folder)  # warm the file cache
        for i in range(args.runs):
            for setting in SETTINGS[i % 3 :] + SETTINGS[: i % 3]:
                runs[setting].append(run_once(setting, folder))
    stages = list(runs["off"][0])
    medians = {s: {stage: statistics.median(r[stage] for r in runs[s]) for stage in stages} for s in SETTINGS}
    result = {
        "command": "python tools/bench_autoload.py " + " ".join(sys.argv[1:]),
        "machine": {"python": platform.python_version(), "platform": platform.platform()},
        "torch": _torch_version(),
        "runs": args.runs,
        "medians_s": medians,
    }
    lines = [
        "# What the torch plug-in costs",
        "",
        f"`{result['command']}`; torch {result['torch']}, Python {platform.python_version()}; {args.runs} fresh "
        "interpreters per setting, interleaved; medians, milliseconds; ratio to `off` (no plug-in loaded).",
        "",
        "| stage | " + " | ".join(SETTINGS) + " |",
        "|---|" + "---:|" * len(SETTINGS),
    ]
    for stage in stages:
        base = medians["off"][stage]
        cells = [f"{medians[s][stage] * 1000:.1f} ({medians[s][stage] / base:.3f}x)" for s in SETTINGS]
        lines.append(f"| {stage} | " + " | ".join(cells) + " |")
    out = Path(args.out)
    out.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def _torch_version() -> str:
    from importlib.metadata import version

    return version("torch")


if __name__ == "__main__":
    main()
