"""A fresh machine for a test: a HOME and a temp folder of its own, so that torch's and Triton's
default cache folders are inside it, and every step a process of its own, as in a container."""

from __future__ import annotations

import getpass
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

PROGRAMS = Path(__file__).parent / "programs"


class Machine:
    """A fresh machine: a HOME and a temp folder of its own, torch's default cache folders inside."""

    def __init__(self, root: Path) -> None:
        self.home, self.tmp = root / "home", root / "tmp"
        self.home.mkdir(parents=True)
        self.tmp.mkdir()

    @property
    def inductor(self) -> Path:
        return self.tmp / f"torchinductor_{getpass.getuser()}"

    @property
    def triton(self) -> Path:
        """Triton's own folder."""
        return self.home / ".triton" / "cache"

    def env(self, **extra: str) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("TORCHINDUCTOR_CACHE_DIR", "TRITON_CACHE_DIR", "TRITON_HOME", "XDG_CACHE_HOME")
            and not k.startswith("ATPACK_")
        }
        return {**env, "HOME": str(self.home), "TMPDIR": str(self.tmp), **extra}

    def run(self, program: str, *args: str, **env: str) -> Any:
        """A program under tests/programs, in a process of its own; its last line of output, as JSON."""
        result = self.process([sys.executable, str(PROGRAMS / program), *args], cwd=PROGRAMS, **env)
        assert result.returncode == 0, result.stderr[-3000:]
        return json.loads(result.stdout.strip().splitlines()[-1])

    def atpack(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        """The atpack command line, in a process of its own; it must succeed."""
        result = self.process([sys.executable, "-m", "atpack", *args], cwd=self.home, **env)
        assert result.returncode == 0, result.stdout + result.stderr
        return result

    def process(self, argv: list[str], *, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(argv, env=self.env(**env), cwd=cwd, capture_output=True, text=True, timeout=300)
