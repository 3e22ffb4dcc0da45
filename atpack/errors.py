"""The errors atpack raises. Every failure a user can cause is one of these."""

from __future__ import annotations

__all__ = [
    "AtpackError",
    "CacheFileError",
    "FormatError",
    "IntegrityError",
    "LimitError",
    "StorageError",
    "UnsafeContentError",
]


class AtpackError(Exception):
    """Base class of every error atpack raises on purpose."""


class FormatError(AtpackError):
    """The bytes are not a valid pack (bad magic, bad structure, unsupported version)."""


class IntegrityError(FormatError):
    """A digest or checksum does not match the bytes it covers."""


class LimitError(FormatError):
    """A declared size, count or offset exceeds a hard limit or the file itself."""


class StorageError(AtpackError):
    """A pack or cache location cannot be read or written."""


class CacheFileError(AtpackError):
    """A file in a torch or triton cache folder is not what its name says it is."""


class UnsafeContentError(AtpackError):
    """Content would run code or escape its folder, and nobody allowed that."""
