"""The README's walkthrough works as written: each of its shell blocks, run in order from a copy
of the repository's root, against a local S3-protocol server."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent


def walkthrough_blocks() -> list[str]:
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Walkthrough", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.*?)```", section, flags=re.S)


def test_the_walkthrough_has_every_step() -> None:
    text = "\n".join(walkthrough_blocks())
    for command in (
        "atpack pack",
        "atpack push",
        "atpack pull",
        "atpack populate",
        "atpack inspect my-model",
        "atpack.load('my-model')",
        "atpack report",
    ):
        assert command in text


def test_the_walkthrough_runs_as_written(s3_server: Any, tmp_path: Path) -> None:
    client = s3_server.client()
    client.create_bucket(Bucket="atpack-store")
    (tmp_path / "tests").mkdir()
    shutil.copytree(REPO / "tests" / "data", tmp_path / "tests" / "data")
    env = {
        **os.environ,
        "AWS_ENDPOINT_URL": s3_server.storage_options["client_kwargs"]["endpoint_url"],
        "ATPACK_CACHE_DIR": str(tmp_path / "atpack-cache"),
        "TORCHINDUCTOR_CACHE_DIR": str(tmp_path / "inductor"),
        "TRITON_CACHE_DIR": str(tmp_path / "triton"),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    outputs = []
    for block in walkthrough_blocks():
        result = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", block],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 0, f"{block}\n{result.stdout}\n{result.stderr}"
        outputs.append(result.stdout)
    assert "packed 96 artifacts" in outputs[0] and outputs[0].rstrip().endswith("every digest matches")
    assert "signed mlp-h100.atpack with key" in outputs[1]
    assert "tagged mlp-h100" in outputs[2] and outputs[2].rstrip().splitlines()[-1].startswith("mlp-h100\tsha256:")
    assert "pulled sha256:" in outputs[3] and "would populate" in outputs[3]
    assert "signature verified: trusted key" in outputs[3]
    assert "NVIDIA H100 80GB HBM3" in outputs[4] and "96 skipped" in outputs[4]
    assert (tmp_path / "mlp-h100.html").stat().st_size > 10_000
