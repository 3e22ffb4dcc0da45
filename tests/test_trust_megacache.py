"""Megacache entries are hostile input: each is checked before anything of it is written, and
written by atpack (atomically, inside the Inductor folder, never over a different file), never
through torch's own `populate_cache()` writers, which join keys into paths and replace files.

Every test builds its attack, populates a *site* (cache folders that already hold files, and a
folder outside them), then checks: the refusal is an `AtpackError` of one line, the site is
unchanged (a listing of every file's bytes and every symlink), and nothing ran: the pickles
planted here create a marker folder when unpickled, and it never appears.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from atpack.adapters.megacache import blob_entries, write_blob
from atpack.api import to_megacache
from atpack.artifacts import MEGACACHE_TYPES, MegacacheOther
from atpack.collect import pack_caches
from atpack.errors import FormatError, UnsafeContentError
from atpack.pack import PackWriter
from atpack.populate import PopulateReport, populate
from atpack.replay import MARKER
from atpack.testing.faults import listing
from atpack.testing.packs import INDUCTOR_ENV, hex64

BEST_CONFIG = b'{"XBLOCK": 128, "num_warps": 4, "num_stages": 1, "configs_hash": "abc", "found_by_coordesc": false}'
AUTOTUNE_KEY = "ab/" + hex64("kernel") + ".best_config"
GRAPH_KEY = "f" + "q" * 51  # the shapes torch gives keys: "f"/"a" + 51 base32 characters, a SHA-256 in hex
AOT_KEY = "a" + "q" * 51
PGO_KEY = "my-job:None:"
PRECOMPILE_KEY = hex64("fn")


class Marker:
    """Unpickling this creates the folder `path`: proof that a pickle ran."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (os.mkdir, (self.path,))


class Site:
    """Cache folders holding files already, a folder outside them, and where a pickle that runs
    leaves its mark."""

    def __init__(self, root: Path) -> None:
        self.root = root / "site"
        self.inductor = self.root / "caches" / "inductor"
        self.triton = self.root / "caches" / "triton"
        self.outside = self.root / "outside"
        self.marker = root / "a pickle ran"
        self.packs = root / "packs"
        for folder in (self.inductor / "ab", self.triton, self.outside, self.packs):
            folder.mkdir(parents=True)
        (self.inductor / "ab" / "mine.best_config").write_bytes(BEST_CONFIG)
        (self.outside / "victim.txt").write_text("must stay as it is")

    @property
    def payload(self) -> bytes:
        return pickle.dumps(Marker(self.marker))

    def snapshot(self) -> dict[str, Any]:
        return listing(self.root)

    def populate(self, *entries: Entry, other: bool = False, **options: Any) -> PopulateReport:
        """Populate a pack of `entries`, as `megacache.other/1` artifacts if `other`."""
        path = self.packs / f"pack{len(list(self.packs.iterdir()))}.atpack"
        path.write_bytes(megacache_pack(*entries, other=other))
        return populate(
            path, inductor_dir=str(self.inductor), triton_dir=str(self.triton), ignore_environment=True, **options
        )

    def refuses(self, *entries: Entry, match: str, **options: Any) -> None:
        """Every entry fails with a one-line `UnsafeContentError` matching `match`; nothing is
        written and nothing runs."""
        before = self.snapshot()
        report = self.populate(*entries, **options)
        assert [o.action for o in report.outcomes] == ["failed"] * len(entries), report.format(verbose=True)
        for o in report.outcomes:
            assert o.error == "UnsafeContentError" and match in o.detail and "\n" not in o.detail, o
        assert self.snapshot() == before, "populate wrote something"
        assert not self.marker.exists(), "a pickle ran"


@pytest.fixture
def site(tmp_path: Path) -> Site:
    return Site(tmp_path)


Entry = tuple[str, str, bytes]
"""A Megacache entry: (type, key, content)."""


def megacache_pack(*entries: Entry, other: bool = False) -> bytes:
    """A pack of Megacache artifacts, one per entry, in blob order."""
    out = io.BytesIO()
    writer = PackWriter(out)
    writer.add_environment(INDUCTOR_ENV)
    for seq, (kind, key, content) in enumerate(entries):
        fields: dict[str, Any] = {
            "env": INDUCTOR_ENV.digest,
            "entry_key": key,
            "seq": seq,
            "content": writer.add_blob(content),
            "size": len(content),
        }
        writer.add(MegacacheOther(type=kind, **fields) if other else MEGACACHE_TYPES[kind](**fields))
    writer.finish()
    return out.getvalue()


# =========================================================================== autotune entries (data)


def test_an_autotune_entry_keyed_into_the_fx_graph_cache_is_refused(site: Site) -> None:
    # torch's own hook writes it to <cache>/<key>; the next compile of that graph unpickles it
    key = f"fxgraph/{GRAPH_KEY[1:3]}/{GRAPH_KEY}/x.best_config"
    site.refuses(("autotune", key, site.payload), match="not the shape torch gives autotune keys")


@pytest.mark.parametrize(
    "key",
    [
        f"aotautograd/{AOT_KEY}/x.best_config",
        "dynamo/code_state_x.best_config",
        f"{AUTOTUNE_KEY}/x.best_config",
        "ab/" + hex64("kernel")[:63] + ".best_config",
        "AB/" + hex64("kernel") + ".best_config",
        AUTOTUNE_KEY + "\n",
    ],
    ids=["aot autograd cache", "dynamo folder", "below a best_config", "63 hex digits", "upper case", "newline"],
)
def test_an_autotune_key_of_another_shape_than_torchs_is_refused(site: Site, key: str) -> None:
    site.refuses(("autotune", key, BEST_CONFIG), match="not the shape torch gives autotune keys")


@pytest.mark.parametrize(
    "content",
    [
        "pickle",
        b'["XBLOCK", 128]',
        b'{"XBLOCK": 128}',
        b'{"XBLOCK": 128, "num_warps": "4", "num_stages": 1}',
        b"[" * 100_000 + b"]" * 100_000,
        b"\xff\xfe not JSON",
    ],
    ids=["a pickle", "an array", "no num_warps", "a string for a number", "nested too deeply", "not UTF-8"],
)
def test_an_autotune_entry_that_is_not_a_best_config_object_is_refused(site: Site, content: Any) -> None:
    data = site.payload if content == "pickle" else content
    site.refuses(("autotune", AUTOTUNE_KEY, data), match="refusing Megacache autotune entry")


def test_an_autotune_entry_is_written_as_torch_writes_best_config_files(site: Site) -> None:
    report = site.populate(("autotune", AUTOTUNE_KEY, BEST_CONFIG))
    assert [(o.action, o.detail.split(";")[0]) for o in report.outcomes] == [("written", f"wrote {AUTOTUNE_KEY}")]
    assert (site.inductor / AUTOTUNE_KEY).read_bytes() == BEST_CONFIG


def test_an_autotune_entry_never_replaces_an_existing_best_config_that_differs(site: Site) -> None:
    mine = site.inductor / "ab" / "mine.best_config"
    other = BEST_CONFIG.replace(b"128", b"256")
    key = "ab/" + hex64("mine") + ".best_config"
    os.rename(mine, site.inductor / key)
    before = site.snapshot()
    report = site.populate(("autotune", key, other))
    assert [o.action for o in report.outcomes] == ["kept"]
    assert report.outcomes[0].detail.startswith("kept 1 existing file(s) that differ")
    assert site.snapshot() == before
    again = site.populate(("autotune", key, BEST_CONFIG))  # the same content: nothing to do
    assert [o.action for o in again.outcomes] == ["present"]
    after = site.snapshot()
    # but the folder holds a result the pack holds: the replay is switched on for its processes
    assert after.pop(f"caches/inductor/{MARKER}")[0] == "file"
    assert after == before


def test_of_two_autotune_entries_for_one_file_the_later_is_written_as_torch_leaves_it(site: Site) -> None:
    later = BEST_CONFIG.replace(b"false", b"true")
    report = site.populate(("autotune", AUTOTUNE_KEY, BEST_CONFIG), ("autotune", AUTOTUNE_KEY, later))
    assert sorted((o.action, o.detail.split(";")[0]) for o in report.outcomes) == [
        ("present", "superseded by the pack's megacache.autotune/1 for the same file"),  # torch's earlier record
        ("written", f"wrote {AUTOTUNE_KEY}"),
    ]
    assert (site.inductor / AUTOTUNE_KEY).read_bytes() == later


def test_a_best_config_planted_as_a_symlink_is_neither_followed_nor_replaced(site: Site) -> None:
    (site.inductor / AUTOTUNE_KEY).symlink_to(site.outside / "victim.txt")
    before = site.snapshot()
    report = site.populate(("autotune", AUTOTUNE_KEY, BEST_CONFIG))
    assert [o.action for o in report.outcomes] == ["kept"]
    assert site.snapshot() == before


# =========================================================================== pickled entries (trusted)

ESCAPES = {
    "inductor": ["f../../../outside/x", "f" + "q" * 50 + "/", "f" + "Q" * 51, "c" + "q" * 51],
    "aot_autograd": ["../../outside", "a" + "q" * 50 + "/", "a" + "q" * 52],
    "pgo": ["job\x00:None:", "job:rank0:", "x" * 300 + ":None:"],
    "precompile": ["../outside", PRECOMPILE_KEY + "/..", PRECOMPILE_KEY.upper()],
}


@pytest.mark.parametrize(
    ("kind", "key"), [(k, key) for k, keys in ESCAPES.items() for key in keys], ids=lambda v: repr(v)[:40]
)
def test_a_trusted_entry_whose_key_is_not_the_shape_torch_gives_is_refused(site: Site, kind: str, key: str) -> None:
    # trust covers running the pickle, not writing wherever its key points
    site.refuses((kind, key, site.payload), match="refusing", trust_pickles=True)


@pytest.mark.parametrize("kind", ["inductor", "aot_autograd", "precompile"])
def test_a_trusted_entry_is_not_written_through_a_symlinked_folder(site: Site, kind: str) -> None:
    key = {"inductor": GRAPH_KEY, "aot_autograd": AOT_KEY, "precompile": PRECOMPILE_KEY}[kind]
    folder = {"inductor": f"fxgraph/{key[1:3]}", "aot_autograd": "aotautograd", "precompile": "dynamo"}[kind]
    (site.inductor / folder).parent.mkdir(parents=True, exist_ok=True)
    (site.inductor / folder).symlink_to(site.outside, target_is_directory=True)
    site.refuses((kind, key, site.payload), match="it is a symlink", trust_pickles=True)


def _torch_path(kind: str, key: str, content: bytes) -> str:
    """Where torch's own `populate_cache()` of `kind` writes, by torch's own functions."""
    from torch._inductor.codecache import sha256_hash

    if kind == "inductor":
        from torch._inductor.codecache import FxGraphCache

        return os.path.join(FxGraphCache._get_tmp_dir_for_key(key), sha256_hash(content))
    if kind == "aot_autograd":
        from torch._functorch._aot_autograd.autograd_cache import AOTAutogradCache

        return os.path.join(AOTAutogradCache._get_tmp_dir_for_key(key), sha256_hash(content))
    if kind == "pgo":
        from torch._dynamo.pgo import code_state_path

        path = code_state_path(key)
        assert path is not None
        return path
    from torch._dynamo.package import DynamoCache

    return os.path.join(DynamoCache.path_prefix(), key, "entry")


@pytest.mark.parametrize(
    ("kind", "key"),
    [("inductor", GRAPH_KEY), ("aot_autograd", AOT_KEY), ("pgo", "my/job:0:tag"), ("precompile", PRECOMPILE_KEY)],
)
def test_a_trusted_entry_is_written_where_torchs_own_writer_puts_it(
    site: Site, kind: str, key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    content = pickle.dumps({"a graph": kind})  # unpickled by the Triton bundle step: harmless
    report = site.populate((kind, key, content), trust_pickles=True)
    assert [o.action for o in report.outcomes] == ["written"], report.format(verbose=True)
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(site.inductor))
    assert Path(_torch_path(kind, key, content)).read_bytes() == content


@pytest.mark.parametrize(("kind", "key"), [("pgo", PGO_KEY), ("precompile", PRECOMPILE_KEY)])
def test_a_trusted_entry_never_replaces_a_shared_file_that_differs(
    site: Site, kind: str, key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a PGO profile or a precompiled package is one file per key, which torch's writer replaces
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(site.inductor))
    existing = Path(_torch_path(kind, key, b""))
    existing.parent.mkdir(parents=True, exist_ok=True)
    existing.write_bytes(b"this machine's own profile")
    before = site.snapshot()
    report = site.populate((kind, key, site.payload), trust_pickles=True)
    assert [o.action for o in report.outcomes] == ["kept"], report.format(verbose=True)
    assert site.snapshot() == before and not site.marker.exists()


@pytest.mark.parametrize("trust", [False, True])
@pytest.mark.parametrize("kind", ["custom", "autotune", "inductor"])
def test_an_entry_of_a_type_atpack_does_not_know_is_never_replayed(site: Site, kind: str, trust: bool) -> None:
    # a megacache.other/1 claiming a known type's name too: its kind says what it is
    before = site.snapshot()
    report = site.populate((kind, AUTOTUNE_KEY, site.payload), other=True, trust_pickles=trust)
    assert [(o.action, o.detail) for o in report.outcomes] == [
        ("skipped", f"a Megacache entry of type {kind!r}, which atpack never replays (trusted or not)")
    ]
    assert site.snapshot() == before and not site.marker.exists()


def test_a_dry_run_reports_what_replay_would_do_and_writes_nothing(site: Site) -> None:
    before = site.snapshot()
    report = site.populate(
        ("autotune", AUTOTUNE_KEY, BEST_CONFIG), ("autotune", "cd/" + hex64("x") + ".best_config", b"[]"), dry_run=True
    )
    by_action = {o.action: o for o in report.outcomes}
    assert sorted(by_action) == ["failed", "written"]
    assert by_action["written"].detail.startswith(f"would write {AUTOTUNE_KEY};")
    assert site.snapshot() == before


# =========================================================================== torch's own read path


PROGRAM = """
import json, sys, torch
from torch._dynamo.utils import counters
if len(sys.argv) > 1:  # torch's own replay of a Megacache blob, as torch.compiler.load_cache_artifacts does it
    torch.compiler.load_cache_artifacts(open(sys.argv[1], "rb").read())
f = torch.compile(lambda x: torch.sin(x) * 2 + 1)
out = f(torch.arange(8, dtype=torch.float32))
print(json.dumps({"out": [round(v, 6) for v in out.tolist()], "miss": counters["inductor"]["fxgraph_cache_miss"]}))
"""


def compile_on_cpu(caches: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """A fresh process compiling a small function with Inductor on the CPU, using `caches`."""
    env = {
        **os.environ,
        "TORCHINDUCTOR_CACHE_DIR": str(caches / "inductor"),
        "TRITON_CACHE_DIR": str(caches / "triton"),
    }
    return subprocess.run(
        [sys.executable, "-c", PROGRAM, *args], capture_output=True, text=True, env=env, timeout=600, check=False
    )


def outputs(run: subprocess.CompletedProcess[str]) -> list[float]:
    assert run.returncode == 0, run.stderr[-4000:]
    return json.loads(run.stdout.strip().splitlines()[-1])["out"]  # type: ignore[no-any-return]


@pytest.mark.slow
def test_a_pickle_keyed_into_the_fx_graph_cache_runs_after_torchs_replay_and_never_after_atpacks(
    site: Site, tmp_path: Path
) -> None:
    scout = outputs(compile_on_cpu(tmp_path / "scout"))  # and the FX graph cache key, as torch makes it
    (graph,) = (tmp_path / "scout" / "inductor" / "fxgraph").glob("*/*")
    key = f"fxgraph/{graph.parent.name}/{graph.name}/x.best_config"

    # the attack is real: replayed by torch, the entry lands where the next compile unpickles it
    # (which then fails: the pickle was no graph)
    blob = tmp_path / "hostile.bin"
    blob.write_bytes(write_blob([("autotune", key, pickle.dumps(Marker(tmp_path / "ran under torch")))]))
    compile_on_cpu(tmp_path / "torch", str(blob))
    assert (tmp_path / "ran under torch").is_dir()

    # atpack refuses it, and a fresh compile over the site runs nothing
    site.refuses(("autotune", key, site.payload), match="not the shape torch gives autotune keys")
    assert outputs(compile_on_cpu(site.root / "caches")) == scout
    assert not site.marker.exists()


# =========================================================================== export (atpack megacache)


@pytest.mark.parametrize(
    "entry, match",
    [
        (("autotune", "../../outside/x.best_config", BEST_CONFIG), "not the shape torch gives autotune keys"),
        (("inductor", "/etc/" + "q" * 47, b"graph"), "not the shape torch gives inductor keys"),
        (("inductor", GRAPH_KEY, b"a pickle"), "pass trust_pickles=True (--trust-pickles) to export it"),
        (("autotune", AUTOTUNE_KEY, b'{"XBLOCK": 384, "num_warps": 4, "num_stages": 1}'), "not a power of two"),
    ],
    ids=["a key that climbs out", "an absolute key", "a pickle not trusted", "an invented config"],
)
def test_an_entry_populate_refuses_never_leaves_the_pack_as_a_torch_blob(
    tmp_path: Path, entry: Entry, match: str
) -> None:
    pack = tmp_path / "hostile.atpack"
    pack.write_bytes(megacache_pack(("autotune", AUTOTUNE_KEY, BEST_CONFIG), entry))
    with pytest.raises(UnsafeContentError, match=re.escape(match)):
        to_megacache(pack)


def test_an_export_of_entries_populate_writes_is_the_blob_torch_reads(tmp_path: Path) -> None:
    pack = tmp_path / "pack.atpack"
    pack.write_bytes(megacache_pack(("autotune", AUTOTUNE_KEY, BEST_CONFIG), ("inductor", GRAPH_KEY, b"a pickle")))
    blob = to_megacache(pack, trust_pickles=True)
    assert blob_entries(blob) == [("autotune", AUTOTUNE_KEY, BEST_CONFIG), ("inductor", GRAPH_KEY, b"a pickle")]


def test_a_torch_blob_atpack_could_not_read_back_is_never_packed(tmp_path: Path) -> None:
    """The writer checks each artifact with the reader's decoder: `pack --megacache` never
    publishes a pack that `atpack` itself refuses to open."""
    blob = write_blob([("autotune", AUTOTUNE_KEY, BEST_CONFIG), ("pgo", "j" * 5000 + ":None:", b"profile")])
    out = tmp_path / "pack.atpack"
    with pytest.raises(FormatError, match=re.escape("megacache.pgo/1 'jjj")) as raised:
        pack_caches(out, sources=(), megacache=blob, environment=INDUCTOR_ENV)
    assert "\n" not in str(raised.value)
    assert list(tmp_path.iterdir()) == []
