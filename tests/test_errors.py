"""The error contract (`atpack.errors`) is what is raised: each error comes from the situation its
class names, is also the builtin it resembles where there is one, and says it in one line."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import atpack
from atpack import errors
from atpack.store import Store
from atpack.testing.packs import best_config, hex64, open_bytes

VECTOR = Path(__file__).resolve().parent.parent / "spec" / "vectors" / "minimal.atpack"


def _one_line(error: BaseException) -> str:
    text = str(error)
    assert text and "\n" not in text and not text.startswith("'")
    return text


def test_a_missing_pack_is_not_found_and_a_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(atpack.NotFoundError) as raised:
        atpack.open(tmp_path / "nowhere.atpack")
    assert isinstance(raised.value, FileNotFoundError) and isinstance(raised.value, atpack.StorageError)
    assert "nowhere.atpack" in _one_line(raised.value)


def test_a_folder_where_a_pack_belongs_is_an_is_a_directory_error(tmp_path: Path) -> None:
    with pytest.raises(atpack.IsAFolderError) as raised:
        atpack.open(tmp_path)
    assert isinstance(raised.value, IsADirectoryError)
    _one_line(raised.value)


def test_a_missing_tag_is_not_found(tmp_path: Path) -> None:
    store = Store(str(tmp_path / "store"))
    store.push(VECTOR)
    with pytest.raises(atpack.NotFoundError) as raised:
        store.pull("no-such-tag", str(tmp_path / "p.atpack"))
    assert isinstance(raised.value, FileNotFoundError) and "no-such-tag" in _one_line(raised.value)


def test_a_digest_the_pack_does_not_hold_is_a_key_error() -> None:
    with atpack.open(VECTOR) as pack, pytest.raises(atpack.BlobNotFoundError) as raised:
        pack.read_blob("sha256:" + hex64("absent"))
    assert isinstance(raised.value, KeyError)
    assert _one_line(raised.value).endswith(f"no blob sha256:{hex64('absent')}")


def test_a_signer_nobody_trusts_is_a_refused_permission_not_a_damaged_pack(tmp_path: Path) -> None:
    from atpack.signing import generate_key, sign, verify_signature

    generate_key(tmp_path / "a.key", tmp_path / "a.pub")
    generate_key(tmp_path / "b.key", tmp_path / "b.pub")
    signed = tmp_path / "signed.atpack"
    sign(VECTOR, tmp_path / "a.key", out=signed)
    with atpack.open(signed) as pack, pytest.raises(atpack.SignatureError) as raised:
        verify_signature(pack, [tmp_path / "b.pub"])
    assert isinstance(raised.value, PermissionError) and not isinstance(raised.value, atpack.FormatError)
    assert "none of them a trusted key" in _one_line(raised.value)


def test_damaged_bytes_are_an_integrity_error_and_a_format_error(tmp_path: Path) -> None:
    data = bytearray(VECTOR.read_bytes())
    data[20] ^= 0xFF  # inside the first frame
    with pytest.raises(atpack.IntegrityError) as raised:
        open_bytes(bytes(data)).verify()
    assert isinstance(raised.value, atpack.FormatError)
    _one_line(raised.value)


def test_a_declared_size_over_a_limit_is_a_limit_error() -> None:
    with pytest.raises(atpack.LimitError) as raised:
        open_bytes(VECTOR.read_bytes(), limits=atpack.Limits(max_artifacts=0))
    assert isinstance(raised.value, atpack.FormatError)
    _one_line(raised.value)


def test_a_value_atpack_does_not_understand_in_a_variable_is_a_setting_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from atpack import settings

    monkeypatch.setenv("ATPACK_REPLAY", "perhaps")
    with pytest.raises(atpack.SettingError) as raised:
        settings.replay()
    assert isinstance(raised.value, ValueError) and _one_line(raised.value).startswith("ATPACK_REPLAY='perhaps'")


def test_two_answers_to_one_question_under_the_fail_policy_are_a_merge_conflict(tmp_path: Path) -> None:
    env = atpack.Environment(torch_version="2.13.0")
    for name, warps in (("a", 4), ("b", 8)):
        with atpack.create(tmp_path / f"{name}.atpack") as w:
            w.add(best_config(w.add_environment(env), 0, num_warps=warps))
    with pytest.raises(atpack.MergeConflictError) as raised:
        atpack.merge([tmp_path / "a.atpack", tmp_path / "b.atpack"], tmp_path / "m.atpack", policy="fail")
    assert len(raised.value.conflicts) == 1 and "1 conflicts" in _one_line(raised.value)
    assert not (tmp_path / "m.atpack").exists()


def test_a_cache_file_that_is_not_what_its_name_says_is_a_cache_file_error(tmp_path: Path) -> None:
    from atpack.adapters import inductor

    with pytest.raises(atpack.CacheFileError) as raised:
        inductor.parse_best_config("ab/x.best_config", b"not json", "sha256:" + hex64("env"))
    _one_line(raised.value)


def test_content_that_would_escape_its_folder_is_unsafe(tmp_path: Path) -> None:
    from atpack.files import CacheDir

    with CacheDir(str(tmp_path)) as root, pytest.raises(atpack.UnsafeContentError) as raised:
        root.path("../outside")
    _one_line(raised.value)


def test_every_error_class_is_exported_and_documented() -> None:
    for name in errors.__all__:
        value = getattr(errors, name)
        if isinstance(value, type):
            assert getattr(atpack, name) is value and value.__doc__
    assert os.path.basename(errors.__file__) == "errors.py"
