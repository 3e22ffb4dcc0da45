"""Whole files that readers see complete or not at all, for the files atpack owns (packs on a
local filesystem, its own small caches): written to a hidden temporary beside the target and
renamed over it. A writer killed mid-write leaves its temporary behind; the next write into
that folder removes it once it is an hour old.

Portable (no `fcntl`): the storage layer imports it. The cache folders shared with torch and
triton are written by `atpack.files` instead, relative to folder descriptors that no symlink
can redirect.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import time
from collections.abc import Iterator
from typing import IO

__all__ = ["STALE_SECONDS", "replacing", "sweep"]

log = logging.getLogger(__name__)

STALE_SECONDS = 3600.0
"""A temporary file of ours untouched this long belongs to a writer that was killed: no write
pauses that long, so a later writer into the same folder removes it."""


@contextlib.contextmanager
def replacing(path: str, *, durable: bool = True) -> Iterator[IO[bytes]]:
    """A file to write `path`'s new content into; it replaces `path` when the block ends
    without an exception (flushed to disk first where `durable`), and is removed otherwise."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    name = os.path.basename(path)
    sweep(folder, prefix=f".{name}.")  # what a killed write of this file left
    tmp = os.path.join(folder, f".{name}.{secrets.token_hex(6)}.tmp")
    try:
        with open(tmp, "wb") as f:
            yield f
            f.flush()
            if durable:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if durable:
        _fsync_dir(folder)


def sweep(folder: str, prefix: str, *, dir_fd: int | None = None) -> None:
    """Remove the stale temporary files (`<prefix>….tmp`) that killed writers left in `folder`
    (or, with `dir_fd`, in that open folder, which `folder` names)."""
    cutoff = time.time() - STALE_SECONDS
    try:
        with os.scandir(folder if dir_fd is None else dir_fd) as entries:
            stale = [
                e.name
                for e in entries
                if e.name.startswith(prefix)
                and e.name.endswith(".tmp")
                and e.is_file(follow_symlinks=False)
                and e.stat(follow_symlinks=False).st_mtime < cutoff
            ]
    except OSError:
        return  # sweeping is housekeeping: never a reason to fail a write
    for name in stale:
        with contextlib.suppress(OSError):
            if dir_fd is None:
                os.unlink(os.path.join(folder, name))
            else:
                os.unlink(name, dir_fd=dir_fd)
            log.info("removed %s/%s, left by a killed writer", folder, name)


def _fsync_dir(folder: str) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
