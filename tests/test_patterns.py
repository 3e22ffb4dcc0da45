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


PGO_KEYS_BUILT_TO_BACKTRACK = {
    "colons, then a control character": ("0:" * 2048)[:4095] + "\x01",
    "a long rank with no tag": ":" + "0" * 4000,
    "job parts that almost look like ranks": ("a:" + "0" * 50) * 80,
}


@pytest.mark.parametrize("key", PGO_KEYS_BUILT_TO_BACKTRACK.values(), ids=PGO_KEYS_BUILT_TO_BACKTRACK.keys())
def test_a_megacache_profile_key_built_to_backtrack_is_judged_at_once(key: str) -> None:
    """A job name may hold ":", and a pattern free to end it at any of them took 20 ms a key of
    4,096 characters (a minute for a 225 KB pack of 3,000 entries): one pass now."""
    from atpack.adapters.megacache import _KEY_SHAPES

    started = time.perf_counter()
    for _ in range(100):
        assert not _KEY_SHAPES["pgo"].fullmatch(key)
    assert time.perf_counter() - started < 0.1  # linear: microseconds a key


@pytest.mark.parametrize(
    "key, shaped",
    [
        ("job:0:tag", True),
        ("job:None:", True),
        ("a:b:0:c", True),
        (":0:tag", False),
        ("job:x:tag", False),
        ("job:0:t\n", False),
    ],
)
def test_a_megacache_profile_key_keeps_torchs_shape(key: str, shaped: bool) -> None:
    from atpack.adapters.megacache import _KEY_SHAPES

    assert bool(_KEY_SHAPES["pgo"].fullmatch(key)) is shaped
