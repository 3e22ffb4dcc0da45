"""A new kind is one struct and one `Kind`, registered: nothing else in atpack changes.

The stand-in is ``triton.autotune/2``, as a future Triton that writes ``<key>/<fn>.autotune2.json``
(the chosen config and its time, and the Triton version that measured it) would need. It is
defined here, in one place (`V2`, `_V2`, `_collect_v2`), and pack, collect, populate, merge,
diff, inspect and report handle it through `atpack.kinds` alone.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import msgspec
import pytest

import atpack
import atpack.adapters
from atpack import kinds
from atpack.artifacts import Artifact, Environment, Params, UnknownArtifact
from atpack.cli import main
from atpack.collect import pack_caches
from atpack.env import LocalEnvironment
from atpack.errors import EnvironmentMismatchError
from atpack.files import CacheDir, FileWrite
from atpack.kinds import Collected, Kind, Shown, Skipped, Source
from atpack.merging import diff, merge
from atpack.populate import populate
from atpack.report import write_report

# --------------------------------------------------------------------------- the new kind, in one place

_SUFFIX = ".autotune2.json"


class V2(Artifact, tag="triton.autotune/2", frozen=True):
    """A Triton autotune result, format 2: the chosen config's kwargs and its time."""

    cache_key: str
    fn_name: str
    best: Params
    ms: float
    triton_version: str

    depends_on: ClassVar[tuple[str, ...]] = ("triton_version",)

    @property
    def key(self) -> str:
        return f"{self.cache_key}/{self.fn_name}"

    def summary(self) -> str:
        return f"{self.fn_name} best {dict(self.best)} in {self.ms} ms"


def _render(a: V2) -> bytes:
    return json.dumps({"best": dict(a.best), "ms": a.ms, "triton_version": a.triton_version}).encode()


def _collect_v2(source: Source) -> Iterator[Collected]:
    for key in sorted(os.listdir(source.root)):
        folder = os.path.join(source.root, key)
        if not os.path.isdir(folder) or (source.include is not None and not source.include(key)):
            continue
        for name in sorted(n for n in os.listdir(folder) if n.endswith(_SUFFIX)):
            with open(os.path.join(folder, name), "rb") as f:
                data = json.loads(f.read())
            data["best"] = list(data["best"].items())
            try:
                yield msgspec.convert(
                    {"env": source.env, "cache_key": key, "fn_name": name[: -len(_SUFFIX)], **data}, V2
                )
            except msgspec.ValidationError as e:
                yield Skipped(os.path.join(folder, name), str(e))


class _V2(Kind[V2]):
    artifact = V2
    folder = "triton"

    def files(self, artifact: V2, root: CacheDir) -> list[FileWrite]:
        return [FileWrite(root.path(f"{artifact.cache_key}/{artifact.fn_name}{_SUFFIX}"), data=_render(artifact))]

    def time(self, artifact: V2) -> float | None:
        return artifact.ms

    def says(self, artifact: V2, small_files: Any) -> dict[str, str]:
        return {"triton_version": artifact.triton_version}

    def show(self, artifact: V2, shown: Shown) -> None:
        best = " ".join(f"{k}={v}" for k, v in artifact.best)
        shown.autotunes.append({"fn": artifact.fn_name, "key": [], "times": [(best, artifact.ms)], "best": best})


# --------------------------------------------------------------------------- the tests

KEY = "k" * 20
HERE = LocalEnvironment().get("triton_version") or "3.0.0"


@pytest.fixture
def registered(monkeypatch: pytest.MonkeyPatch) -> None:
    """The stand-in kind registered for one test (the registry is the process's)."""
    monkeypatch.setattr(kinds, "_TYPES", dict(kinds._TYPES))
    monkeypatch.setattr(kinds, "_KINDS", dict(kinds._KINDS))
    kinds.register(_V2(_collect_v2))


def _triton_cache(root: Path, fn: str, ms: float, version: str = HERE) -> Path:
    (root / KEY).mkdir(parents=True, exist_ok=True)
    body = {"best": {"BLOCK": 64}, "ms": ms, "triton_version": version}
    (root / KEY / f"{fn}{_SUFFIX}").write_text(json.dumps(body))
    return root


def _collected(tmp_path: Path, name: str, ms: float, *, created: str = "2025-01-01T00:00:00Z") -> Path:
    empty = tmp_path / "inductor"
    empty.mkdir(exist_ok=True)
    url = tmp_path / f"{name}.atpack"
    report = pack_caches(
        url,
        inductor_dir=str(empty),
        triton_dir=str(_triton_cache(tmp_path / f"{name}-triton", "matmul", ms)),
        environment=Environment(triton_version=HERE),
        annotations={"io.atpack.created": created},
    )
    assert dict(report.kinds) == {"triton.autotune/2": 1}
    return url


@pytest.mark.usefixtures("registered")
def test_a_new_kind_is_collected_packed_and_populated_into_every_triton_folder(tmp_path: Path) -> None:
    url = _collected(tmp_path, "one", 0.5)
    with atpack.open(url) as pack:
        pack.verify()
        (artifact,) = pack.artifacts
        assert isinstance(artifact, V2) and artifact.ms == 0.5 and artifact.key == f"{KEY}/matmul"

    folders = [tmp_path / "out" / "triton-a", tmp_path / "out" / "triton-b"]
    for folder in folders:
        report = populate(url, inductor_dir=str(tmp_path / "out" / "inductor"), triton_dir=str(folder))
        assert [(o.kind, o.action) for o in report.outcomes] == [("triton.autotune/2", "written")]
        assert json.loads((folder / KEY / f"matmul{_SUFFIX}").read_text())["ms"] == 0.5
    again = populate(url, inductor_dir=str(tmp_path / "out" / "inductor"), triton_dir=str(folders[0]))
    assert [o.action for o in again.outcomes] == ["present"]


@pytest.mark.usefixtures("registered")
def test_a_new_kind_is_checked_against_the_environment_it_names(tmp_path: Path) -> None:
    with atpack.create(tmp_path / "elsewhere.atpack") as writer:
        env = writer.add_environment(Environment(triton_version="0.0.1"))
        writer.add(V2(env=env, cache_key=KEY, fn_name="matmul", best=(("BLOCK", 64),), ms=0.5, triton_version="0.0.1"))
    report = populate(tmp_path / "elsewhere.atpack", inductor_dir=str(tmp_path / "i"), triton_dir=str(tmp_path / "t"))
    assert [o.action for o in report.outcomes] == ["skipped"] and "triton_version" in report.outcomes[0].detail
    assert not (tmp_path / "t" / KEY).exists()

    # what the artifact says of the machine that made it is checked when collecting
    source = _triton_cache(tmp_path / "copied", "matmul", 0.5, version="0.0.1")
    with pytest.raises(EnvironmentMismatchError, match=r"triton\.autotune/2 say triton_version '0\.0\.1'"):
        pack_caches(
            tmp_path / "x.atpack",
            triton_dir=str(source),
            sources=["triton"],
            environment=Environment(triton_version=HERE),
        )


@pytest.mark.usefixtures("registered")
def test_a_new_kind_merges_by_its_time_and_diffs_by_it(tmp_path: Path) -> None:
    slow = _collected(tmp_path, "slow", 0.5, created="2025-02-01T00:00:00Z")
    fast = _collected(tmp_path, "fast", 0.25)
    report = merge([slow, fast], tmp_path / "merged.atpack", policy="fastest")
    assert [c.reason for c in report.conflicts] == ["kept the fastest (0.25 ms)"]
    with atpack.open(tmp_path / "merged.atpack") as pack:
        assert [a.ms for a in pack.artifacts if isinstance(a, V2)] == [0.25]
    (change,) = diff(slow, fast)
    assert (change.change, change.kind, change.detail) == ("changed", "triton.autotune/2", "0.5 ms -> 0.25 ms (-50.0%)")


@pytest.mark.usefixtures("registered")
def test_a_new_kind_is_shown_by_inspect_and_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = _collected(tmp_path, "one", 0.5)
    assert main(["inspect", "-v", str(url)]) == 0
    out = capsys.readouterr().out
    assert "     1  triton.autotune/2" in out and "matmul best {'BLOCK': 64} in 0.5 ms" in out
    write_report(url, tmp_path / "report.html")
    page = (tmp_path / "report.html").read_text()
    assert "Triton autotune results" in page and "<code>matmul</code>" in page and "BLOCK=64" in page


def test_a_reader_that_does_not_know_the_kind_keeps_it_and_skips_it(tmp_path: Path) -> None:
    with pytest.MonkeyPatch.context() as m:
        m.setattr(kinds, "_TYPES", dict(kinds._TYPES))
        m.setattr(kinds, "_KINDS", dict(kinds._KINDS))
        kinds.register(_V2(_collect_v2))
        url = _collected(tmp_path, "one", 0.5)
    assert not kinds.known("triton.autotune/2")
    with atpack.open(url) as pack, atpack.create(tmp_path / "copy.atpack") as writer:
        (artifact,) = pack.artifacts
        assert isinstance(artifact, UnknownArtifact) and artifact.kind == "triton.autotune/2"
        writer.copy_from(pack, pack.artifacts)
        for key, value in pack.manifest.annotations.items():
            writer.annotate(key, value)
        digest = pack.digest
    with atpack.open(tmp_path / "copy.atpack") as copy:
        assert copy.digest == digest
    report = populate(url, inductor_dir=str(tmp_path / "i"), triton_dir=str(tmp_path / "t"))
    assert [(o.kind, o.action) for o in report.outcomes] == [("triton.autotune/2", "skipped")]


def test_a_kind_is_an_artifact_whose_tag_names_its_version() -> None:
    class Untagged(Artifact, frozen=True):  # msgspec tags it with its class name
        x: int

    class _Untagged(Kind[Untagged]):
        artifact = Untagged

    with pytest.raises(TypeError, match="not an artifact kind"):
        kinds.register(_Untagged())
    assert not kinds.known("Untagged")
