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
import logging
import os
import re
import shlex
import stat
from collections.abc import Callable, Iterator
from typing import Any

import msgspec

from . import kinds, seam, settings, walk
from .adapters import inductor, megacache
from .adapters.megacache import Entry
from .artifacts import Artifact, Environment, InductorBestConfig, LookupKey, MegacacheEntry
from .env import LocalEnvironment
from .errors import CacheFileError, UnsafeContentError
from .folders import default_inductor_dir, triton_dirs_to_collect
from .kinds import Collected, Skipped
from .lookups import Recorder
from .pack import CREATED, DEFAULT_LEVEL, Pack, PackInfo, create, created_now, open_pack

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
        self._recording: seam.MegacacheRecording | None = None
        self._winners: set[str] = set()
        self._found: dict[str, tuple[Any, ...]] = {}
        self._saves = 0
        self._tuned = False
        self.lookups = Recorder()
        """What the block looked up in torch's and Triton's caches: the pack keeps each key's components."""

    @property
    def triton_dirs(self) -> list[str]:
        """The Triton folders watched."""
        return [self._triton_dir] if self._triton_dir else triton_dirs_to_collect(self.inductor_dir)

    def __enter__(self) -> Capture:
        self._before = (_inductor_files(self.inductor_dir), _triton_folders(self.triton_dirs))
        if not self.process:
            self._recording = self._undo.enter_context(seam.MegacacheRecording.start())
            if self._recording.note:
                self.notes.append(self._recording.note)
        seam.watch_winners(self._winners.add, self._undo)
        seam.watch_records(self._record, self._undo)
        seam.watch_autotune_runs(self._ran, self._undo)
        seam.watch_lookups(self.lookups, self._undo)
        return self

    def _record(self, path: str, found: tuple[Any, ...]) -> None:
        self._saves += 1
        if found:
            self._found[path] = found

    def _ran(self) -> None:
        self._tuned = True

    def __exit__(self, *exc: object) -> None:
        try:
            self._finish()
        finally:
            self._undo.close()

    def recorded_anything(self) -> bool:
        """Whether this process compiled or tuned anything during the capture (a lookup of any
        cache, a GEMM's timings among them, counts: a frozen graph leaves no Megacache entry)."""
        return bool(self.megacache or self._saves or self._tuned or self.lookups.lookups)

    def _finish(self) -> None:
        assert self._before is not None
        self.megacache = self._recording.stop() if self._recording else _process_megacache() if self.process else []
        self.coordesc = _under(self._found, self.inductor_dir)
        inductor_before, triton_before = self._before
        self.inductor_files = _changed(inductor_before, _inductor_files(self.inductor_dir))
        new_folders = _changed(triton_before, _triton_folders(self.triton_dirs))
        autotune = {f for f in new_folders if _is_autotune_folder(os.path.join(*f))}
        kernels = new_folders - autotune
        self.triton_folders = autotune
        winners = self._winners | seam.launched_kernel_folders() | self._best_config_kernels()
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

    def _lookup_keys(self, env: str, add_blob: Callable[[bytes, str], str]) -> list[LookupKey]:
        """Each key looked up or filled during the capture, with its components (the last listing of each)."""
        last = {(lookup.cache, lookup.key): lookup for lookup in self.lookups.lookups if lookup.components}
        return [
            LookupKey(
                env=env,
                cache=lookup.cache,
                lookup=lookup.key,
                name=lookup.name,
                components=add_blob(msgspec.json.encode(lookup.components), f"lookup.{lookup.cache}"),
                count=len(lookup.components),
            )
            for lookup in last.values()
        ]

    def save(
        self,
        url: str | os.PathLike[str],
        *,
        environment: Environment | None = None,
        with_ir: bool = False,
        annotations: dict[str, str] | None = None,
        storage_options: dict[str, Any] | None = None,
        level: int = DEFAULT_LEVEL,
    ) -> PackInfo:
        """Write what was captured as a pack at `url` (published atomically). Compiled kernels
        keep their metadata and binary (what a warm start reads); `with_ir`, their IR too."""
        from .adapters import megacache
        from .collect import first_answers

        env = environment or LocalEnvironment().snapshot(build_keys=False)
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
                            binaries_only=not with_ir,
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
            for lookup in self._lookup_keys(env_digest, add_blob):
                writer.add(lookup)
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
        (2.12+) may name the one autotuning chose before the search: every folder compiled
        for such a kernel is kept, the search's winner among them (a warm start on the H100,
        torch 2.11, compiled the one left out). A record is matched to its kernel module by
        torch's own key derivation (`seam.record_path`)."""
        if not self._saves:
            return set()  # torch saved nothing in this process
        records = {os.path.normpath(os.path.join(self.inductor_dir, r)) for r in self.coordesc}
        names: set[str] = set()
        for shard in {os.path.dirname(r) for r in records}:
            with contextlib.suppress(OSError):
                for entry in os.scandir(shard):
                    if entry.name.endswith(".py") and _normpath(seam.record_path(entry.path)) in records:
                        names |= _kernel_names(entry.path)
        return names

    def _best_config_kernels(self) -> set[str]:
        """Kernel folders named by captured `.best_config` files (`triton_cache_hash`)."""
        folders = set()
        for relative in self.inductor_files:
            if relative.endswith(".best_config"):
                with contextlib.suppress(Exception):  # a FIFO or a device there is refused, never waited on
                    data = walk.read_file(os.path.join(self.inductor_dir, relative), limit=_RECORD_READ)
                    best = inductor.parse_best_config(relative, data, "sha256:" + "0" * 64)
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
    with_ir: bool = False,
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

    from . import replay
    from .errors import AtpackError
    from .merging import merge

    loads, why = settings.plugins_autoload()
    if not loads:
        raise AtpackError(f"cannot capture: {why}")
    if not replay.plugin_registered():
        raise AtpackError("cannot capture: atpack's torch plug-in is not installed in this environment")
    settings.replay()  # a value the plug-in would not understand is refused here, not ignored there
    spool = tempfile.mkdtemp(prefix="atpack-capture-")
    try:
        env = {**os.environ, settings.CAPTURE: spool}
        if with_ir:
            env[settings.CAPTURE_WITH_IR] = "1"
        try:
            returncode = subprocess.call(command, env=env)
        except OSError as e:
            raise AtpackError(f"cannot run {command[0]}: {e.strerror or e}") from e
        report = CommandReport(command, returncode, os.fspath(url))
        packs = _spooled(spool)
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


_SPOOLED = re.compile(r"[0-9]{1,10}\.atpack")
"""What atpack's plug-in names the capture of a process (its pid)."""


def _spooled(spool: str) -> list[str]:
    """The captures the command's processes left in `spool`, each checked before it is merged: a
    regular file named as atpack's plug-in names one, holding nothing populate would refuse
    whatever the machine and trust (`Kind.never`; for a Megacache entry an unknown type or a key
    of another shape, and for an autotune entry a config torch never emits). Any process of the
    command can write there; a pack that breaks a rule is refused (`UnsafeContentError`), not
    merged into what is published."""
    packs = []
    for name in sorted(os.listdir(spool)):
        path = os.path.join(spool, name)
        if name.startswith("."):
            continue  # the temporary of a process killed while it wrote its capture
        if not _SPOOLED.fullmatch(name) or not stat.S_ISREG(os.lstat(path).st_mode):
            raise UnsafeContentError(f"{path}: not a capture of atpack's plug-in (a process of the command made it)")
        with open_pack(path) as pack:
            try:
                _check_spooled(pack)
            except UnsafeContentError as e:
                raise UnsafeContentError(f"{path}: a process of the command left {e}") from e
        packs.append(path)
    return packs


def _check_spooled(pack: Pack) -> None:
    autotune: dict[str, list[MegacacheEntry]] = {}
    for artifact in pack.artifacts:
        if not isinstance(artifact, Artifact):
            continue  # a kind this atpack does not know: kept as it is, skipped by populate
        if never := kinds.of(artifact).never(artifact):
            raise UnsafeContentError(f"{artifact.kind} {artifact.key!r}"[:200] + f": {never}")
        if isinstance(artifact, MegacacheEntry):
            megacache.check_entry(artifact, trust_pickles=True)
            if not artifact.runs_code:
                autotune.setdefault(artifact.content, []).append(artifact)
    for digest, data in pack.read_blobs(autotune):
        for entry in autotune[digest]:
            megacache.content(entry, data)


def _process_megacache() -> list[Entry]:
    """What torch recorded as Megacache entries in this process (`save_cache_artifacts`)."""
    from .adapters import megacache

    saved = seam.saved_megacache()
    return megacache.blob_entries(saved) if saved else []


def _under(found: dict[str, tuple[Any, ...]], inductor_dir: str) -> dict[str, Any]:
    """`found`, by path relative to `inductor_dir`, of the records inside it."""
    root = os.path.abspath(inductor_dir)
    return {os.path.relpath(p, root): v for p, v in found.items() if os.path.abspath(p).startswith(root + os.sep)}


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


def _kernel_names(module: str) -> set[str]:
    with contextlib.suppress(CacheFileError):
        return seam.kernel_names(walk.read_file(module, limit=_MODULE_READ).decode("utf-8", "replace"))
    return set()


_MODULE_READ = 1 << 22  # an Inductor kernel module is a few KB
_RECORD_READ = 1 << 20  # a .best_config is a few hundred bytes


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
