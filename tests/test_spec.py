"""The spec stays true to the code: golden packs decode as recorded, the schema is current."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import atpack
from atpack.artifacts import UnknownArtifact, artifact_digest
from atpack.digest import canonical, digest_bytes

REPO = Path(__file__).resolve().parent.parent
VECTORS = sorted((REPO / "spec" / "vectors").glob("*.atpack"))


def test_there_are_vectors_for_every_kind() -> None:
    kinds = set()
    for path in VECTORS:
        kinds |= {a["kind"] for a in json.loads(path.with_suffix(".json").read_text())["artifacts"]}
    from atpack.artifacts import KNOWN_KINDS

    same_shape = {"megacache.aot_autograd/1", "megacache.pgo/1", "megacache.precompile/1", "megacache.other/1"}
    assert KNOWN_KINDS - same_shape <= kinds  # those share megacache.inductor/1's schema
    assert "example.future/1" in kinds


@pytest.mark.parametrize("path", VECTORS, ids=lambda p: p.stem)
def test_golden_pack_decodes_as_recorded(path: Path) -> None:
    want = json.loads(path.with_suffix(".json").read_text())
    with atpack.open(path) as pack:
        pack.verify()
        assert list(pack.format_version) == want["format"]
        assert pack.size == want["size"] == path.stat().st_size
        assert pack.digest == want["digest"]
        assert pack.manifest.annotations == want["annotations"]
        assert list(pack.manifest.digested_annotations) == want["digested_annotations"]
        assert {d: json.loads(canonical(e)) for d, e in pack.manifest.environments.items()} == want["environments"]
        got = [
            {
                "digest": artifact_digest(a),
                "kind": a.kind,
                "body": json.loads(a.raw if isinstance(a, UnknownArtifact) else canonical(a)),
            }
            for a in pack.artifacts
        ]
        assert got == want["artifacts"]
        blobs = {d: {"size": len(data), "sha256": digest_bytes(data)} for d, data in pack.read_blobs(want["blobs"])}
        assert blobs == want["blobs"]
        assert all(d == v["sha256"] for d, v in blobs.items())


@pytest.mark.parametrize("path", VECTORS, ids=lambda p: p.stem)
def test_golden_pack_rewritten_keeps_its_content_digest(path: Path, tmp_path: Path) -> None:
    with atpack.open(path) as pack, atpack.create(tmp_path / "copy.atpack") as writer:
        writer.copy_from(pack, pack.artifacts)
        for key, value in pack.manifest.annotations.items():
            writer.annotate(key, value, digested=key in pack.manifest.digested_annotations)
    with atpack.open(path) as pack, atpack.open(tmp_path / "copy.atpack") as copy:
        assert copy.digest == pack.digest
        assert [artifact_digest(a) for a in copy.artifacts] == [artifact_digest(a) for a in pack.artifacts]
        assert sorted(copy._blobs) == sorted(pack._blobs)


def test_json_schema_in_spec_is_current() -> None:
    result = subprocess.run(
        [sys.executable, str(REPO / "tools" / "gen_schema.py"), "--check"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
