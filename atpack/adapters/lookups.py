"""The components of cache keys a capture recorded (``lookup.key/1``): kept in a pack for
`atpack explain`, never written into a cache folder."""

from __future__ import annotations

from typing import Any

from ..artifacts import LookupKey
from ..kinds import Kind

__all__ = ["KINDS"]


class _LookupKey(Kind[LookupKey]):
    artifact = LookupKey
    populate = "none"


KINDS: tuple[Kind[Any], ...] = (_LookupKey(),)
