"""The deployment workflow, through the real `atpack` command: merging the packs of several
ranks, comparing packs, a store with tags (local and S3), packs beside a checkpoint, and a
report that a headless browser renders."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import msgspec
import pytest

import atpack
from atpack.artifacts import Environment, InductorBestConfig, InductorGemmTimings, TritonAutotune
from atpack.merging import MergeConflictError, merge
from atpack.populate import populate

REPO = Path(__file__).resolve().parent.parent
ENV = Environment(torch_version="2.13.0", triton_version="3.9.0", device_name="NVIDIA H100 80GB HBM3")
PATH = "ab/" + "e" * 64 + ".best_config"


def atpack_cli(*args: str, cwd: Path = REPO, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "atpack", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        timeout=300,
    )


def _autotune(env: str, median: float) -> TritonAutotune:
    config = {"kwargs": [["BLOCK", 256]], "num_warps": 4, "num_stages": 3}
    return msgspec.convert(
        {
            "env": env,
            "cache_key": "K" * 52,
            "fn_name": "scale_add",
            "tuning_key": [4096, "torch.float32"],
            "configs_timings": [[config, [median, median, median]]],
        },
        TritonAutotune,
    )


def _gemm(env: str, timings: dict[str, float]) -> InductorGemmTimings:
    return msgspec.convert(
        {
            "env": env,
            "system": {"hash": "f" * 64},
            "entries": [{"op": "addmm", "inputs": "layout", "precision": "highest", "timings": list(timings.items())}],
        },
        InductorGemmTimings,
    )


def rank_pack(path: Path, *, block: int, median: float, gemm: dict[str, float], created: str) -> Path:
    """What one rank of a job would pack: the same kernels, tuned with some noise."""
    with atpack.create(path) as w:
        env = w.add_environment(ENV)
        w.add(InductorBestConfig(env=env, path=PATH, kwargs=(("XBLOCK", block),), num_warps=4, num_stages=1))
        w.add(_autotune(env, median))
        w.add(_gemm(env, gemm))
        w.annotate("io.atpack.created", created)
    return path


@pytest.fixture
def ranks(tmp_path: Path) -> list[Path]:
    return [
        rank_pack(
            tmp_path / "rank0.atpack", block=64, median=0.5, gemm={"a": 1.0, "b": 2.0}, created="2026-11-01T00:00:00Z"
        ),
        rank_pack(
            tmp_path / "rank1.atpack", block=128, median=0.3, gemm={"a": 0.9, "c": 3.0}, created="2026-11-02T00:00:00Z"
        ),
        rank_pack(tmp_path / "rank2.atpack", block=64, median=0.5, gemm={"b": 2.0}, created="2026-11-01T00:00:00Z"),
    ]


# --------------------------------------------------------------------------- merge and diff


def test_merging_rank_packs_gives_the_same_pack_in_any_order(ranks: list[Path], tmp_path: Path) -> None:
    outputs = []
    for i, order in enumerate([ranks, ranks[::-1], [ranks[1], ranks[0], ranks[2]]]):
        out = tmp_path / f"merged{i}.atpack"
        result = atpack_cli("merge", *map(str, order), "-o", str(out), "--policy", "fastest")
        assert result.returncode == 0, result.stderr
        outputs.append(out.read_bytes())
    assert outputs[0] == outputs[1] == outputs[2]
    assert "3 conflicts:" in result.stdout  # best_config, autotune, and one GEMM candidate timed twice


def test_fastest_keeps_the_fastest_measured_result_and_reports_each_conflict(ranks: list[Path], tmp_path: Path) -> None:
    report = merge(ranks, tmp_path / "m.atpack", policy="fastest")
    merged = {a.kind: a for a in atpack.open(tmp_path / "m.atpack").artifacts}
    assert merged["triton.autotune/1"].configs_timings[0].timings[0] == 0.3
    gemm = merged["inductor.gemm_timings/1"]
    assert {t.choice: t.ms for t in gemm.entries[0].timings} == {"a": 0.9, "b": 2.0, "c": 3.0}
    # a .best_config records no kernel time: the newest pack's answer is kept, and the report says so
    assert dict(merged["inductor.best_config/1"].kwargs) == {"XBLOCK": 128}
    reasons = {c.kind: c.reason for c in report.conflicts}
    assert reasons["triton.autotune/1"] == "kept the fastest (0.3 ms)"
    assert "newest" in reasons["inductor.best_config/1"] and "no time recorded" in reasons["inductor.best_config/1"]


def test_newest_keeps_the_latest_packs_answers(ranks: list[Path], tmp_path: Path) -> None:
    merge(ranks, tmp_path / "m.atpack", policy="newest")
    merged = {a.kind: a for a in atpack.open(tmp_path / "m.atpack").artifacts}
    assert dict(merged["inductor.best_config/1"].kwargs) == {"XBLOCK": 128}
    assert merged["triton.autotune/1"].configs_timings[0].timings[0] == 0.3


def test_fail_lists_every_conflict_and_writes_nothing(ranks: list[Path], tmp_path: Path) -> None:
    with pytest.raises(MergeConflictError) as error:
        merge(ranks, tmp_path / "m.atpack", policy="fail")
    assert {c.kind for c in error.value.conflicts} == {
        "inductor.best_config/1",
        "triton.autotune/1",
        "inductor.gemm_timings/1",
    }
    assert not (tmp_path / "m.atpack").exists()
    result = atpack_cli("merge", *map(str, ranks), "-o", str(tmp_path / "m.atpack"))
    assert result.returncode == 1 and "3 conflicts" in result.stderr and not (tmp_path / "m.atpack").exists()


def test_diff_shows_added_removed_and_changed_with_timing_deltas(ranks: list[Path]) -> None:
    result = atpack_cli("diff", str(ranks[0]), str(ranks[1]))
    assert result.returncode == 0, result.stderr
    assert "XBLOCK=64 warps=4 stages=1 -> XBLOCK=128 warps=4 stages=1" in result.stdout
    assert "0.5 ms -> 0.3 ms (-40.0%)" in result.stdout
    assert "1 timings added, 1 removed, 1 changed" in result.stdout
    changes = json.loads(atpack_cli("diff", "--json", str(ranks[0]), str(ranks[2])).stdout)
    assert {(c["change"], c["kind"]) for c in changes} == {
        ("changed", "inductor.gemm_timings/1"),
    }


# --------------------------------------------------------------------------- stores


def test_push_pull_and_tags_on_a_local_store(ranks: list[Path], tmp_path: Path) -> None:
    store, local = str(tmp_path / "store"), str(tmp_path / "node-cache")
    pushed = atpack_cli("push", str(ranks[0]), store, "-t", "llama-h100")
    assert pushed.returncode == 0 and "tagged llama-h100" in pushed.stdout
    listing = atpack_cli("tag", store).stdout
    assert listing.startswith("llama-h100\tsha256:")
    pulled = atpack_cli("pull", store, "llama-h100", "-o", str(tmp_path / "p.atpack"), "--local", local)
    assert pulled.returncode == 0, pulled.stderr
    assert atpack.open(tmp_path / "p.atpack").digest == atpack.open(ranks[0]).digest
    # retag to another pack; a reader of the tag sees one or the other, whole
    atpack_cli("push", str(ranks[1]), store)
    digest1 = atpack.open(ranks[1]).digest
    assert atpack_cli("tag", store, "llama-h100", digest1).returncode == 0
    atpack_cli("pull", store, "llama-h100", "-o", str(tmp_path / "q.atpack"), "--local", local)
    assert atpack.open(tmp_path / "q.atpack").digest == digest1
    missing = atpack_cli("pull", store, "no-such-tag", "--local", local)
    assert missing.returncode == 1 and "no tag 'no-such-tag'" in missing.stderr


def test_pulling_a_tag_from_s3_fetches_only_what_the_node_lacks(s3: Any, h100_sample: Any, tmp_path: Path) -> None:
    from atpack.store import Store

    pack = h100_sample.pack(tmp_path / "sample.atpack")
    remote = Store(s3.url("store"), storage_options=s3.storage_options)
    first = remote.push(pack, tags=["mlp"])
    assert first.blobs_sent == first.blobs > 150  # the sample: each kernel's metadata and binary, and more
    again = remote.push(pack)
    assert again.blobs_sent == 0  # the store has every blob already
    local = Store(tmp_path / "node")
    s3.reset_counters()
    cold = remote.pull("mlp", tmp_path / "a.atpack", local=local)
    cold_bytes = s3.bytes_sent
    s3.reset_counters()
    warm = remote.pull("mlp", tmp_path / "b.atpack", local=local)
    print(f"first pull: {cold_bytes:,} bytes from the server, second: {s3.bytes_sent:,}")
    assert cold.blobs_fetched == cold.blobs and warm.blobs_fetched == 0
    assert s3.bytes_sent * 20 < cold_bytes  # the tag and the pack record; no blob
    assert (tmp_path / "a.atpack").read_bytes() == (tmp_path / "b.atpack").read_bytes()
    assert atpack.open(tmp_path / "b.atpack").digest == first.digest


# --------------------------------------------------------------------------- beside a checkpoint


def test_packs_beside_a_checkpoint_are_found_listed_and_loaded(ranks: list[Path], tmp_path: Path) -> None:
    model = tmp_path / "my-model"
    (model / "atpack").mkdir(parents=True)
    (model / "model.safetensors").write_bytes(b"weights")
    shutil.copy(ranks[0], model / "atpack" / "h100.atpack")
    a100 = msgspec.structs.replace(ENV, device_name="NVIDIA A100-SXM4-80GB")
    with atpack.create(model / "atpack" / "a100.atpack") as w:
        w.add(
            InductorBestConfig(
                env=w.add_environment(a100), path=PATH, kwargs=(("XBLOCK", 32),), num_warps=2, num_stages=1
            )
        )
    listing = atpack_cli("inspect", str(model))
    assert listing.returncode == 0, listing.stderr
    assert "NVIDIA A100-SXM4-80GB" in listing.stdout and "NVIDIA H100 80GB HBM3" in listing.stdout
    dirs = ["--inductor-dir", str(tmp_path / "i"), "--triton-dir", str(tmp_path / "t")]
    populated = atpack_cli("populate", str(model), *dirs)
    assert populated.returncode == 0 and "4 skipped" in populated.stdout  # this CPU machine is neither
    report = populate(str(model), inductor_dir=str(tmp_path / "i"), triton_dir=str(tmp_path / "t"))
    details = " | ".join(o.detail for o in report.outcomes)
    assert "device_name: recorded 'NVIDIA A100-SXM4-80GB', found none" in details
    assert "device_name: recorded 'NVIDIA H100 80GB HBM3', found none" in details


def test_a_folder_without_packs_is_a_clear_error(tmp_path: Path) -> None:
    result = atpack_cli("populate", str(tmp_path))
    assert result.returncode == 1 and "a folder with no pack" in result.stderr


# --------------------------------------------------------------------------- the report


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    pytest.fail("a headless browser is needed: apt-get install chromium (.ci/run does)")


CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
]


def test_the_report_reads_without_javascript_with_numbers_tooltips_and_whole_inputs(
    h100_sample: Any, tmp_path: Path
) -> None:
    pack = h100_sample.pack(tmp_path / "sample.atpack")
    page = tmp_path / "report.html"
    assert atpack_cli("report", str(pack), "-o", str(page)).returncode == 0
    html = page.read_text()
    # no script runs: the only <script> element is the data block, which a browser does not execute,
    # so the page the browser shows is the page as written (headless Chromium cannot dump a page
    # with scripts off: its --dump-dom runs a script)
    assert re.findall(r"<script[^>]*>", html) == ['<script id="data" type="application/json">']
    assert not re.search(r"\bon[a-z]+=", html)  # nor any event handler
    flags = [*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run(
        [_chromium(), *flags, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120
    ).stdout
    assert "GEMM autotuning" in dom and "Triton autotune results" in dom and "scale_add" in dom
    assert "Not signed" in dom
    with atpack.open(pack) as opened:
        gemm = next(a for a in opened.artifacts if isinstance(a, InductorGemmTimings))
    for entry in gemm.entries:
        assert len(entry.inputs) > 80
        for tensor in entry.inputs[2:-2].split("), ("):  # each input of the GEMM, whole
            assert f"<span>({tensor})</span>" in dom
        chosen, ms = min(((t.choice, t.ms) for t in entry.timings if t.ms is not None), key=lambda t: t[1])
        assert f"<title>{chosen}: {ms:.3g} ms (1.00x the fastest)</title>" in dom  # the tooltip of the chosen point
        assert f"chosen <b>{ms:.3g} ms</b> · {len(entry.timings)} candidates" in dom  # its numbers, beside the chart
    ticks = re.findall(r'<text x="[0-9.]+" y="42">([0-9.e-]+)</text>', dom)
    assert len(ticks) >= 10 and all(float(t) > 0 for t in ticks)  # labelled axes under every chart
    shot = tmp_path / "report.png"
    subprocess.run(
        [_chromium(), *flags, "--window-size=1280,2000", f"--screenshot={shot}", page.as_uri()],
        capture_output=True,
        timeout=120,
    )
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 50_000


def test_the_report_shows_who_signed_the_pack_and_whether_it_verifies(tmp_path: Path) -> None:
    pack = tmp_path / "p.atpack"
    shutil.copy(REPO / "spec" / "vectors" / "h100-subset.atpack", pack)
    for name in ("release", "other"):
        assert atpack_cli("keygen", name, cwd=tmp_path).returncode == 0
    signed = atpack_cli("sign", str(pack), "--key", str(tmp_path / "release.key"))
    kid = signed.stdout.split()[-1]

    def report(*keys: str) -> str:
        page = tmp_path / "r.html"
        result = atpack_cli("report", str(pack), "-o", str(page), *[a for k in keys for a in ("--key", k)])
        assert result.returncode == 0, result.stderr
        return page.read_text()

    assert f"signed by key <code>{kid}</code>: not verified: no key given" in report()
    assert f"<code>{kid}</code>: verified with release.pub" in report(str(tmp_path / "release.pub"))
    assert f"<code>{kid}</code>: not verified: not one of the keys given" in report(str(tmp_path / "other.pub"))
    # the signature copied onto other content: the report says it does not verify
    with atpack.open(pack) as source:
        signature = {k: v for k, v in source.manifest.annotations.items() if k.startswith("io.atpack.signature.")}
        with atpack.create(tmp_path / "forged.atpack") as writer:
            writer.copy_from(source, source.artifacts[1:])
            for k, v in signature.items():
                writer.annotate(k, v)
    pack = tmp_path / "forged.atpack"
    assert f"<code>{kid}</code>: does NOT verify" in report(str(tmp_path / "release.pub"))
