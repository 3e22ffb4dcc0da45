"""What a user installs: the license, one version, the metadata, and an API whose errors are one
module's classes, each also the builtin that says the same thing."""

from __future__ import annotations

import errno
import importlib.metadata
import json
import subprocess
import sys
from pathlib import Path

import pytest

import atpack
from atpack import errors

tomllib = pytest.importorskip("tomllib" if sys.version_info >= (3, 11) else "tomli")
REPO = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())


def test_the_license_file_is_the_apache_2_license_the_metadata_declares() -> None:
    text = (REPO / "LICENSE").read_text()
    assert text.lstrip().startswith("Apache License\n                           Version 2.0, January 2004")
    assert "END OF TERMS AND CONDITIONS" in text and len(text) == 11358  # the full text, as apache.org has it
    meta = importlib.metadata.metadata("atpack")
    assert meta["License-Expression"] == "Apache-2.0" and PYPROJECT["project"]["license"] == "Apache-2.0"


def test_the_version_is_written_once() -> None:
    assert "version" not in PYPROJECT["project"] and PYPROJECT["project"]["dynamic"] == ["version"]
    assert PYPROJECT["tool"]["hatch"]["version"]["path"] == "atpack/__init__.py"
    assert importlib.metadata.version("atpack") == atpack.__version__


def test_the_metadata_names_the_platforms_pythons_and_typing() -> None:
    classifiers = set(importlib.metadata.metadata("atpack").get_all("Classifier") or [])
    for wanted in (
        "Typing :: Typed",
        "Operating System :: POSIX :: Linux",
        "Operating System :: MacOS",
        "Programming Language :: Python :: 3.10",
        "Programming Language :: Python :: 3.13",
    ):
        assert wanted in classifiers
    assert (REPO / "atpack" / "py.typed").exists()


def test_test_tools_are_a_dependency_group_not_an_extra() -> None:
    extras = set(importlib.metadata.metadata("atpack").get_all("Provides-Extra") or [])
    assert extras == {"all", "gcs", "s3", "sign", "torch"}
    group = " ".join(PYPROJECT["dependency-groups"]["test"])
    assert all(tool in group for tool in ("pytest", "moto", "mypy", "ruff", "hypothesis"))


def test_no_extra_installs_triton_which_torch_brings_where_it_runs_it() -> None:
    """A CPU build of torch never runs Triton (286 MB); the GPU builds require their own Triton.
    The test tools install it, for Triton's read paths on the CPU."""
    extras = PYPROJECT["project"]["optional-dependencies"]
    assert not [r for requirements in extras.values() for r in requirements if r.startswith("triton")]
    assert any(r.startswith("triton") for r in PYPROJECT["dependency-groups"]["test"])


def test_the_torch_extra_brings_numpy_so_torch_does_not_warn_at_import() -> None:
    assert any(r.startswith("numpy") for r in PYPROJECT["project"]["optional-dependencies"]["torch"])
    imported = subprocess.run([sys.executable, "-c", "import torch"], capture_output=True, text=True, timeout=300)
    assert imported.returncode == 0 and "Failed to initialize NumPy" not in imported.stderr


FIND_ERROR_CLASSES = """
import importlib, json, pkgutil, atpack
for module in pkgutil.walk_packages(atpack.__path__, "atpack."):
    if module.name != "atpack.__main__":
        importlib.import_module(module.name)
found, todo = [], [atpack.AtpackError]
while todo:
    cls = todo.pop()
    found.append([cls.__module__, cls.__name__, getattr(atpack, cls.__name__, None) is cls])
    todo += cls.__subclasses__()
print(json.dumps(found))
"""


def test_every_error_class_lives_in_errors_and_is_exported() -> None:
    # every module imported in a process of its own: this one's imports stay as the other tests expect
    found = json.loads(
        subprocess.run(
            [sys.executable, "-c", FIND_ERROR_CLASSES], capture_output=True, text=True, check=True, timeout=300
        ).stdout
    )
    public = [(module, name, exported) for module, name, exported in found if not name.startswith("_")]
    assert len(public) >= 11
    assert {module for module, _, _ in public} == {"atpack.errors"}
    assert all(exported and name in atpack.__all__ and name in errors.__all__ for _, name, exported in public)
    # where they were first defined, they still import
    from atpack.merging import MergeConflictError
    from atpack.signing import SignatureError

    assert MergeConflictError is atpack.MergeConflictError and SignatureError is atpack.SignatureError


@pytest.mark.parametrize(
    ("error", "builtin", "code"),
    [(atpack.NotFoundError, FileNotFoundError, errno.ENOENT), (atpack.IsAFolderError, IsADirectoryError, errno.EISDIR)],
)
def test_errors_are_the_builtins_that_say_the_same(error: type[OSError], builtin: type[OSError], code: int) -> None:
    raised = error("/models/x.atpack: what happened")
    assert isinstance(raised, builtin) and isinstance(raised, atpack.StorageError) and raised.errno == code
    assert str(raised) == "/models/x.atpack: what happened"  # one line, no "[Errno 2]" in front
