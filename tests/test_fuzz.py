"""Property-based fuzzing of the pack reader and the Megacache parser.

Hostile inputs are made from valid ones: random byte edits of whole packs (flips, insertions,
deletions, splices of two packs), edits of the index JSON, as a tree or as text, and of the zstd
frames, each re-sealed with a valid footer (and frame table) by the surgery tools of
`atpack.testing.packs`, so that they get past the checksums and reach the decoders and table
checks behind them; for Megacache blobs, random bytes and edited real-format blobs with a
recomputed CRC.

The property is the same everywhere: only `atpack.AtpackError` subclasses escape, nothing
hangs (hypothesis's deadline), and whatever reads without an error is right (every blob
matches its digest; a Megacache blob that parses writes back to the same entries).

Packs edited as structure (the harness's `pack-structural` target: JSON objects and blobs
edited, every digest and frame recomputed) are also populated into cache folders that hold
results already: populate only adds files, only inside the cache folders, only under names
their readers take as data, and reports every artifact.

``ATPACK_FUZZ_EXAMPLES=5000 pytest tests/test_fuzz.py`` runs longer (default: 300 examples a test).
`tools/fuzz_pack.py` is the coverage-guided counterpart.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import hashlib
import importlib.util
import json
import os
import random
import struct
import sys
import zlib
from pathlib import Path
from typing import Any

import hypothesis
import hypothesis.strategies as st
import msgspec
import pytest
import zstandard

import atpack
from atpack.adapters.megacache import MAX_ENTRIES, blob_entries, collect, write_blob
from atpack.digest import digest_bytes
from atpack.testing.packs import (
    FOOTER,
    HEADER,
    frames_region,
    open_bytes,
    pack_bytes,
    read_index,
    rewrite_index,
    sample_content,
    seal,
)

REPO = Path(__file__).resolve().parent.parent
VECTORS = REPO / "spec" / "vectors"


def _fuzz_harness() -> Any:
    spec = importlib.util.spec_from_file_location("fuzz_pack", REPO / "tools" / "fuzz_pack.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    module.load(instrument=False)
    return module


fuzz_pack = _fuzz_harness()
EXAMPLES = int(os.environ.get("ATPACK_FUZZ_EXAMPLES", "300"))

fuzz_settings = hypothesis.settings(
    max_examples=EXAMPLES,
    deadline=datetime.timedelta(seconds=5),  # a hang shows up as a deadline error
    suppress_health_check=[hypothesis.HealthCheck.too_slow, hypothesis.HealthCheck.data_too_large],
    derandomize=False,
)

# --------------------------------------------------------------------------- seeds


def _seed_packs() -> dict[str, bytes]:
    seeds = {p.stem: p.read_bytes() for p in sorted(VECTORS.glob("*.atpack"))}
    # every artifact kind, grouped small blobs and blobs with a frame each
    seeds["sample"] = pack_bytes(sample_content(group_size=64, big_blobs=2, small_blobs=5), group_size=64, level=1)
    return seeds


SEEDS = _seed_packs()
SEED_NAMES = sorted(SEEDS)
seed_names = st.sampled_from(SEED_NAMES)


def test_every_seed_pack_reads_whole() -> None:
    for name, data in SEEDS.items():
        assert read_checked(data) == "ok", name
    assert {len(read_index(d)["frames"]) for d in SEEDS.values()} >= {0, 1}
    assert max(len(read_index(d)["frames"]) for d in SEEDS.values()) >= 3


# --------------------------------------------------------------------------- the property


def read_checked(data: bytes) -> str:
    """Open `data` as a pack and read everything (`tools/fuzz_pack.py`'s `check_pack`, the
    coverage-guided harness's property): "ok" or the first atpack error's stage and name; any
    other exception, and any wrong bytes read (`Mismatch`, an AssertionError), fail the test."""
    return str(fuzz_pack.check_pack(data))


def check(data: bytes) -> None:
    hypothesis.event(read_checked(data))


# --------------------------------------------------------------------------- byte edits of whole packs

_INTERESTING = (0, 1, 0x7F, 0xFF, 0x100, 1 << 31, 1 << 32, (1 << 63) - 1, (1 << 64) - 1)


@st.composite
def byte_edits(draw: st.DrawFn, data: bytes) -> bytes:
    """`data` after 1 to 6 random edits, each at a random place (positions near the footer
    and header are as likely as anywhere: the structure is there)."""
    out = bytearray(data)
    for _ in range(draw(st.integers(1, 6))):
        where = draw(st.one_of(st.integers(0, max(0, len(out))), st.integers(max(0, len(out) - 80), len(out))))
        op = draw(st.sampled_from(["flip", "set", "insert", "delete", "duplicate", "integer", "truncate", "splice"]))
        if op == "flip" and out:
            i = min(where, len(out) - 1)
            out[i] ^= 1 << draw(st.integers(0, 7))
        elif op == "set" and out:
            out[min(where, len(out) - 1)] = draw(st.integers(0, 255))
        elif op == "insert":
            out[where:where] = draw(st.binary(min_size=1, max_size=32))
        elif op == "delete":
            del out[where : where + draw(st.integers(1, 64))]
        elif op == "duplicate" and out:
            start = draw(st.integers(0, len(out) - 1))
            out[where:where] = out[start : start + draw(st.integers(1, 64))]
        elif op == "integer":
            fmt = draw(st.sampled_from(["<Q", "<I", "<H", ">Q"]))
            value = draw(st.sampled_from(_INTERESTING)) & ((1 << (8 * struct.calcsize(fmt))) - 1)
            raw = struct.pack(fmt, value)
            out[where : where + len(raw)] = raw
        elif op == "truncate":
            out = out[:where] if draw(st.booleans()) else out[where:]
        elif op == "splice":
            other = SEEDS[draw(seed_names)]
            cut = draw(st.integers(0, len(other)))
            out = out[:where] + other[cut:]
    return bytes(out)


@fuzz_settings
@hypothesis.given(data=st.data(), name=seed_names)
def test_byte_edits_of_a_pack_raise_only_atpack_errors(data: st.DataObject, name: str) -> None:
    check(data.draw(byte_edits(SEEDS[name])))


@fuzz_settings
@hypothesis.given(data=st.data(), name=seed_names)
def test_byte_edits_before_the_index_raise_only_atpack_errors(data: st.DataObject, name: str) -> None:
    # the footer's sha256 guards the index, not the header or the frames: edit only those
    pack = SEEDS[name]
    offset = struct.unpack_from("<Q", pack, len(pack) - FOOTER.size)[0]
    edited = data.draw(byte_edits(pack[:offset]))
    check(edited + pack[offset:])


@fuzz_settings
@hypothesis.given(size=st.integers(0, 200), junk=st.binary(max_size=200), name=seed_names)
def test_a_valid_footer_after_junk_raises_only_atpack_errors(size: int, junk: bytes, name: str) -> None:
    pack = SEEDS[name]
    check(junk + pack[-size:])


# --------------------------------------------------------------------------- index edits, re-sealed

_json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(1 << 70), 1 << 70),
    st.sampled_from([0, -1, 1, 16, 72, 1 << 32, (1 << 64) - 1, 1 << 64]),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
    st.sampled_from(["", "sha256:" + "0" * 64, "sha256:" + "f" * 63, "inductor.best_config/1", "x" * 300]),
)
_json_values = st.recursive(
    _json_scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=8,
)


def _containers(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[tuple[Any, ...], Any]]:
    """Every list and dict in `value`, with its path."""
    found: list[tuple[tuple[Any, ...], Any]] = []
    if isinstance(value, (list, dict)):
        found.append((path, value))
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for key, child in items:
            found.extend(_containers(child, (*path, key)))
    return found


@st.composite
def index_edits(draw: st.DrawFn, index: dict[str, Any]) -> dict[str, Any]:
    """`index` (JSON data) after 1 to 4 edits of its tree: a value replaced, a key or an element
    dropped, an element duplicated, two elements swapped, an integer nudged."""
    for _ in range(draw(st.integers(1, 4))):
        _, node = draw(st.sampled_from(_containers(index)))
        keys = list(node) if isinstance(node, dict) else list(range(len(node)))
        op = draw(st.sampled_from(["replace", "drop", "duplicate", "swap", "nudge", "add"]))
        if op == "add" or not keys:
            if isinstance(node, dict):
                node[draw(st.sampled_from(["frames", "blobs", "extra", "kind", "env", "size", "files"]))] = draw(
                    _json_values
                )
            else:
                node.insert(draw(st.integers(0, len(node))), draw(_json_values))
            continue
        key = draw(st.sampled_from(keys))
        if op == "replace":
            node[key] = draw(_json_values)
        elif op == "drop":
            del node[key]
        elif op == "duplicate" and isinstance(node, list):
            node.insert(key, node[key])
        elif op == "swap" and isinstance(node, list):
            other = draw(st.sampled_from(keys))
            node[key], node[other] = node[other], node[key]
        elif op == "nudge" and type(node[key]) is int:
            node[key] += draw(st.sampled_from([-1, 1, -16, 16, 1 << 20]))
    return index


@fuzz_settings
@hypothesis.given(data=st.data(), name=seed_names)
def test_index_tree_edits_resealed_raise_only_atpack_errors(data: st.DataObject, name: str) -> None:
    pack = SEEDS[name]
    index = data.draw(index_edits(read_index(pack)))
    check(seal(msgspec.json.encode(index, order="sorted"), frames=frames_region(pack)))


@fuzz_settings
@hypothesis.given(data=st.data(), name=seed_names)
def test_index_text_edits_resealed_raise_only_atpack_errors(data: st.DataObject, name: str) -> None:
    pack = SEEDS[name]
    offset, length, size = struct.unpack_from("<QQQ", pack, len(pack) - FOOTER.size)
    text = zstandard.ZstdDecompressor().decompress(pack[offset : offset + length], max_output_size=size)
    check(seal(data.draw(byte_edits(text)), frames=frames_region(pack)))


# --------------------------------------------------------------------------- frame edits, re-sealed


@fuzz_settings
@hypothesis.given(data=st.data(), name=st.sampled_from([n for n in SEED_NAMES if read_index(SEEDS[n])["frames"]]))
def test_frame_edits_with_their_sha256_fixed_raise_only_atpack_errors(data: st.DataObject, name: str) -> None:
    """A frame edited and its table entry fixed (sha256, length, the offsets after it): the
    zstd decoder and the blob digests are all that stand between it and the reader."""
    pack = SEEDS[name]
    index = read_index(pack)
    frames = index["frames"]
    i = data.draw(st.integers(0, len(frames) - 1))
    payloads = [pack[f[0] : f[0] + f[1]] for f in frames]
    payloads[i] = data.draw(byte_edits(payloads[i]).filter(bool))
    offset = HEADER.size
    for f, payload in zip(frames, payloads):
        f[0], f[1], f[3] = offset, len(payload), hashlib.sha256(payload).hexdigest()
        offset += len(payload)
    if data.draw(st.booleans()):  # the table says the size the frame declares, if it declares one
        with contextlib.suppress(zstandard.ZstdError):
            declared = zstandard.frame_content_size(payloads[i])
            if declared >= 0:
                frames[i][2] = declared
    check(rewrite_index(pack, lambda _: index, frames=b"".join(payloads)))


# --------------------------------------------------------------------------- Megacache blobs


def _with_crc(body: bytes) -> bytes:
    return zlib.crc32(body).to_bytes(4, "big") + body


def parse_checked(blob: bytes) -> str:
    """Parse a Megacache blob; a blob that parses writes back to the same entries and converts
    to one artifact per entry. Returns "ok" or the atpack error's name."""
    try:
        entries = blob_entries(blob)
    except atpack.AtpackError as e:
        return type(e).__name__
    assert len(entries) <= MAX_ENTRIES
    assert blob_entries(write_blob(entries)) == entries
    stored: dict[str, bytes] = {}

    def add_blob(content: bytes, hint: str) -> str:
        stored[digest_bytes(content)] = content
        return digest_bytes(content)

    artifacts = list(collect(blob, "sha256:" + "0" * 64, add_blob))
    assert [(a.type_name, a.entry_key, stored[a.content]) for a in artifacts] == entries
    return "ok"


@fuzz_settings
@hypothesis.given(blob=st.binary(max_size=512))
def test_random_bytes_are_refused_as_megacache_blobs_with_a_format_error(blob: bytes) -> None:
    assert parse_checked(blob) != "ok" or len(blob) >= 12
    hypothesis.event(parse_checked(blob))


@fuzz_settings
@hypothesis.given(body=st.binary(max_size=512))
def test_random_bytes_with_a_valid_crc_raise_only_format_errors(body: bytes) -> None:
    hypothesis.event(parse_checked(_with_crc(body)))


_types = st.one_of(
    st.sampled_from(["autotune", "inductor", "aot_autograd", "pgo", "precompile"]), st.text(min_size=1, max_size=12)
)
megacache_entries = st.lists(st.tuples(_types, st.text(max_size=24), st.binary(max_size=64)), max_size=8)


@fuzz_settings
@hypothesis.given(entries=megacache_entries)
def test_megacache_blobs_round_trip(entries: list[tuple[str, str, bytes]]) -> None:
    blob = write_blob(entries)
    assert blob_entries(blob) == entries
    assert parse_checked(blob) == "ok"


@st.composite
def body_edits(draw: st.DrawFn, body: bytes) -> bytes:
    """Edits of a blob's body that keep to its grammar's pieces: u64 fields set to interesting
    values, base64 text broken, bytes flipped, inserted or cut."""
    out = bytearray(body)
    for _ in range(draw(st.integers(1, 4))):
        where = draw(st.integers(0, len(out)))
        op = draw(st.sampled_from(["u64", "flip", "insert", "delete", "truncate", "not-base64"]))
        if op == "u64":
            value = draw(st.one_of(st.sampled_from(_INTERESTING), st.integers(0, 600)))
            out[where : where + 8] = struct.pack(">Q", value)
        elif op == "flip" and out:
            out[min(where, len(out) - 1)] ^= 1 << draw(st.integers(0, 7))
        elif op == "insert":
            out[where:where] = draw(st.binary(min_size=1, max_size=16))
        elif op == "delete":
            del out[where : where + draw(st.integers(1, 16))]
        elif op == "truncate":
            del out[where:]
        elif op == "not-base64" and out:
            out[min(where, len(out) - 1)] = draw(st.sampled_from(b"=!\xff\x80 "))
    return bytes(out)


@fuzz_settings
@hypothesis.given(entries=megacache_entries, data=st.data())
def test_edited_megacache_blobs_with_a_valid_crc_raise_only_format_errors(
    entries: list[tuple[str, str, bytes]], data: st.DataObject
) -> None:
    body = write_blob(entries)[4:]
    edited = data.draw(body_edits(body))
    hypothesis.event(parse_checked(_with_crc(edited)))
    hypothesis.event(parse_checked(write_blob(entries)[:4] + edited))  # the old CRC: refused unless unchanged


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(struct.pack(">Q", 1) + struct.pack(">Q", 1 << 63), id="section-name-past-the-end"),
        pytest.param(
            struct.pack(">Q", 1) + struct.pack(">Q", 4) + base64.b64encode(b"abc") + struct.pack(">Q", 1 << 40),
            id="huge-count-no-entries",
        ),
        pytest.param(
            struct.pack(">Q", 1) + struct.pack(">Q", 2) + b"\xff\xfe" + struct.pack(">Q", 0), id="name-not-base64"
        ),
        pytest.param(
            struct.pack(">Q", 1) + struct.pack(">Q", 4) + base64.b64encode(b"\xff\xfe\xfd") + struct.pack(">Q", 0),
            id="name-not-utf8",
        ),
        pytest.param(struct.pack(">Q", 2), id="version-2"),
    ],
)
def test_hand_made_bad_megacache_blobs_are_format_errors(body: bytes) -> None:
    with pytest.raises(atpack.FormatError, match="megacache blob"):
        blob_entries(_with_crc(body))


# --------------------------------------------------------------------------- structural edits, populated
#
# `tools/fuzz_pack.py`'s `pack-structural` target: a seed pack's index edited as JSON objects and
# its blobs replaced (every digest, frame and the footer recomputed), opened, read whole and
# populated into a site whose cache folders already hold results, through the harness's own
# mutator and oracle (`check_structural`): nothing outside the cache folders changes, nothing
# there is changed or removed, every new file has a name its folder's reader takes as data, and
# every artifact has an outcome.

STRUCTURAL_EXAMPLES = int(os.environ.get("ATPACK_FUZZ_EXAMPLES", "300"))


@pytest.fixture(scope="module")
def populate_oracle() -> None:
    """The harness's oracle, warmed up on every seed pack (torch imported for the Megacache
    replay, the local environment computed), so that no example pays for it."""
    for tape in fuzz_pack.seeds_for("pack-structural"):
        fuzz_pack.check_structural(tape)


@hypothesis.settings(
    max_examples=STRUCTURAL_EXAMPLES,
    deadline=datetime.timedelta(seconds=5),
    derandomize=True,
    database=None,
    suppress_health_check=[hypothesis.HealthCheck.too_slow, hypothesis.HealthCheck.data_too_large],
)
@hypothesis.given(tape=st.binary(max_size=96))
def test_structurally_edited_packs_populate_only_new_data_files_inside_the_cache_folders(
    populate_oracle: None, tape: bytes
) -> None:
    hypothesis.event(fuzz_pack.check_structural(tape).split(":")[0])


def test_structural_edits_reach_every_stage_of_populate(populate_oracle: None) -> None:
    # the edits make packs that open and get refused artifact by artifact, not only packs that
    # the reader refuses: each populate-side check is reached
    rng = random.Random(0)
    tapes = [*fuzz_pack.seeds_for("pack-structural"), *(rng.randbytes(rng.randint(0, 96)) for _ in range(600))]
    results = [fuzz_pack.check_structural(tape) for tape in tapes]
    opened = [r for r in results if r.startswith("populated: ")]
    assert 0.3 < len(opened) / len(results) < 0.9
    seen = {action for r in opened for action in r.removeprefix("populated: ").split(", ")}
    assert {"written", "present", "kept", "skipped"} <= seen
    assert {"failed UnsafeContentError", "failed CacheFileError", "failed FormatError"} <= seen


KEY = "K" * 52
MOVED = f"triton/0/{fuzz_pack.BASE32}"
"""The site's copy of a kernel, in the default Inductor folder, with a group file naming paths elsewhere."""


def _gemm(*timings: tuple[str, float]) -> bytes:
    cache = {"mm": {"[]": {"high": dict(timings)}}}
    return json.dumps({"system": {"hash": fuzz_pack.HEX}, "cache": cache}, indent=4).encode()


def _group(folder: str, *more: str) -> bytes:
    """The group file of the kernel at `MOVED`, naming its files in `folder` (and `more` of them)."""
    names = ["json", "cubin", *more]
    return json.dumps({"child_paths": {f"kernel_0.{n}": f"{folder}/kernel_0.{n}" for n in names}}).encode()


# what populate must never do, done by hand: (path in the site, new content, or a function of the
# file's folder that makes it, or None to remove it); "<inductor>" is the default Inductor folder
PLANTED: dict[str, tuple[str, Any]] = {
    "a native module in a Triton folder": (f"caches/triton/{KEY}/kernel_0.so", b"\x7fELF"),
    "a Python file in a Triton folder": (f"caches/triton/{KEY}/kernel_0.py", b"import os"),
    "a pickle in Triton's own folder": (f"home/.triton/cache/{KEY}/kernel_0.pkl", b"\x80\x04."),
    "a kernel module in an Inductor shard": (f"caches/inductor/ab/c{'a' * 51}.py", b"import os"),
    "a file under fxgraph/": (f"caches/inductor/fxgraph/ab/{fuzz_pack.HEX}.best_config", b"\x80\x04."),
    "a best_config outside a shard": (f"caches/inductor/{fuzz_pack.HEX}.best_config", b"{}"),
    "a file outside the cache folders": ("outside/new.txt", b"x"),
    "a file beside the cache folders": ("caches/x.best_config", b"x"),
    "a file in the user's home": ("home/.bashrc", b"x"),
    "an existing result changed": ("caches/inductor/zz/mine.best_config", b"{}"),
    "an existing result removed": (f"caches/triton/{fuzz_pack.SITE_KEY}/mine.json", None),
    "a file outside removed": ("outside/victim.txt", None),
    "GEMM timings with one dropped": (f"<inductor>/cache/{fuzz_pack.HEX}", _gemm()),
    "GEMM timings with one changed": (f"<inductor>/cache/{fuzz_pack.HEX}", _gemm(("mm_0", 0.5))),
    "a group file naming paths elsewhere": (f"<inductor>/{MOVED}/__grp__kernel_0.json", lambda _: _group("/elsewhere")),
    "a group file listing another file": (f"<inductor>/{MOVED}/__grp__kernel_0.json", lambda h: _group(h, "ptx")),
}
UPDATES: dict[str, tuple[str, Any]] = {
    # what populate may do
    "a kernel binary in a Triton folder": (f"caches/triton/{KEY}/kernel_0.cubin", b"cubin"),
    "a best_config in a shard": (f"caches/inductor/ab/{fuzz_pack.HEX}.best_config", b"{}"),
    "GEMM timings with one added": (f"<inductor>/cache/{fuzz_pack.HEX}", _gemm(("mm_0", 0.25), ("mm_1", 0.5))),
    "a group file naming its own folder": (f"<inductor>/{MOVED}/__grp__kernel_0.json", lambda here: _group(here)),
}


def _oracle_site(tmp_path: Path) -> tuple[Any, dict[str, tuple[str, list[str]]]]:
    """A fresh site, and its named and default folders (relative to it) as `check_changes` takes them."""
    site = fuzz_pack.Site(str(tmp_path))
    site.reset()
    default = os.path.relpath(site.inductor_default, site.root)
    return site, {
        "caches": ("caches/inductor", ["caches/triton"]),
        "<inductor>": (default, [f"{default}/triton/0", os.path.relpath(site.triton_default, site.root)]),
    }


def _change(site: Any, change: tuple[str, Any]) -> None:
    rel, content = change
    path = Path(site.root, rel.replace("<inductor>", os.path.relpath(site.inductor_default, site.root)))
    if content is None:
        path.unlink()
        return
    if callable(content):
        content = content(str(path.parent))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)


@pytest.mark.parametrize("case", list(PLANTED))
def test_the_populate_oracle_flags_what_populate_must_never_do(tmp_path: Path, case: str) -> None:
    site, folders = _oracle_site(tmp_path)
    before = fuzz_pack.listing(site.root)
    _change(site, PLANTED[case])
    for inductor, tritons in folders.values():
        with pytest.raises(fuzz_pack.Violation):
            fuzz_pack.check_changes(before, fuzz_pack.listing(site.root), inductor, tritons, site.root)


@pytest.mark.parametrize("case", list(UPDATES))
def test_the_populate_oracle_lets_populate_add_data_merge_timings_and_repair_group_files(
    tmp_path: Path, case: str
) -> None:
    site, folders = _oracle_site(tmp_path)
    before = fuzz_pack.listing(site.root)
    _change(site, UPDATES[case])
    inductor, tritons = folders[UPDATES[case][0].partition("/")[0]]
    fuzz_pack.check_changes(before, fuzz_pack.listing(site.root), inductor, tritons, site.root)


# --------------------------------------------------------------------------- regressions found by fuzzing
#
# msgspec reports invalid UTF-8 in a string as a UnicodeDecodeError, not a msgspec.DecodeError,
# and does not look inside the values it skips (an artifact kept as raw text, the fields of an
# unknown kind its probe ignores): each of these escaped the reader untyped.


def _index_text(pack: bytes) -> bytes:
    offset, length, size = struct.unpack_from("<QQQ", pack, len(pack) - FOOTER.size)
    return zstandard.ZstdDecompressor().decompress(pack[offset : offset + length], max_output_size=size)


def _with_index_text(name: str, old: bytes, new: bytes) -> bytes:
    pack = SEEDS[name]
    text = _index_text(pack)
    assert text.count(old) == 1
    return seal(text.replace(old, new), frames=frames_region(pack))


def test_invalid_utf8_in_an_annotation_is_a_format_error() -> None:
    with pytest.raises(atpack.FormatError, match=r"not valid UTF-8 \(byte \d+\)"):
        open_bytes(_with_index_text("minimal", b'"minimal"', b'"min\xffmal"'))


def test_invalid_utf8_in_an_artifact_of_a_known_kind_is_a_format_error() -> None:
    with pytest.raises(atpack.FormatError, match=r"not valid UTF-8 \(byte \d+\)"):
        open_bytes(_with_index_text("minimal", b'"za/', b'"z\xe9/'))


def test_invalid_utf8_in_a_field_of_an_unknown_kind_is_a_format_error() -> None:
    with pytest.raises(atpack.FormatError, match=r"not valid UTF-8 \(byte \d+\)"):
        open_bytes(_with_index_text("unknown-kind", b'"from format 1.1"', b'"from format \xc3"'))
