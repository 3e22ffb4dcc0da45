"""Every command that reads or writes packs works on s3:// URLs, run as users run it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from h100_sample import ENVIRONMENT, Sample

REPO = Path(__file__).resolve().parent.parent


def test_the_commands_work_against_an_s3_protocol_server(s3: Any, h100_sample: Sample, tmp_path: Path) -> None:
    env = {**os.environ, "AWS_ENDPOINT_URL": s3.storage_options["client_kwargs"]["endpoint_url"]}

    def atpack(*args: str) -> str:
        result = subprocess.run(
            [sys.executable, "-m", "atpack", *args], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300
        )
        assert result.returncode == 0, f"atpack {' '.join(args)}\n{result.stderr}"
        return result.stdout

    a, b = s3.url("packs/a.atpack"), s3.url("packs/b.atpack")
    folders = ["--inductor-dir", str(h100_sample.inductor), "--triton-dir", str(h100_sample.triton)]
    assert "packed 96 artifacts" in atpack("pack", *folders, "--environment", str(ENVIRONMENT), "-o", a)
    assert "packed 96 artifacts" in atpack("pack", *folders, "--with-ir", "--environment", str(ENVIRONMENT), "-o", b)
    assert "87  triton.kernel/1" in atpack("inspect", a)
    assert atpack("verify", a).startswith("ok: ")
    assert "87 changed" in atpack("diff", a, b)
    assert "merged 2 packs" in atpack("merge", a, b, "-o", s3.url("packs/m.atpack"), "--policy", "newest")
    out = ["--inductor-dir", str(tmp_path / "i"), "--triton-dir", str(tmp_path / "t")]
    report = json.loads(atpack("populate", a, *out, "--ignore-environment", "--trust-pickles", "--json"))
    assert {o["action"] for o in report["outcomes"]} == {"written"}
    atpack("report", a, "-o", str(tmp_path / "a.html"))
    assert (tmp_path / "a.html").stat().st_size > 10_000
    atpack("keygen", "me")
    atpack("sign", a, "--key", str(tmp_path / "me.key"))
    assert "signed by key" in atpack("verify", a, "--key", str(tmp_path / "me.pub"))
