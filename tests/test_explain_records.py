"""Lookup records are read like everything else someone else may have written: only regular files,
bounded, decoded into their types, and what they hold shown escaped. No torch here: the records
are written by `atpack.lookups.Recorder` as the plug-in writes them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from atpack.errors import FormatError, LimitError
from atpack.explaining import explain
from atpack.lookups import MAX_RECORD_BYTES, RECORDS, Recorder, read_records, record_files

REPO = Path(__file__).resolve().parent.parent


def recorded(folder: Path) -> Recorder:
    """A process's recorder, writing into `folder` as the plug-in does."""
    recorder = Recorder(str(folder), keep=False)
    recorder.looked_up("fx_graph", "fhit", True, components=[("gm", "h1", "graph")])
    recorder.looked_up("fx_graph", "fmiss", False, components=[("gm", "h2", "graph"), ("dtype", "h3", "float64")])
    recorder.saved("fx_graph", "fmiss")
    recorder.benchmarked(0.25)
    return recorder


def test_a_record_is_read_back_as_written(tmp_path: Path) -> None:
    recorded(tmp_path)
    (record,) = read_records(record_files(str(tmp_path)))
    assert record.pid == os.getpid()
    assert [(lookup.key, lookup.hit) for lookup in record.lookups] == [("fhit", True), ("fmiss", False)]
    assert record.lookups[0].components == ()  # a hit needs no explaining: not written
    assert [c.name for c in record.lookups[1].components] == ["gm", "dtype"]
    assert record.lookups[1].seconds > 0  # from the miss to its save
    assert (record.benchmarks, record.benchmark_s) == (1, 0.25)


def test_a_forked_process_writes_a_record_of_its_own(tmp_path: Path) -> None:
    recorder = recorded(tmp_path)
    pid = os.fork()
    if pid == 0:  # a compile worker: never runs exit handlers
        recorder.looked_up("triton_kernel", "KEY", False, name="triton_poi_0")
        os._exit(0)
    os.waitpid(pid, 0)
    records = read_records(record_files(str(tmp_path)))
    assert sorted(r.pid for r in records) == sorted([os.getpid(), pid])
    (child,) = [r for r in records if r.pid == pid]
    assert [lookup.key for lookup in child.lookups] == ["KEY"]


def test_a_last_line_cut_short_is_left_out(tmp_path: Path) -> None:
    recorded(tmp_path)
    (path,) = record_files(str(tmp_path))
    with open(path, "ab") as f:
        f.write(b'{"type":"lookup","cache":"fx_graph","ke')
    (record,) = read_records([path])
    assert len(record.lookups) == 2


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (b'{"type":"lookup","cache":"fx_graph","key":"k","hit":"yes"}', "line 6: not a lookup record"),
        (b'{"type":"lookup","cache":"rm -rf","key":"k","hit":false}', "line 6: not a lookup record"),
        (b'{"type":"lookup","cache":"fx_graph","key":"k","hit":false,"extra":1}', "line 6: not a lookup record"),
        (b"[1e999999]", "line 6: not a lookup record"),
    ],
    ids=["mistyped", "unknown-cache", "unknown-member", "not-an-event"],
)
def test_a_line_that_is_not_an_event_is_refused_naming_it(tmp_path: Path, line: bytes, message: str) -> None:
    recorded(tmp_path)
    (path,) = record_files(str(tmp_path))
    with open(path, "ab") as f:
        f.write(line + b"\n")
    with pytest.raises(FormatError, match=message):
        read_records([path])


def test_a_file_that_names_no_process_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "1-1.jsonl"
    path.write_bytes(b'{"type":"benchmarked","seconds":1.0}\n')
    with pytest.raises(FormatError, match=r"its first line names no atpack\.lookups/1 process"):
        read_records([str(path)])


def test_special_files_links_and_huge_files_are_refused_without_reading_them(tmp_path: Path) -> None:
    fifo, link, huge = tmp_path / "fifo.jsonl", tmp_path / "link.jsonl", tmp_path / "huge.jsonl"
    os.mkfifo(fifo)
    link.symlink_to("/etc/passwd")
    with open(huge, "wb") as f:
        f.truncate(MAX_RECORD_BYTES + 1)
    with pytest.raises(FormatError, match="not a regular file"):
        read_records([str(fifo)])
    with pytest.raises(FormatError, match="cannot open the record"):
        read_records([str(link)])
    with pytest.raises(LimitError, match="more than a record may hold"):
        read_records([str(huge)])


def test_what_a_record_holds_is_shown_escaped(tmp_path: Path) -> None:
    recorder = Recorder(str(tmp_path), keep=False)
    recorder.looked_up(
        "fx_graph", "f\x1b[2Jkey\nmiss fx_graph forged", False, components=[("gm\r", "h", "\x1b]0;x\x07")]
    )
    text = explain(read_records(record_files(str(tmp_path)))).format(verbose=True)
    assert "\x1b" not in text and "\r" not in text and "\x07" not in text
    assert len([line for line in text.splitlines() if line.startswith("miss ")]) == 1


def test_explain_without_a_record_says_how_to_make_one(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "atpack", "explain", "--inductor-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"atpack: error: no lookup record in {tmp_path}: run the process with ATPACK_EXPLAIN=1, "
        "or populate with --explain first"
    ]


def test_records_are_private_to_the_user(tmp_path: Path) -> None:
    recorded(tmp_path)
    folder = tmp_path / RECORDS
    assert folder.stat().st_mode & 0o777 == 0o700
    assert all(p.stat().st_mode & 0o777 == 0o600 for p in folder.iterdir())


def test_the_report_shows_the_lookups_explained_and_escaped(tmp_path: Path) -> None:
    import atpack
    from atpack.report import render

    recorder = Recorder(str(tmp_path), keep=False)
    recorder.looked_up(
        "triton_autotune",
        'HM6<img src=x onerror="alert(1)">/add_kernel',
        False,
        name="add_kernel",
        components=[("configs", "another", "<b>12 configs</b>")],
    )
    with atpack.open(REPO / "spec" / "vectors" / "lookup-keys.atpack") as pack:
        page = render(pack, records=read_records(record_files(str(tmp_path))))
    assert "Lookups of 1 process record(s), explained" in page
    assert "the nearest of add_kernel in the pack differs in configs" in page
    shown = page.split('<script id="data"')[0]  # the data island after it is JSON, its "</" escaped
    assert "<img" not in shown and "<b>12" not in shown


def test_a_key_of_thousands_of_components_is_kept_folded(tmp_path: Path) -> None:
    from atpack.lookups import MAX_COMPONENTS

    recorder = Recorder(str(tmp_path))
    parts = [(f"example_inputs[{i}]", f"h{i}", "TensorMetadata(...)") for i in range(MAX_COMPONENTS + 500)]
    recorder.looked_up("fx_graph", "fbig", False, components=parts)
    (kept,) = recorder.lookups
    assert len(kept.components) == MAX_COMPONENTS
    assert kept.components[-1].name == "... 501 more"
    (record,) = read_records(record_files(str(tmp_path)))  # the file reads back whole
    assert record.lookups[0].components == kept.components


def test_a_records_folder_that_is_not_the_users_alone_gets_no_record(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o777)
    linked, shared = tmp_path / "linked", tmp_path / "shared"
    linked.mkdir()
    (linked / RECORDS).symlink_to(elsewhere)
    shared.mkdir()
    (shared / RECORDS).mkdir()
    os.chmod(shared / RECORDS, 0o777)
    for folder in (linked, shared):
        with pytest.raises(OSError):  # in a process, the seam's guard logs it once and stops recording
            Recorder(str(folder)).looked_up("fx_graph", "f", False)
    assert list(elsewhere.iterdir()) == [] and list((shared / RECORDS).iterdir()) == []


def test_a_key_the_capture_looked_up_but_did_not_keep_is_said_so(tmp_path: Path) -> None:
    from atpack.artifacts import KeyComponent, LookupKey

    parts = (KeyComponent("source", "abc", "abc"),)
    blob = "sha256:" + "1" * 64
    kept = LookupKey(env="sha256:" + "0" * 64, cache="triton_kernel", lookup="KEY", name="k", components=blob, count=1)
    recorder = Recorder(str(tmp_path))
    recorder.looked_up("triton_kernel", "KEY", False, name="k", components=[("source", "abc", "abc")])
    (miss,) = explain(read_records(record_files(str(tmp_path))), [kept], {}, {blob: parts}).misses
    assert miss.cause == "the capture looked this key up, but the pack holds no entry for it (not kept)"


def test_explain_compares_at_most_so_many_distinct_misses(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from atpack import explaining

    monkeypatch.setattr(explaining, "MAX_EXPLAINED", 3)
    recorder = Recorder(str(tmp_path))
    for i in range(5):
        recorder.looked_up("fx_graph", f"f{i}", False, components=[("gm", str(i), "graph")])
    recorder.looked_up("fx_graph", "f0", False, components=[("gm", "0", "graph")])  # seen: explained as before
    causes = [m.cause for m in explain(read_records(record_files(str(tmp_path)))).misses]
    assert [c.startswith("not explained") for c in causes] == [False, False, False, True, True, False]


def test_the_hooks_observe_only(tmp_path: Path) -> None:
    """What torch's functions return, and what pickles, is what it was without the record; an error
    of the record's own gives the record up, never reaches torch."""
    result = subprocess.run(
        [sys.executable, "-c", _HOOKS_OBSERVE_ONLY],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "TORCHINDUCTOR_CACHE_DIR": str(tmp_path)},
    )
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout.splitlines()[-1])
    if found["torch's debug lines"] == "not in this release":
        found["torch's debug lines"] = []  # nothing there to wrap: the rest holds all the same
    assert found == {
        "torch's debug lines": [],
        "benchmarker pickles": True,
        "a failing record raised": False,
        "hooks after the capture": [],
    }


_HOOKS_OBSERVE_ONLY = """
import json, os, pickle
import torch
from torch._functorch._aot_autograd import autograd_cache
from torch._inductor.runtime import benchmarking
import atpack
from atpack import seam

class Pickler:
    def debug_lines(self, details):
        raise RuntimeError("the record's own failure")

folder = os.environ["TORCHINDUCTOR_CACHE_DIR"]
with atpack.capture(inductor_dir=folder, triton_dir=os.path.join(folder, "triton")):
    lister = getattr(autograd_cache, "_get_debug_lines_for_cache_key", None)  # torch 2.13 and later
    try:
        lines, raised = lister(Pickler(), object(), "akey") if lister else "not in this release", False
    except RuntimeError:
        lines, raised = None, True
    pickled = bool(pickle.dumps(benchmarking.benchmarker))
print(json.dumps({
    "torch's debug lines": lines,
    "benchmarker pickles": pickled,
    "a failing record raised": raised,
    "hooks after the capture": [p for p in seam.patched()],
}))
"""
