"""The index's string patterns (names, keys, digests) refuse a name with a newline at its end
(Python's ``$`` matches before one) and run in linear time on any input: a pattern is checked
before anything else of a pack is read, on bytes someone else wrote."""

from __future__ import annotations

import time

import msgspec
import pytest

from atpack.artifacts import TritonKernel
from atpack.digest import is_digest
from atpack.pack import _ANNOTATION_KEY, Index

DIGEST = "sha256:" + "0" * 64


@pytest.mark.parametrize(
    "name", ["kernel_0\n", "kernel_0\n\n", "kernel\n_0"], ids=["one newline", "two newlines", "inside"]
)
def test_a_name_with_a_newline_is_refused(name: str) -> None:
    fields = {"env": DIGEST, "cache_key": "A" * 52, "name": name, "files": [[f"{name}.json", DIGEST, 2]]}
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"kind": "triton.kernel/1", **fields}, TritonKernel)
    assert not is_digest(DIGEST + "\n")
    assert not _ANNOTATION_KEY.match("org.example.model\n")


@pytest.mark.parametrize("length", [72, 255])
def test_an_annotation_key_built_to_backtrack_is_refused_at_once(length: int) -> None:
    """Each ``-`` of such a key could end a part or stand inside one: a pattern that let it do
    both took seconds at 26 parts and doubled with each more."""
    key = ("a." + "a-" * length)[: length - 1] + "\u00e9"
    started = time.perf_counter()
    with pytest.raises(msgspec.ValidationError):
        msgspec.json.decode(msgspec.json.encode({"annotations": {key: "x"}}), type=Index)
    assert time.perf_counter() - started < 0.5  # linear: microseconds; the old pattern: 3 s at 26 parts, doubling
