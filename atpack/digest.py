"""Content digests (`sha256:<hex>`) and the canonical encoding they are computed over.

The canonical encoding of a value is its compact JSON text (UTF-8, no insignificant
whitespace) with the fields of every record and the keys of every map sorted by code
point, fields equal to their default left out, and floats written in their shortest
round-trip form. `spec/FORMAT.md` defines it for other implementations.
"""

from __future__ import annotations

import hashlib
import re
from typing import Annotated, Any

import msgspec

__all__ = ["Digest", "canonical", "digest_bytes", "digest_of", "is_digest"]

ALGORITHM = "sha256"
_PATTERN = r"^sha256:[0-9a-f]{64}(?!\n)$"
_MATCH = re.compile(_PATTERN).match

Digest = Annotated[str, msgspec.Meta(pattern=_PATTERN, description="sha256:<64 lowercase hex digits>")]
"""A content digest: the algorithm name, a colon, the lowercase hex digest."""

_encoder = msgspec.json.Encoder(order="sorted")


def canonical(value: Any) -> bytes:
    """The canonical JSON encoding of `value` (a msgspec struct or plain JSON data)."""
    return _encoder.encode(value)


def digest_bytes(data: bytes | bytearray | memoryview) -> str:
    """The digest of raw bytes."""
    return f"{ALGORITHM}:{hashlib.sha256(data).hexdigest()}"


def digest_of(value: Any) -> str:
    """The digest of the canonical encoding of `value`."""
    return digest_bytes(canonical(value))


def is_digest(text: object) -> bool:
    """Whether `text` is a well-formed digest string."""
    return isinstance(text, str) and _MATCH(text) is not None
