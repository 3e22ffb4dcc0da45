"""Signed packs: a signature over the content digest, kept in the pack, checked against keys."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import msgspec
import pytest

import atpack
from atpack import populate as populate_module
from atpack.artifacts import InductorBestConfig
from atpack.populate import populate
from atpack.signing import SIGNATURE_PREFIX, SignatureError, generate_key, sign, verify_signature

REPO = Path(__file__).resolve().parent.parent
VECTOR = REPO / "spec" / "vectors" / "h100-subset.atpack"


@pytest.fixture
def keys(tmp_path: Path) -> dict[str, tuple[Path, Path]]:
    out = {}
    for name in ("alice", "mallory"):
        private, public = tmp_path / f"{name}.key", tmp_path / f"{name}.pub"
        generate_key(private, public)
        out[name] = (private, public)
    return out


def test_a_signed_pack_keeps_its_digest_and_verifies(keys: dict[str, tuple[Path, Path]], tmp_path: Path) -> None:
    signed = tmp_path / "signed.atpack"
    kid = sign(VECTOR, keys["alice"][0], out=signed)
    with atpack.open(VECTOR) as original, atpack.open(signed) as pack:
        assert pack.digest == original.digest
        assert SIGNATURE_PREFIX + kid in pack.manifest.annotations
        assert verify_signature(pack, [keys["mallory"][1], keys["alice"][1]]) == kid


def test_a_signature_by_an_untrusted_key_is_refused(keys: dict[str, tuple[Path, Path]], tmp_path: Path) -> None:
    signed = tmp_path / "signed.atpack"
    sign(VECTOR, keys["mallory"][0], out=signed)
    with atpack.open(signed) as pack, pytest.raises(SignatureError, match="none of them a trusted key"):
        verify_signature(pack, [keys["alice"][1]])
    with atpack.open(VECTOR) as pack, pytest.raises(SignatureError, match="not signed"):
        verify_signature(pack, [keys["alice"][1]])


def test_a_pack_altered_after_signing_is_refused(keys: dict[str, tuple[Path, Path]], tmp_path: Path) -> None:
    signed = tmp_path / "signed.atpack"
    sign(VECTOR, keys["alice"][0], out=signed)
    forged = tmp_path / "forged.atpack"
    with atpack.open(signed) as pack, atpack.create(forged) as writer:
        changed = [
            msgspec.structs.replace(a, num_warps=32) if isinstance(a, InductorBestConfig) else a for a in pack.artifacts
        ]
        writer.copy_from(pack, changed)
        for key, value in pack.manifest.annotations.items():
            writer.annotate(key, value)  # the signature, copied over
    with atpack.open(forged) as pack, pytest.raises(SignatureError, match="changed after signing"):
        verify_signature(pack, [keys["alice"][1]])


def test_the_command_line_signs_and_verifies(keys: dict[str, tuple[Path, Path]], tmp_path: Path) -> None:
    pack = tmp_path / "p.atpack"
    pack.write_bytes(VECTOR.read_bytes())

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "atpack", *args], capture_output=True, text=True, cwd=tmp_path)

    assert cli("sign", str(pack), "--key", str(keys["alice"][0])).returncode == 0
    ok = cli("verify", str(pack), "--key", str(keys["alice"][1]))
    assert ok.returncode == 0 and "signed by key" in ok.stdout
    refused = cli("verify", str(pack), "--key", str(keys["mallory"][1]))
    assert refused.returncode == 1 and "none of them a trusted key" in refused.stderr
    made = cli("keygen", "carol")
    assert made.returncode == 0 and (tmp_path / "carol.key").stat().st_mode & 0o777 == 0o600
    assert cli("keygen", "carol").returncode == 1  # an existing key is never overwritten


@pytest.mark.parametrize("planted", ["carol.pub", "carol.key"])
def test_keygen_writes_through_no_symlink_and_leaves_no_half_pair(tmp_path: Path, planted: str) -> None:
    """A link planted at either name (a shared folder, a checkout) would have the key written
    wherever it points: keygen refuses it in one line, and leaves neither file of the pair."""
    victim = tmp_path / "bashrc"
    victim.write_text("export PATH=/usr/bin\n")
    (tmp_path / planted).symlink_to(victim)
    result = subprocess.run(
        [sys.executable, "-m", "atpack", "keygen", "carol"], capture_output=True, text=True, cwd=tmp_path
    )
    assert result.returncode == 1 and f"{planted} exists" in result.stderr, result.stderr
    assert victim.read_text() == "export PATH=/usr/bin\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["bashrc", planted])


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def test_populate_with_trusted_keys_writes_only_a_pack_they_signed(
    keys: dict[str, tuple[Path, Path]], tmp_path: Path
) -> None:
    signed, foreign = tmp_path / "signed.atpack", tmp_path / "foreign.atpack"
    sign(VECTOR, keys["alice"][0], out=signed)
    sign(VECTOR, keys["mallory"][0], out=foreign)
    dirs = {"inductor_dir": str(tmp_path / "inductor"), "triton_dir": str(tmp_path / "triton")}
    trusted = [keys["alice"][1]]
    for refused in (VECTOR, foreign):
        with pytest.raises(SignatureError):
            populate(refused, ignore_environment=True, trusted_keys=trusted, **dirs)
        assert _files(tmp_path / "inductor") == _files(tmp_path / "triton") == []
    report = populate(signed, ignore_environment=True, trusted_keys=trusted, **dirs)
    assert report.signed_by and report.count("written") > 0
    assert f"trusted key {report.signed_by}" in report.format()


def test_a_model_folder_with_one_unsigned_pack_is_refused_whole(
    keys: dict[str, tuple[Path, Path]], tmp_path: Path
) -> None:
    model = tmp_path / "model"
    (model / "atpack").mkdir(parents=True)
    sign(VECTOR, keys["alice"][0], out=model / "atpack" / "a.atpack")
    (model / "atpack" / "b.atpack").write_bytes(VECTOR.read_bytes())  # sorted after the signed one
    dirs = {"inductor_dir": str(tmp_path / "inductor"), "triton_dir": str(tmp_path / "triton")}
    with pytest.raises(SignatureError, match=r"b\.atpack: not signed"):
        atpack.load_cache_artifacts(model, ignore_environment=True, trusted_keys=[keys["alice"][1]], **dirs)
    assert _files(tmp_path / "inductor") == _files(tmp_path / "triton") == []


def test_the_command_line_populates_only_with_a_trusted_signature(
    keys: dict[str, tuple[Path, Path]], tmp_path: Path
) -> None:
    def populate(pack: Path) -> subprocess.CompletedProcess[str]:
        args = ["populate", str(pack), "--ignore-environment", "--trusted-key", str(keys["alice"][1])]
        args += ["--inductor-dir", str(tmp_path / "inductor"), "--triton-dir", str(tmp_path / "triton")]
        return subprocess.run([sys.executable, "-m", "atpack", *args], capture_output=True, text=True)

    refused = populate(VECTOR)
    assert refused.returncode == 1 and "not signed" in refused.stderr and "Traceback" not in refused.stderr
    signed = tmp_path / "signed.atpack"
    sign(VECTOR, keys["alice"][0], out=signed)
    ok = populate(signed)
    assert ok.returncode == 0 and "signature verified" in ok.stdout


def test_a_pack_of_a_model_folder_swapped_after_its_check_is_not_what_is_written(
    keys: dict[str, tuple[Path, Path]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """All or none: the packs of a model folder are opened and checked before any is written, and
    held open until they are: one swapped for an unsigned pack after its check changes nothing."""
    model = tmp_path / "model" / "atpack"
    model.mkdir(parents=True)
    for name in ("a", "b"):
        sign(VECTOR, keys["alice"][0], out=model / f"{name}.atpack")
    unsigned = tmp_path / "unsigned.atpack"
    unsigned.write_bytes(VECTOR.read_bytes())
    checked, real_check = [], populate_module._check_signature

    def check_then_swap(pack: atpack.Pack, trusted: Any) -> str:
        kid = real_check(pack, trusted)
        checked.append(pack.name)
        if pack.name.endswith("b.atpack") and checked.count(pack.name) == 1:
            os.replace(unsigned, model / "b.atpack")  # another writer, right after b's check
        return kid

    monkeypatch.setattr(populate_module, "_check_signature", check_then_swap)
    dirs = {"inductor_dir": str(tmp_path / "inductor"), "triton_dir": str(tmp_path / "triton")}
    report = populate(model.parent, ignore_environment=True, trusted_keys=[keys["alice"][1]], **dirs)
    assert SIGNATURE_PREFIX.encode() not in (model / "b.atpack").read_bytes()  # the swap happened
    assert [n for n in checked if n.endswith("b.atpack")] == [checked[1]] * 2  # b checked again as written: signed
    assert report.count("written") > 0
