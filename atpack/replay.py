"""The replay of tuning results that torch records and then tunes again anyway, and its switch.

With coordinate descent on (max-autotune turns it on), Inductor saves the config the search found
in the kernel's ``.best_config`` file, marked ``"found_by_coordesc": true``, and reads it back on
a warm start. Between that read and the kernel's first launch, torch 2.8 to 2.14 can lose the
mark, and the launch searches again from the winner it already had: on an H100 training step, up
to 9 + 35 benchmark calls from a hot cache (`tools/results/gpu_e2e.md`), for results on disk. A
kernel restored from the FX graph cache also looks for its record beside the path it was compiled
at, on the machine that compiled it: where that is not this process's Inductor folder, it tunes
from scratch (51 + 97 benchmark calls in `tools/results/gpu_e2e_paths.md`). The replay keeps the
recorded result where the record says the search ran, and looks for records in this process's
folder (the mechanism: `atpack.seam.install_replay`).

**How far it reaches.** The replay is switched per Inductor folder: ``atpack populate`` writes
``atpack-replay.json`` into the folder it populates, and every process that uses that folder
(when torch is imported) replays; ``atpack replay off`` removes the file. The default folder
(``<tmp>/torchinductor_<user>``) is shared by every project of the user on the machine: the replay
then acts on their records too. It only ever keeps a result a record says was searched for, never
chooses one; to keep a project out, give it a folder of its own (``TORCHINDUCTOR_CACHE_DIR``) or
set ``ATPACK_REPLAY=0`` for it. ``ATPACK_REPLAY=1`` or ``0`` turns it on or off in every process,
whatever the files say, on every path (the plug-in, `atpack.load_cache_artifacts`);
``TORCH_DEVICE_BACKEND_AUTOLOAD=0`` keeps torch from loading atpack's plug-in at all.
"""

from __future__ import annotations

import os
import stat

from . import settings

__all__ = [
    "EXPLAIN_MARKER",
    "HINTS_FILE",
    "MARKER",
    "disable",
    "enable",
    "explaining",
    "hinting",
    "plugin_registered",
    "state",
    "switched",
]

MARKER = "atpack-replay.json"
"""The file in an Inductor folder that turns the replay on for the processes using that folder."""
EXPLAIN_MARKER = "atpack-explain.json"
"""Likewise, the lookup record (`atpack.lookups`): ``atpack populate --explain`` writes it."""
HINTS_FILE = "atpack-hints.json"
"""The hints of the processes using an Inductor folder (`atpack.hints`): ``populate --hints`` writes it."""


def state(inductor_dir: str) -> tuple[bool, str]:
    """Whether the processes started from here that use `inductor_dir` replay, and the reason
    that decides it: torch's plug-in switch, the plug-in's installation, ``ATPACK_REPLAY``, the
    folder's marker. An ``ATPACK_REPLAY`` atpack does not understand is a `SettingError`."""
    loads, why = settings.plugins_autoload()
    if not loads:
        return False, why
    if not plugin_registered():
        return False, "atpack's torch plug-in is not installed in this environment (pip install atpack)"
    return switched(inductor_dir)


def switched(inductor_dir: str) -> tuple[bool, str]:
    """The replay's own switches: ``ATPACK_REPLAY``, else the folder's marker, if it is the user's
    (one `lstat`: what the plug-in pays in a process that nothing asked to replay)."""
    forced = settings.replay()
    if forced is not None:
        value = os.environ[settings.REPLAY]
        return forced, f"{settings.REPLAY}={value!r} turns it {'on' if forced else 'off'} in every process"
    marker = os.path.join(inductor_dir, MARKER)
    try:
        st = os.lstat(marker)
    except OSError:
        return False, f"no {marker} (atpack populate or atpack replay on writes it)"
    if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid():
        return False, f"{marker} is not a file of this user's: ignored"
    return True, f"{marker} (`atpack replay off` removes it)"


def explaining(inductor_dir: str) -> bool:
    """Whether the processes using `inductor_dir` record their cache lookups: ``ATPACK_EXPLAIN``,
    else the folder's marker, if it is the user's (one `lstat`)."""
    forced = settings.explain()
    if forced is not None:
        return forced
    return _users_file(os.path.join(inductor_dir, EXPLAIN_MARKER))


def hinting(inductor_dir: str) -> bool:
    """Whether the processes using `inductor_dir` narrow their missed lookups' candidates by its
    hints (`atpack.hints`): its hints file, if it is the user's (one `lstat`), unless
    ``ATPACK_HINTS`` is off."""
    return settings.hints() and _users_file(os.path.join(inductor_dir, HINTS_FILE))


def _users_file(path: str) -> bool:
    """Whether `path` is a regular file of this user's (not followed where it is a link)."""
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISREG(st.st_mode) and st.st_uid == os.geteuid()


def enable(inductor_dir: str, marker: str = MARKER) -> str:
    """Turn the replay on for the processes using `inductor_dir` (a marker that is there already
    is left as it is); returns the marker's path. The marker names nothing (no pack URL: a
    presigned one carries a credential)."""
    from .files import CacheDir

    with CacheDir(inductor_dir) as root:
        path = root.path(marker)
        if root.state(path) == "absent":
            root.write(path, b'{"written_by": "atpack"}\n')
    return path


def disable(inductor_dir: str, marker: str = MARKER) -> bool:
    """Turn the replay (or what `marker` turns on) off for the processes using `inductor_dir`;
    False if it was not on."""
    try:
        os.unlink(os.path.join(inductor_dir, marker))
    except FileNotFoundError:
        return False
    return True


def plugin_registered() -> bool:
    """Whether torch will load atpack's plug-in: the first atpack distribution on the path (the
    one `importlib.metadata` would find) declares the entry point torch looks for. Read from its
    ``entry_points.txt`` directly: importing `importlib.metadata` costs a populate 8 ms."""
    import sys

    for folder in sys.path:
        try:
            names = os.listdir(folder or ".")
        except OSError:
            continue
        for name in names:
            if name.startswith("atpack-") and name.endswith(".dist-info"):
                try:
                    with open(os.path.join(folder or ".", name, "entry_points.txt"), encoding="utf-8") as f:
                        text = f.read()
                except OSError:
                    return False
                section = text.partition("[torch.backends]")[2].partition("[")[0]
                return any(line.split("=", 1)[-1].strip() == "atpack.autoload:load" for line in section.splitlines())
    return False
