"""What the adapters share: reading cache files' JSON as torch and Triton write it, and timings."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

import msgspec

from ..artifacts import Artifact
from ..errors import CacheFileError

AddBlob = Callable[[bytes, str], str]
"""Stores a blob (bytes, grouping hint) and returns its digest."""


def _compact_dumps() -> Callable[[Any], str]:
    """`json.dumps` with its default settings (what torch and triton write), without building
    its C encoder anew for each call: populate renders thousands of small files."""
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:
        return json.dumps
    default = json.JSONEncoder().default
    encode = make(None, default, json.encoder.encode_basestring_ascii, None, ": ", ", ", False, False, True)
    return lambda value: "".join(encode(value, 0))


dumps = _compact_dumps()
"""`json.dumps(value)`, faster."""


def load_json(raw: bytes, path: str) -> Any:
    """Parse a cache file's JSON (Python's parser: torch and triton write ``Infinity``)."""
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise CacheFileError(f"{path}: not valid JSON ({e})") from e
    except RecursionError as e:  # Python's parser recurses once per nested array or object
        raise CacheFileError(f"{path}: JSON nested too deeply to read") from e


def to_artifact(kind: type[Artifact], fields: dict[str, Any], path: str) -> Any:
    """Build and type-check an artifact from plain fields."""
    try:
        return msgspec.convert(fields, type=kind)
    except msgspec.ValidationError as e:
        raise CacheFileError(f"{path}: unexpected content ({e})") from e


def finite(value: Any) -> float | None:
    """A timing as stored: non-finite times (failed candidates) become None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"not a number: {value!r}")
    return float(value) if math.isfinite(value) else None


def as_float(value: float | None) -> float:
    """A stored timing as written back: None is infinity."""
    return math.inf if value is None else value


def config_text(kwargs: Any, num_warps: Any, num_stages: Any) -> str:
    """A kernel config in a few words, as `inspect`, `report` and `diff` show it."""
    return " ".join([*(f"{k}={v}" for k, v in kwargs), f"warps={num_warps}", f"stages={num_stages}"])
