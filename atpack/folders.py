"""Where torch and triton keep their caches on this machine, by their own rules.

Inductor (torch 2.8 to 2.14): ``$TORCHINDUCTOR_CACHE_DIR``, else ``<tempdir>/torchinductor_<user>``.

Triton has two folders in practice. A process that builds Inductor kernels reads and writes
``$TRITON_CACHE_DIR`` if it is set, else ``<inductor>/triton/<device index>``: Inductor sets the
variable itself when it makes its first kernel, to the folder of the device that kernel runs on,
so each rank of a node has a folder of its own. A process that only runs Triton kernels of its
own uses ``$TRITON_CACHE_DIR``, else ``$TRITON_HOME/.triton/cache`` (``~`` when ``TRITON_HOME`` is
unset; triton 3.4 to 3.9).

A ``$TRITON_CACHE_DIR`` that names a device's folder under Inductor's was set by Inductor in this
process (or says the same): the kernels the process compiled before are in Triton's own folder,
which is read and written as if the variable were unset.

Where torch or triton is already imported, they are asked (`atpack.seam`); otherwise their rules
are followed here (tests/test_zero_config.py checks that both answers agree). Neither is imported
for it: that takes seconds.
"""

from __future__ import annotations

import getpass
import os
import re
import tempfile
from collections.abc import Sequence

from . import seam

__all__ = [
    "atpack_cache_dir",
    "default_inductor_dir",
    "default_triton_dir",
    "inductor_triton_dir",
    "triton_dirs_to_collect",
    "triton_dirs_to_populate",
]


def default_inductor_dir() -> str:
    """The folder Inductor uses here: ``$TORCHINDUCTOR_CACHE_DIR`` or ``<tmp>/torchinductor_<user>``."""
    if folder := os.environ.get("TORCHINDUCTOR_CACHE_DIR"):
        return os.path.abspath(folder)
    if asked := seam.default_inductor_dir():
        return os.path.abspath(asked)
    try:
        user = getpass.getuser()
    except (KeyError, ModuleNotFoundError, OSError):
        user = f"uid_{os.getuid()}" if hasattr(os, "getuid") else "unknown_user"
    return os.path.join(tempfile.gettempdir(), "torchinductor_" + re.sub(r'[\\/:*?"<>|]', "_", user))


def default_triton_dir() -> str:
    """Triton's own folder: ``$TRITON_CACHE_DIR`` or ``$TRITON_HOME/.triton/cache`` (``~``
    without ``TRITON_HOME``), as Triton's own settings say."""
    if folder := os.environ.get("TRITON_CACHE_DIR"):
        return os.path.abspath(folder)
    return _tritons_own_dir()


def _tritons_own_dir() -> str:
    """Triton's folder without ``$TRITON_CACHE_DIR``: triton is asked where the variable is
    unset (where it is set, triton answers with it)."""
    asked = seam.tritons_own_dir()
    if not os.environ.get("TRITON_CACHE_DIR") and asked:
        return os.path.abspath(asked)
    home = os.environ.get("TRITON_HOME") or os.path.expanduser("~/")
    return os.path.abspath(os.path.join(home, ".triton", "cache"))


def _users_triton_dir(inductor_dir: str) -> str | None:
    """``$TRITON_CACHE_DIR`` where the user chose it; None where it is unset or is the device
    folder under `inductor_dir` that Inductor sets where it was unset."""
    folder = os.environ.get("TRITON_CACHE_DIR")
    if not folder:
        return None
    device = os.path.basename(os.path.abspath(folder))
    if device.isdigit() and os.path.abspath(folder) == inductor_triton_dir(inductor_dir, int(device)):
        return None
    return os.path.abspath(folder)


def inductor_triton_dir(inductor_dir: str, device: int) -> str:
    """The Triton folder Inductor gives the kernels of `device` when ``$TRITON_CACHE_DIR`` is unset."""
    return os.path.join(os.path.abspath(inductor_dir), "triton", str(device))


def triton_dirs_to_collect(inductor_dir: str) -> list[str]:
    """Every Triton folder a process may have written: ``$TRITON_CACHE_DIR`` alone if the user
    set it, else every per-device folder under `inductor_dir` that exists and Triton's own."""
    if users := _users_triton_dir(inductor_dir):
        return [users]
    per_device = os.path.join(os.path.abspath(inductor_dir), "triton")
    try:
        devices = sorted(int(name) for name in os.listdir(per_device) if name.isdigit())
    except OSError:
        devices = []
    return [inductor_triton_dir(inductor_dir, d) for d in devices] + [_tritons_own_dir()]


def triton_dirs_to_populate(inductor_dir: str, devices: Sequence[int]) -> list[str]:
    """Every Triton folder the processes started here will read: ``$TRITON_CACHE_DIR`` alone if
    the user set it, else the per-device folder under `inductor_dir` of each of `devices`, and
    Triton's own folder."""
    if users := _users_triton_dir(inductor_dir):
        return [users]
    return [inductor_triton_dir(inductor_dir, d) for d in devices] + [_tritons_own_dir()]


def atpack_cache_dir() -> str:
    """Where atpack keeps its own small caches: ``$ATPACK_CACHE_DIR`` or ``$XDG_CACHE_HOME/atpack``
    (``~/.cache/atpack``), as an absolute path: a relative one would follow the working folder.
    A relative ``XDG_CACHE_HOME`` is ignored, as the XDG specification says."""
    if folder := os.environ.get("ATPACK_CACHE_DIR"):
        return os.path.abspath(folder)
    base = os.environ.get("XDG_CACHE_HOME", "")
    if not os.path.isabs(base):
        base = os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.abspath(os.path.join(base, "atpack"))
