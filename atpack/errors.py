"""The errors atpack raises. Every failure a user can cause is one of these, and its message is
one line.

Where a builtin exception says the same thing, the error is that builtin too, so callers who
already catch it need no atpack import: a missing pack, tag or store is a `FileNotFoundError`
(`NotFoundError`), a folder given where a pack file belongs an `IsADirectoryError`
(`IsAFolderError`), a digest a pack does not hold a `KeyError` (`BlobNotFoundError`), a refused
signature a `PermissionError` (`SignatureError`), a value atpack does not understand in one of
its environment variables a `ValueError` (`SettingError`). `tests/test_errors.py` raises each
from the situation it names.
"""

from __future__ import annotations

import errno
from collections.abc import Sequence
from typing import Any, Protocol

__all__ = [
    "AtpackError",
    "BlobNotFoundError",
    "CacheFileError",
    "EnvironmentMismatchError",
    "FileChangedMeanwhileError",
    "FileCreatedMeanwhileError",
    "FormatError",
    "IntegrityError",
    "IsAFolderError",
    "LimitError",
    "MergeConflictError",
    "NotFoundError",
    "SettingError",
    "SignatureError",
    "StorageError",
    "UnsafeContentError",
    "storage_error",
]


class AtpackError(Exception):
    """Base class of every error atpack raises on purpose."""


class EnvironmentMismatchError(AtpackError):
    """The artifacts say they were made under another environment than the one a pack would record."""


class FormatError(AtpackError):
    """The bytes are not a valid pack (bad magic, bad structure, unsupported version)."""


class IntegrityError(FormatError):
    """A digest or checksum does not match the bytes it covers."""


class SignatureError(AtpackError, PermissionError):
    """A pack is not signed by a key the caller trusts, or its signature does not verify: the
    caller's trust is refused, whatever the pack's bytes are (also a `PermissionError`)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.errno = errno.EACCES


class LimitError(FormatError):
    """A declared size, count or offset exceeds a hard limit or the file itself."""


class BlobNotFoundError(AtpackError, KeyError):
    """A digest the pack holds no blob for (also a `KeyError`)."""

    def __str__(self) -> str:  # a KeyError's own would quote the message
        return str(self.args[0]) if self.args else ""


class StorageError(AtpackError):
    """A pack or cache location cannot be read or written."""


class FileCreatedMeanwhileError(StorageError, FileExistsError):
    """A file populate was to create was made by another writer between its plan and its write:
    theirs is kept, never replaced."""


class FileChangedMeanwhileError(StorageError):
    """A file populate merges into was replaced by another writer (torch) between populate's read
    and its write: merged again from what is there now, never written over."""


class NotFoundError(StorageError, FileNotFoundError):
    """A pack, tag, store or folder that was named does not exist (also a `FileNotFoundError`)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.errno = errno.ENOENT  # str() stays the message: OSError formats errno only with a strerror


class IsAFolderError(StorageError, IsADirectoryError):
    """A folder was given where a pack file belongs (also an `IsADirectoryError`)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.errno = errno.EISDIR


class SettingError(AtpackError, ValueError):
    """An environment variable atpack reads holds a value it does not understand (also a `ValueError`)."""


class CacheFileError(AtpackError):
    """A file in a torch or triton cache folder is not what its name says it is."""


class UnsafeContentError(AtpackError):
    """Content would run code or escape its folder, and nobody allowed that."""


class _Question(Protocol):
    """What an error says of one question answered differently (`atpack.merging.Conflict`)."""

    @property
    def kind(self) -> str: ...
    @property
    def key(self) -> str: ...
    @property
    def candidates(self) -> Sequence[Any]: ...


class MergeConflictError(AtpackError):
    """Packs disagree and the merge policy is ``fail``: `conflicts` lists each question
    answered differently (`atpack.merging.Conflict`)."""

    def __init__(self, conflicts: Sequence[_Question]) -> None:
        self.conflicts = list(conflicts)
        listing = "; ".join(f"{c.kind} {c.key} ({len(c.candidates)} answers)" for c in conflicts[:10])
        more = f" and {len(conflicts) - 10} more" if len(conflicts) > 10 else ""
        super().__init__(f"{len(conflicts)} conflicts: {listing}{more} (choose --policy fastest or newest)")


def storage_error(what: str, error: OSError) -> StorageError:
    """`error`, raised while reading or writing `what`, as the `StorageError` that says the same
    (`NotFoundError` for a missing file, `IsAFolderError` for a folder)."""
    message = f"{what}: {error.strerror or error}"
    if isinstance(error, FileNotFoundError):
        return NotFoundError(message)
    if isinstance(error, IsADirectoryError):
        return IsAFolderError(f"{what}: a folder, not a file")
    return StorageError(message)
