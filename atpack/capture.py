"""Recording what a block of code produced, in a live process:

    with atpack.capture() as cap:
        model = torch.compile(model, mode="max-autotune")
        model(x)
    cap.save("s3://bucket/model.atpack")

A capture records torch's Megacache entries (what `torch.compiler.save_cache_artifacts()`
would return) made during the block, and from the cache folders what the block wrote: Inductor
`.best_config` and `.kernel_perf` files, the GEMM timing file, Triton `.autotune.json` results
and compiled kernel folders (the kernels the compiled code launches, or all of them).
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import logging
import os
import re
import shlex
import sys
import types
from collections.abc import Iterator
from typing import Any

import msgspec

from . import kinds, settings
from .adapters import Collected, Skipped, inductor
from .adapters.megacache import Entry
from .artifacts import Environment, InductorBestConfig, MegacacheEntry
from .autoload import after_import
from .coordesc import record_path
from .env import LocalEnvironment
from .folders import default_inductor_dir, triton_dirs_to_collect
from .merge import CREATED, created_now
from .pack import DEFAULT_LEVEL, PackInfo, create

__all__ = ["Capture", "CommandReport", "capture", "capture_command"]

log = logging.getLogger(__name__)

_Stamp = tuple[int, int]
_Folder = tuple[str, str]
"""(Triton cache folder, key): one kernel or autotune folder."""


def capture(*, inductor_dir: str | None = None, triton_dir: str | None = None, all_kernels: bool = False) -> Capture:
    """Record what the `with` block produces (see the module's documentation). `all_kernels`
    keeps every compiled kernel folder, not only the ones the compiled code launches."""
    return Capture(inductor_dir=inductor_dir, triton_dir=triton_dir, all_kernels=all_kernels)


class Capture:
    """What a `with atpack.capture()` block produced; `save` writes it as a pack.

    Without `triton_dir`, every Triton folder the block may write is watched: Triton's own and
    each per-device folder under the Inductor folder (`atpack.folders`), those made during the
    block included. With `process`, the capture spans the whole process (``atpack capture --``):
    what torch records as Megacache entries is taken from the process's own recording when the
    capture ends. Every patch a capture makes is undone when it ends, however it ends."""

    def __init__(
        self,
        *,
        inductor_dir: str | None = None,
        triton_dir: str | None = None,
        all_kernels: bool = False,
        process: bool = False,
    ) -> None:
        self.inductor_dir = inductor_dir or default_inductor_dir()
        self._triton_dir = triton_dir
        self.all_kernels = all_kernels
        self.process = process
        self.megacache: list[Entry] = []
        self.inductor_files: set[str] = set()
        self.triton_folders: set[_Folder] = set()
        self.kernel_folders: set[_Folder] = set()
        self.notes: list[str] = []
        self.coordesc: dict[str, tuple[tuple[tuple[str, Any], ...], int, int]] = {}
        self._before: tuple[dict[str, _Stamp], dict[_Folder, _Stamp]] | None = None
        self._undo = contextlib.ExitStack()
        self._recording: _MegacacheRecording | None = None
        self._winners = _Winners()
        self._saves = _CoordescRecording()
        self._tuned = _TritonTuning()

    @property
    def triton_dirs(self) -> list[str]:
        """The Triton folders watched."""
        return [self._triton_dir] if self._triton_dir else triton_dirs_to_collect(self.inductor_dir)

    def __enter__(self) -> Capture:
        self._before = (_inductor_files(self.inductor_dir), _triton_folders(self.triton_dirs))
        if not self.process:
            self._recording = self._undo.enter_context(_MegacacheRecording.start(self.notes))
        self._winners.start(self._undo)
        self._saves.start(self._undo)
        self._tuned.start(self._undo)
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self._finish()
        finally:
            self._undo.close()

    def recorded_anything(self) -> bool:
        """Whether this process compiled or tuned anything during the capture."""
        return bool(self.megacache or self._saves.seen or self._tuned.ran)

    def _finish(self) -> None:
        assert self._before is not None
        self.megacache = self._recording.stop() if self._recording else _process_megacache() if self.process else []
        self.coordesc = self._saves.found_under(self.inductor_dir)
        inductor_before, triton_before = self._before
        self.inductor_files = _changed(inductor_before, _inductor_files(self.inductor_dir))
        new_folders = _changed(triton_before, _triton_folders(self.triton_dirs))
        autotune = {f for f in new_folders if _is_autotune_folder(os.path.join(*f))}
        kernels = new_folders - autotune
        self.triton_folders = autotune
        winners = self._winners.stop() | self._best_config_kernels()
        names = {f: _kernel_name(os.path.join(*f)) for f in kernels}
        inductors = {f for f in kernels if names[f].startswith("triton_")}
        searched = self._coordesc_kernels()
        launched = {f for f in inductors if f[1] in winners or names[f] in searched}
        if self.all_kernels:
            self.kernel_folders = kernels
        elif launched or not inductors:
            # Inductor's kernels: the ones its compiled code launches; anyone else's: all of them
            self.kernel_folders = launched | (kernels - inductors)
        else:
            self.kernel_folders = kernels
            self.notes.append("could not tell which kernels the compiled code launches: keeping every new one")
        for note in self.notes:
            log.info("capture: %s", note)

    def save(
        self,
        url: str | os.PathLike[str],
        *,
        environment: Environment | None = None,
        binaries_only: bool = False,
        annotations: dict[str, str] | None = None,
        storage_options: dict[str, Any] | None = None,
        level: int = DEFAULT_LEVEL,
    ) -> PackInfo:
        """Write what was captured as a pack at `url` (published atomically)."""
        from .adapters import megacache
        from .collect import first_answers

        env = environment or LocalEnvironment().snapshot()
        folders = self.triton_folders | self.kernel_folders
        with create(url, storage_options=storage_options, level=level) as writer:
            env_digest = writer.add_environment(env)

            def add_blob(data: bytes, hint: str) -> str:
                return writer.add_blob(data, hint=hint)

            written = kinds.Source(self.inductor_dir, env_digest, add_blob, include=self.inductor_files.__contains__)
            streams: list[Iterator[Collected] | Iterator[MegacacheEntry]] = [
                *(map(self._with_coordesc, collect(written)) for collect in kinds.collectors("inductor")),
                *(
                    collect(
                        kinds.Source(
                            root,
                            env_digest,
                            add_blob,
                            binaries_only=binaries_only,
                            include=lambda key, root=root: (root, key) in folders,  # type: ignore[misc]
                        )
                    )
                    for root in sorted({root for root, _ in folders})
                    for collect in kinds.collectors("triton")
                ),
                megacache.collect(megacache.write_blob(self.megacache), env_digest, add_blob)
                if self.megacache
                else iter(()),
            ]
            for item in first_answers(item for stream in streams for item in stream):
                if isinstance(item, Skipped):
                    log.warning("capture: skipped %s: %s", item.path, item.reason)
                else:
                    writer.add(item)
            writer.annotate(CREATED, created_now())
            for key, value in (annotations or {}).items():
                writer.annotate(key, value)
        assert writer.info is not None
        return writer.info

    def _with_coordesc(self, item: Collected) -> Collected:
        """A `.best_config` as coordinate descent left it, where torch later saved over it (a
        re-run of the heuristic autotuning records its own winner in the same file)."""
        if not isinstance(item, InductorBestConfig) or item.path not in self.coordesc:
            return item
        kwargs, num_warps, num_stages = self.coordesc[item.path]
        if (
            item.found_by_coordesc is True
            and (item.kwargs, item.num_warps, item.num_stages) == self.coordesc[item.path]
        ):
            return item
        self.notes.append(f"{item.path}: kept coordinate descent's result, which torch saved over")
        return msgspec.structs.replace(
            item,
            kwargs=kwargs,
            num_warps=num_warps,
            num_stages=num_stages,
            found_by_coordesc=True,
            triton_cache_hash=None,
        )

    def _coordesc_kernels(self) -> set[str]:
        """The names of the kernels whose coordinate-descent result torch saved during the
        capture. Torch saves it without its kernel's folder, and a torch that names winners
        (`put_winner`) may name the one autotuning chose before the search: every folder compiled
        for such a kernel is kept, the search's winner among them (a warm start on the H100,
        torch 2.11, compiled the one left out). A record is matched to its kernel module by
        torch's own key derivation (`coordesc.record_path`)."""
        if "torch._inductor.runtime.autotune_cache" not in sys.modules:
            return set()  # torch saved nothing in this process
        records = {os.path.normpath(os.path.join(self.inductor_dir, r)) for r in self.coordesc}
        names: set[str] = set()
        for shard in {os.path.dirname(r) for r in records}:
            with contextlib.suppress(OSError):
                for entry in os.scandir(shard):
                    if entry.name.endswith(".py") and _normpath(record_path(entry.path)) in records:
                        names |= _jit_names(entry.path)
        return names

    def _best_config_kernels(self) -> set[str]:
        """Kernel folders named by captured `.best_config` files (`triton_cache_hash`)."""
        folders = set()
        for relative in self.inductor_files:
            if relative.endswith(".best_config"):
                with contextlib.suppress(Exception):
                    with open(os.path.join(self.inductor_dir, relative), "rb") as f:
                        best = inductor.parse_best_config(relative, f.read(), "sha256:" + "0" * 64)
                    if isinstance(best.triton_cache_hash, str):
                        folders.add(best.triton_cache_hash)
        return folders


@dataclasses.dataclass
class CommandReport:
    """What `capture_command` ran and packed."""

    command: list[str]
    returncode: int
    url: str
    processes: int = 0
    merged: Any = None
    """The MergeReport of the processes' captures, where they were written to `url`."""

    def format(self) -> str:
        status = "" if self.returncode == 0 else f" (the command exited with {self.returncode})"
        command = shlex.join(self.command)
        command = command if len(command) <= 80 else command[:77] + "..."
        lines = [f"captured {self.processes} process(es) of {command}{status}"]
        if self.merged is not None:
            lines.append(self.merged.format())
        else:
            lines.append(
                f"nothing written to {self.url}: the command failed, and a pack there stays as it was "
                "(--partial writes what it recorded)"
            )
        return "\n".join(lines)


def capture_command(
    command: list[str],
    url: str | os.PathLike[str],
    *,
    binaries_only: bool = False,
    partial: bool = False,
    storage_options: dict[str, Any] | None = None,
) -> CommandReport:
    """Run `command` (unchanged: it need not import atpack) and write what its processes tuned as
    one pack at `url`. Each process that imports torch records itself through atpack's torch
    plug-in (`atpack.autoload`) and leaves its capture in a scratch folder when it exits; the
    captures are then merged (a question two processes answered differently: the fastest).

    A command that fails (a non-zero exit code) publishes nothing, unless `partial`: what a
    failed run recorded is not what the next machine should start from, and a pack already at
    `url` (the last good one) is kept."""
    import shutil
    import subprocess
    import tempfile

    from . import autoload
    from .errors import AtpackError
    from .merge import merge

    loads, why = settings.plugins_autoload()
    if not loads:
        raise AtpackError(f"cannot capture: {why}")
    if not autoload.plugin_registered():
        raise AtpackError("cannot capture: atpack's torch plug-in is not installed in this environment")
    settings.replay()  # a value the plug-in would not understand is refused here, not ignored there
    spool = tempfile.mkdtemp(prefix="atpack-capture-")
    try:
        env = {**os.environ, settings.CAPTURE: spool}
        if binaries_only:
            env[settings.CAPTURE_BINARIES_ONLY] = "1"
        try:
            returncode = subprocess.call(command, env=env)
        except OSError as e:
            raise AtpackError(f"cannot run {command[0]}: {e.strerror or e}") from e
        report = CommandReport(command, returncode, os.fspath(url))
        packs = sorted(os.path.join(spool, name) for name in os.listdir(spool) if name.endswith(".atpack"))
        report.processes = len(packs)
        if not packs:
            raise AtpackError(
                f"{' '.join(command)} recorded nothing to pack (exit code {returncode}): no process of it "
                "compiled or tuned with torch, or none exited normally (`atpack pack` packs the cache "
                "folders as they are, Triton kernels of a program's own included)"
            )
        if returncode == 0 or partial:
            report.merged = merge(packs, url, policy="fastest", storage_options=storage_options)
        return report
    finally:
        shutil.rmtree(spool, ignore_errors=True)


def _process_megacache() -> list[Entry]:
    """What torch recorded as Megacache entries in this process (`save_cache_artifacts`)."""
    from .adapters import megacache

    torch = sys.modules.get("torch")
    if torch is None or not hasattr(torch, "compiler"):
        return []
    saved = torch.compiler.save_cache_artifacts()
    return megacache.blob_entries(saved[0]) if saved else []


# --------------------------------------------------------------------------- folders


def _stamp(path: str) -> _Stamp | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns


def _inductor_files(root: str) -> dict[str, _Stamp]:
    """The result files of an Inductor cache folder and their (size, mtime)."""
    out: dict[str, _Stamp] = {}
    with contextlib.suppress(OSError):
        for shard in os.scandir(root):
            if shard.name == "cache" and shard.is_dir():
                names = [f"cache/{e.name}" for e in os.scandir(shard.path)]
            elif len(shard.name) == 2 and shard.is_dir():
                names = [
                    f"{shard.name}/{e.name}"
                    for e in os.scandir(shard.path)
                    if e.name.endswith((".best_config", ".kernel_perf"))
                ]
            else:
                continue
            for name in names:
                if (stamp := _stamp(os.path.join(root, name))) is not None:
                    out[name] = stamp
    return out


def _triton_folders(roots: list[str]) -> dict[_Folder, _Stamp]:
    """The folders in Triton cache folders and a stamp of their content (file count, latest mtime)."""
    out: dict[_Folder, _Stamp] = {}
    for root in roots:
        with contextlib.suppress(OSError):
            for folder in os.scandir(root):
                if folder.is_dir(follow_symlinks=False):
                    with contextlib.suppress(OSError):
                        stamps = [e.stat(follow_symlinks=False).st_mtime_ns for e in os.scandir(folder.path)]
                        out[root, folder.name] = (len(stamps), max(stamps, default=0))
    return out


def _normpath(path: str | None) -> str | None:
    return os.path.normpath(path) if path else None


def _jit_names(module: str) -> set[str]:
    with contextlib.suppress(OSError), open(module, encoding="utf-8", errors="replace") as f:
        return set(_JIT_NAME.findall(f.read(_MODULE_READ)))
    return set()


_JIT_NAME = re.compile(r"^def (triton_\w+)\(", re.MULTILINE)
_MODULE_READ = 1 << 22  # an Inductor kernel module is a few KB


def _changed(before: dict[Any, _Stamp], after: dict[Any, _Stamp]) -> set[Any]:
    return {name for name, stamp in after.items() if before.get(name) != stamp}


def _kernel_name(path: str) -> str:
    """The name of the kernel compiled into a Triton cache folder ("" if none)."""
    with contextlib.suppress(OSError):
        for name in os.listdir(path):
            if name.startswith("__grp__") and name.endswith(".json"):
                return name[len("__grp__") : -len(".json")]
    return ""


def _is_autotune_folder(path: str) -> bool:
    with contextlib.suppress(OSError):
        return any(name.endswith(".autotune.json") for name in os.listdir(path))
    return False


# --------------------------------------------------------------------------- torch's records


class _CoordescRecording:
    """What coordinate descent found for each kernel during the capture, by `.best_config` path:
    every result torch saves as coordinate descent's, and every later save of a config that
    coordinate descent found, which torch records as a plain autotuning result (a kernel that
    hit its record re-adds smaller-block candidates, benchmarks them, and saves the winner
    without the mark). Watches `AutotuneCache.save` from when its module is imported."""

    def __init__(self) -> None:
        self.found: dict[str, tuple[Any, ...]] = {}
        self.seen = 0

    def start(self, undo: contextlib.ExitStack) -> None:
        undo.callback(after_import("torch._inductor.runtime.autotune_cache", lambda m: self._watch(m, undo)))

    def _watch(self, module: types.ModuleType, undo: contextlib.ExitStack) -> None:
        cache_cls: Any = module.AutotuneCache
        original = cache_cls.save

        def save(
            cache: Any, config: Any, time_taken_ns: Any, found_by_coordesc: bool = False, *a: Any, **k: Any
        ) -> Any:
            result = original(cache, config, time_taken_ns, found_by_coordesc, *a, **k)
            self.seen += 1
            local = getattr(cache, "local_cache", None)
            if local and (found_by_coordesc or getattr(config, "found_by_coordesc", False) is True):
                self.found[str(local[1])] = (tuple(config.kwargs.items()), config.num_warps, config.num_stages)
            return result

        cache_cls.save = save
        undo.callback(setattr, cache_cls, "save", original)

    def found_under(self, inductor_dir: str) -> dict[str, tuple[tuple[tuple[str, Any], ...], int, int]]:
        root = os.path.abspath(inductor_dir)
        return {
            os.path.relpath(path, root): value  # type: ignore[misc]
            for path, value in self.found.items()
            if os.path.abspath(path).startswith(root + os.sep)
        }


class _TritonTuning:
    """Whether a `@triton.autotune` kernel ran during the capture (a process that only runs
    Triton kernels of its own records no Megacache entry)."""

    def __init__(self) -> None:
        self.ran = False

    def start(self, undo: contextlib.ExitStack) -> None:
        undo.callback(after_import("triton.runtime.autotuner", lambda m: self._watch(m, undo)))

    def _watch(self, module: types.ModuleType, undo: contextlib.ExitStack) -> None:
        autotuner: Any = module.Autotuner
        original = autotuner.run

        def run(*args: Any, **kwargs: Any) -> Any:
            self.ran = True
            return original(*args, **kwargs)

        autotuner.run = run
        undo.callback(setattr, autotuner, "run", original)


@dataclasses.dataclass
class _MegacacheRecording:
    """Torch's Megacache recording, fresh for the block; what it records is handed back to the
    process-wide recording afterwards, so `torch.compiler.save_cache_artifacts()` still sees it."""

    context: Any = None

    @classmethod
    def start(cls, notes: list[str]) -> _MegacacheRecording:
        manager = _manager()
        if manager is None:
            notes.append("torch is not imported: no Megacache entries recorded")
            return cls(None)
        fresh = getattr(manager, "with_fresh_cache", None)
        if fresh is None:
            notes.append("this torch has no CacheArtifactManager.with_fresh_cache: no Megacache entries recorded")
            return cls(None)
        context = fresh()
        context.__enter__()
        return cls(context)

    def __enter__(self) -> _MegacacheRecording:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self.context is not None:
            context, self.context = self.context, None
            context.__exit__(None, None, None)

    def stop(self) -> list[Entry]:
        if self.context is None:
            return []
        manager = _manager()
        recorded = {kind: list(items) for kind, items in manager._new_cache_artifacts.items()}
        self.close()
        entries: list[Entry] = []
        for kind, items in recorded.items():
            for artifact in items:
                entries.append((kind, artifact.key, artifact.content))
                if artifact not in manager._seen_artifacts:  # hand it back to the process's recording
                    manager._new_cache_artifacts[kind].append(artifact)
                    manager._seen_artifacts.add(artifact)
        return entries


def _manager() -> Any:
    if "torch" not in sys.modules:
        return None
    try:
        from torch.compiler._cache import CacheArtifactManager
    except ImportError:
        return None
    return CacheArtifactManager


class _Winners:
    """The Triton cache folders of the kernels compiled code launches: those of the kernels in
    Inductor's output code (each kernel keeps one launcher once tuned), plus torch's own winner
    records where it keeps them (`TritonBundler.put_winner`, torch 2.12+)."""

    def __init__(self) -> None:
        self._recorded: set[str] = set()

    def start(self, undo: contextlib.ExitStack) -> None:
        undo.callback(after_import("torch._inductor.triton_bundler", lambda m: self._watch(m, undo)))

    def _watch(self, module: types.ModuleType, undo: contextlib.ExitStack) -> None:
        bundler: Any = getattr(module, "TritonBundler", None)
        if bundler is None or "put_winner" not in vars(bundler):
            return
        descriptor, original = vars(bundler)["put_winner"], bundler.put_winner  # a classmethod

        def put_winner(kernel_hash: str) -> None:
            self._recorded.add(kernel_hash)
            original(kernel_hash)

        bundler.put_winner = put_winner
        undo.callback(setattr, bundler, "put_winner", descriptor)

    def stop(self) -> set[str]:
        return self._recorded | _output_code_kernels()


def _output_code_kernels() -> set[str]:
    """Folders of the kernels Inductor's compiled code launches: every kernel object alive with
    one launcher left (a tuned kernel keeps its winner) and a module file of its own, except
    benchmark modules (fusion trials, whose module carries a `get_args` harness). Autotuning
    candidates have no module file."""
    heuristics = sys.modules.get("torch._inductor.runtime.triton_heuristics")
    autotuner = getattr(heuristics, "CachingAutotuner", None)
    if autotuner is None:
        return set()
    folders: set[str] = set()
    harness: dict[str, bool] = {}
    for value in gc.get_objects():
        if not issubclass(type(value), autotuner):  # type(): dead weak proxies raise on isinstance
            continue
        launchers = getattr(value, "launchers", None)
        if not launchers or len(launchers) != 1 or not isinstance(getattr(launchers[0], "cache_hash", None), str):
            continue
        filename = getattr(value, "filename", None)
        if not filename:  # autotuning candidates are compiled from source without a module file
            continue
        if filename not in harness:
            harness[filename] = _has_benchmark_harness(filename)
        if not harness[filename]:
            folders.add(launchers[0].cache_hash)
    return folders


def _has_benchmark_harness(path: str) -> bool:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return "\ndef get_args(" in f.read()
    except OSError:
        return False
