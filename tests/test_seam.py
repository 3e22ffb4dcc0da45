"""The seam with torch and Triton (`atpack.seam`): every internal it claims for the installed
releases is there; where one is missing or renamed, torch runs as if atpack were absent, with one
log line; every patch can be taken back, leaving torch's own functions, the very objects; and a
broken atpack never breaks ``import torch``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest

import atpack
from atpack import seam

HEURISTICS = "torch._inductor.runtime.triton_heuristics"


def _run(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`code` in a process of its own on a fresh machine: a HOME and a temp folder of its own
    (torch's default folders inside), so that no marker of the developer's own folders counts."""
    cache_vars = ("TORCHINDUCTOR_CACHE_DIR", "TRITON_CACHE_DIR")
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ATPACK_") and k not in cache_vars}
    with tempfile.TemporaryDirectory() as machine:
        home, tmp = os.path.join(machine, "home"), os.path.join(machine, "tmp")
        os.mkdir(home)
        os.mkdir(tmp)
        return subprocess.run(
            [sys.executable, "-c", textwrap.dedent(code)],
            env={**clean, "HOME": home, "TMPDIR": tmp, **env},
            capture_output=True,
            text=True,
            timeout=300,
        )


def _said(result: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("atpack")]


@pytest.mark.parametrize("internal", seam.INTERNALS, ids=lambda i: i.name)
def test_each_internal_claimed_for_the_installed_releases_is_as_described(internal: seam.Internal) -> None:
    if not internal.applies():
        claimed = "{}.{} to {}.{}".format(*internal.since, *internal.until)
        pytest.skip(f"claimed for {internal.package} {claimed}, not the installed release")
    if internal.use == "format":
        assert (Path(__file__).parent.parent / internal.checked_by).is_file(), internal.checked_by
        return  # held to the real reader by that test, which the matrix runs too
    assert seam._resolve_problem(internal.name) == ""


def test_the_installed_releases_are_claimed_by_every_kind_of_use() -> None:
    checked = seam.check_internals()
    assert [(i.name, why) for i, why in checked if why] == []
    assert {i.use for i, _ in checked} >= {"patched", "called", "read", "written"}


def test_an_internal_that_is_gone_is_named() -> None:
    assert seam._resolve_problem(f"{HEURISTICS}.CachingAutotuner.no_such_method") == (
        f"no no_such_method in {HEURISTICS}.CachingAutotuner"
    )
    assert seam._resolve_problem("torch._inductor.no_such_module.thing").startswith("no no_such_module")


# --------------------------------------------------------------------------- fail-safe


@pytest.mark.parametrize("internal", ["coordinate_descent_tuning", "autotune_to_one_config"])
def test_the_replay_stands_aside_where_an_internal_it_patches_is_gone(internal: str) -> None:
    result = _run(f"""
        import logging, json
        logging.basicConfig(format="%(name)s: %(message)s")
        from torch._inductor.runtime import triton_heuristics
        delattr(triton_heuristics.CachingAutotuner, {internal!r})
        from atpack import seam
        print(json.dumps([seam.install_replay(), seam.patched()]))
    """)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [False, []]
    assert len(_said(result)) == 1 and "is not the one atpack knows: the replay is off" in _said(result)[0]


@pytest.mark.parametrize(
    "module, owner, name",
    [
        ("torch._inductor.runtime.triton_heuristics", "", "check_autotune_cache"),
        ("torch._inductor.triton_bundler", "TritonBundler", "put_winner"),
        ("triton.runtime.autotuner", "Autotuner", "run"),
    ],
    ids=lambda v: v,
)
def test_every_other_patch_is_not_made_where_its_internal_is_gone_and_torch_runs_on(
    module: str, owner: str, name: str
) -> None:
    """The replay's third patch and the capture's others: with the internal removed, atpack patches
    nothing in its place, raises nothing, and leaves torch's and Triton's other functions to run."""
    result = _run(f"""
        import contextlib, importlib, json, logging
        logging.basicConfig(format="%(name)s: %(message)s")
        holder = importlib.import_module({module!r})
        holder = getattr(holder, {owner!r}) if {owner!r} else holder
        if {name!r} not in vars(holder):
            print(json.dumps("not in this release"))
            raise SystemExit
        delattr(holder, {name!r})
        from atpack import seam
        seam.install_replay()
        undo = contextlib.ExitStack()
        seam.watch_records(lambda path, found: None, undo)
        seam.watch_winners(lambda folder: None, undo)
        seam.watch_autotune_runs(lambda: None, undo)
        patched = seam.patched()
        seam.uninstall()
        undo.close()
        print(json.dumps([patched, {name!r} in vars(holder)]))
    """)
    assert result.returncode == 0, result.stderr
    if json.loads(result.stdout) == "not in this release":
        pytest.skip(f"{name} is not in this release (nothing to remove)")
    patched, back = json.loads(result.stdout)
    assert not [p for p in patched if p.endswith(f".{name}")] and not back  # nothing put in its place
    assert len(_said(result)) <= 1  # said once where atpack needed it, or nothing where torch never had it


def test_a_capture_whose_internals_are_gone_records_what_it_can_and_says_so_once(tmp_path: Path) -> None:
    result = _run(
        f"""
        import logging, json, sys
        logging.basicConfig(format="%(name)s: %(message)s")
        from torch._inductor.runtime import autotune_cache
        del autotune_cache.AutotuneCache.save
        import atpack
        with atpack.capture(inductor_dir={str(tmp_path / "i")!r}, triton_dir={str(tmp_path / "t")!r}) as cap:
            pass
        print(json.dumps(sys.modules["atpack.seam"].patched()))
    """
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []
    said = _said(result)
    assert len(said) == 1 and "could not hook torch._inductor.runtime.autotune_cache" in said[0]


def test_a_wrapper_that_meets_an_unknown_internal_gives_up_and_torchs_own_call_runs() -> None:
    """atpack's part of a capture's wrapper runs after torch's own call: an error there is logged
    once, and torch's result is returned as if atpack were absent."""
    result = _run("""
        import logging, json, contextlib
        logging.basicConfig(format="%(name)s: %(message)s")
        from torch._inductor.runtime import autotune_cache
        from atpack import seam

        class Cache:
            local_cache = {"a layout": "atpack does not know"}  # not (folder, path): atpack's part fails

        class Config:
            kwargs, num_warps, num_stages, found_by_coordesc = {"XBLOCK": 8}, 4, 1, True

        saved = []
        autotune_cache.AutotuneCache.save = lambda self, *a, **k: saved.append(a) or "torch's result"
        with contextlib.ExitStack() as undo:
            seam.watch_records(lambda path, found: None, undo)
            first = autotune_cache.AutotuneCache.save(Cache(), Config(), 1, True)
            second = autotune_cache.AutotuneCache.save(Cache(), Config(), 1, True)
        print(json.dumps([first, second, len(saved)]))
    """)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == ["torch's result", "torch's result", 2]
    said = _said(result)
    assert len(said) == 1 and said[0].startswith(
        "atpack.seam: atpack: the capture met a torch internal it does not know"
    )


# --------------------------------------------------------------------------- reversible


def test_uninstall_puts_back_torchs_own_functions() -> None:
    result = _run("""
        import json, contextlib
        from torch._inductor.runtime import autotune_cache, triton_heuristics
        from torch._inductor import triton_bundler
        from triton.runtime import autotuner
        import triton
        listens = hasattr(getattr(getattr(triton, "knobs", None), "autotuning", None), "listener")
        owners = [
            (triton_heuristics.CachingAutotuner, "coordinate_descent_tuning"),
            (triton_heuristics.CachingAutotuner, "autotune_to_one_config"),
            (triton_heuristics, "check_autotune_cache"),
            (autotune_cache.AutotuneCache, "save"),
            (autotuner.Autotuner, "run") if not listens
            else (triton.knobs.autotuning, "listener"),  # 3.8+: Triton's own listener, not a patch
        ]
        if "put_winner" in vars(triton_bundler.TritonBundler):  # torch 2.12+
            owners.append((triton_bundler.TritonBundler, "put_winner"))

        def current(owner, name):  # a class's or module's own entry; else what the object holds
            return vars(owner)[name] if isinstance(owner, (type, type(json))) else getattr(owner, name)

        before = [current(owner, name) for owner, name in owners]
        from atpack import seam
        assert seam.install_replay()
        undo = contextlib.ExitStack()
        seam.watch_records(lambda path, found: None, undo)
        seam.watch_winners(lambda folder: None, undo)
        seam.watch_autotune_runs(lambda: None, undo)
        during = [current(owner, name) is was for (owner, name), was in zip(owners, before)]
        patched = seam.patched()
        seam.uninstall()
        undo.close()
        after = [current(owner, name) is was for (owner, name), was in zip(owners, before)]
        print(json.dumps([during, len(patched), after, seam.patched(), listens]))
    """)
    assert result.returncode == 0, result.stderr
    during, patched, after, left, listens = json.loads(result.stdout)
    assert during == [False] * len(during) and len(during) in (5, 6)  # put_winner: torch 2.12+
    assert patched == len(during) - listens  # Triton 3.8+: its own listener, no patch
    assert after == [True] * len(during) and left == []


def test_torchs_functions_pickle_as_torchs_own_while_patched() -> None:
    """Inductor's compile workers pickle autotuners that hold ``AutotuneCache.save`` bound; pickle
    names a function, and a bound method, by its name, which a patched function keeps."""
    result = _run("""
        import contextlib, pickle
        from torch._inductor.runtime import autotune_cache, triton_heuristics
        from atpack import seam
        assert seam.install_replay()
        undo = contextlib.ExitStack()
        seam.watch_records(lambda path, found: None, undo)
        cache = object.__new__(autotune_cache.AutotuneCache)
        again = pickle.loads(pickle.dumps(cache.save))
        assert again.__func__ is autotune_cache.AutotuneCache.save, again
        for function in (
            autotune_cache.AutotuneCache.save,
            triton_heuristics.CachingAutotuner.coordinate_descent_tuning,
            triton_heuristics.CachingAutotuner.autotune_to_one_config,
            triton_heuristics.check_autotune_cache,
        ):
            assert pickle.loads(pickle.dumps(function)) is function, function
        print(len(seam.patched()))
    """)
    assert result.returncode == 0, result.stderr
    assert int(result.stdout) >= 4


# --------------------------------------------------------------------------- switches


def test_atpack_replay_0_keeps_the_api_from_installing_the_replay(tmp_path: Path) -> None:
    pack = tmp_path / "empty.atpack"
    with atpack.create(pack):
        pass
    code = f"""
        import json, atpack
        folders = dict(inductor_dir={str(tmp_path / "i")!r}, triton_dir={str(tmp_path / "t")!r})
        atpack.load_cache_artifacts({str(pack)!r}, **folders)
        import torch._inductor.runtime.triton_heuristics
        print(json.dumps(__import__("atpack.seam").seam.patched()))
    """
    assert json.loads(_run(code).stdout) != []
    assert json.loads(_run(code, ATPACK_REPLAY="0").stdout) == []


def test_a_process_nothing_asked_to_replay_gets_no_import_hook(tmp_path: Path) -> None:
    result = _run(
        """
        import json, sys
        import torch
        print(json.dumps([type(f).__name__ for f in sys.meta_path if "atpack" in type(f).__module__]))
        """,
        HOME=str(tmp_path),
        TMPDIR=str(tmp_path),
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []


# --------------------------------------------------------------------------- import torch never breaks


@pytest.mark.parametrize("broken", ["msgspec", "zstandard", "fsspec"])
def test_import_torch_works_where_a_dependency_of_atpack_is_broken(tmp_path: Path, broken: str) -> None:
    (tmp_path / f"{broken}.py").write_text("raise ImportError('broken on purpose')\n")
    inductor = tmp_path / "inductor"
    inductor.mkdir()
    (inductor / "atpack-replay.json").write_text("{}")  # the replay asked for: atpack's plug-in does work
    result = _run(
        """
        import torch
        import torch._inductor.runtime.triton_heuristics
        print("torch", torch.__version__)
        """,
        PYTHONPATH=os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]),
        TORCHINDUCTOR_CACHE_DIR=str(inductor),
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("torch ")
