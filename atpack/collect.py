"""Collecting: cache folders → artifacts → one pack on any fsspec URL."""

from __future__ import annotations

import collections
import dataclasses
import itertools
import logging
import os
from collections.abc import Iterable, Iterator
from typing import Any

import msgspec

from . import (
    evidence,
    kinds,
)
from .artifacts import Artifact, Environment, artifact_digest
from .digest import digest_bytes
from .env import BUILD_KEYS, LocalEnvironment
from .errors import AtpackError, NotFoundError
from .kinds import Collected, Skipped
from .pack import CREATED, DEFAULT_LEVEL, PackInfo, PackWriter, create, created_now

__all__ = ["CollectReport", "first_answers", "pack_caches"]

log = logging.getLogger(__name__)


@dataclasses.dataclass
class CollectReport:
    """What a collection found: artifacts per kind, files skipped and why, the pack written."""

    url: str
    kinds: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    skipped: list[Skipped] = dataclasses.field(default_factory=list)
    folders: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    """(cache system, folder) of every folder looked at, in order."""
    info: PackInfo | None = None
    made_elsewhere: str = ""
    """Where the artifacts contradict this machine, how: their own statements were recorded."""

    def nothing_found(self) -> str:
        """Where nothing was found, in a few words."""
        read = [folder for _, folder in self.folders if os.path.isdir(folder)]
        if not self.folders:
            return "no cache folder read"
        if not read:
            return f"no cache folder exists (looked for {', '.join(folder for _, folder in self.folders)})"
        skipped = f", {len(self.skipped)} files skipped" if self.skipped else ""
        return f"no artifact in {', '.join(read)}{skipped}"

    def format(self) -> str:
        lines = [f"packed {sum(self.kinds.values())} artifacts into {self.url}"]
        if self.info:
            lines[0] += f" ({self.info.size:,} bytes, {self.info.blob_bytes:,} bytes of blobs, {self.info.digest})"
        for system, folder in self.folders:
            lines.append(f"  {'read' if os.path.isdir(folder) else 'no folder at'} {folder} ({system})")
        if self.made_elsewhere:
            lines.append(f"  made elsewhere ({self.made_elsewhere}): recorded what the caches state")
        lines += [f"  {n:6d}  {kind}" for kind, n in sorted(self.kinds.items())]
        lines += [f"  skipped {s.path}: {s.reason}" for s in self.skipped]
        return "\n".join(lines)


def pack_caches(
    url: str | os.PathLike[str],
    *,
    inductor_dir: str | None = None,
    triton_dir: str | None = None,
    sources: Iterable[str] = ("inductor", "triton"),
    megacache: bytes | None = None,
    environment: Environment | None = None,
    with_ir: bool = False,
    annotations: dict[str, str] | None = None,
    storage_options: dict[str, Any] | None = None,
    level: int = DEFAULT_LEVEL,
    allow_empty: bool = False,
) -> CollectReport:
    """Collect every supported artifact from Inductor's and Triton's cache folders (by
    default, the folders torch and triton use here: Inductor's, each per-device Triton folder
    under it and Triton's own, see `atpack.folders`), and from a Megacache blob if given (the
    bytes `torch.compiler.save_cache_artifacts()` returned), into a pack at `url`.

    `environment` describes the machine the caches were made on; by default, this one.
    A folder named by `inductor_dir` or `triton_dir` must exist (`NotFoundError`). Where nothing
    is found, no pack is written (`AtpackError`, naming the folders read) unless `allow_empty`.
    Compiled kernels keep what a warm start reads, their metadata and binary; `with_ir`
    keeps their IR and source too (PTX, LLVM IR, TTGIR, TTIR, .source), for debugging and profilers.
    """
    from .adapters import megacache as megacache_adapter
    from .folders import default_inductor_dir, triton_dirs_to_collect

    sources = set(sources)
    unknown = sources - {"inductor", "triton"}
    if unknown:
        raise ValueError(f"unknown cache sources: {', '.join(sorted(unknown))}")
    for system, named in (("inductor", inductor_dir), ("triton", triton_dir)):
        if named and system in sources and not os.path.isdir(named):
            raise NotFoundError(f"{named}: no such folder (named as the {system.capitalize()} cache folder)")
    env = environment or LocalEnvironment().snapshot(build_keys=False)
    report = CollectReport(os.fspath(url))
    inductor_root = inductor_dir or default_inductor_dir()
    if "inductor" in sources:
        report.folders.append(("inductor", inductor_root))
    if "triton" in sources:
        triton_dirs = [triton_dir] if triton_dir else triton_dirs_to_collect(inductor_root)
        report.folders += [("triton", folder) for folder in triton_dirs]
    with create(url, storage_options=storage_options, level=level) as writer:
        metadata: dict[str, bytes] = {}  # kernel metadata files, read for what they say (atpack.evidence)
        host_code: dict[str, bytes] = {}  # native modules' bytes, stored once it is known they are packed

        def add_blob(data: bytes, hint: str) -> str:
            if hint == ".so":
                host_code[digest := digest_bytes(data)] = data
                return digest
            digest = writer.add_blob(data, hint=hint)
            if hint == ".json" and len(data) <= evidence.METADATA_READ:
                metadata[digest] = data
            return digest

        collected: list[Artifact] = []
        stated: list[tuple[Artifact, dict[str, str]]] = []
        streams: list[Iterable[Collected]] = [
            collect(kinds.Source(folder, env.digest, add_blob, binaries_only=not with_ir))
            for system, folder in report.folders
            for collect in kinds.collectors(system)
        ]
        if megacache is not None:
            streams.append(megacache_adapter.collect(megacache, env.digest, add_blob))
        for item in first_answers(itertools.chain.from_iterable(streams)):
            if isinstance(item, Skipped):
                log.warning("skipped %s: %s", item.path, item.reason)
                report.skipped.append(item)
            else:
                collected.append(item)
                if said := kinds.of(item).says(item, metadata):
                    stated.append((item, said))
        # raised inside the block: nothing is published
        env = _recorded_environment(stated, env, environment is not None, report)
        _add(writer, collected, env, host_code, report)
        if not report.kinds and not allow_empty:
            blob = ", nor in the Megacache blob" if megacache is not None else ""
            raise AtpackError(f"nothing to pack: {report.nothing_found()}{blob} (--allow-empty writes an empty pack)")
        writer.annotate(CREATED, created_now())
        for key, value in (annotations or {}).items():
            writer.annotate(key, value)
    report.info = writer.info
    return report


_UNKNOWN_ABI = "host code made on another machine, and nothing states the Python ABI and platform it was built for"


def _recorded_environment(
    stated: list[tuple[Artifact, dict[str, str]]], env: Environment, given: bool, report: CollectReport
) -> Environment:
    """The environment to record: `env` (this machine's, or the given one) unless the artifacts
    contradict it. A given one is then refused; this machine is evidently not where they were
    made, and what they state is recorded instead (`evidence.stated_environment`)."""
    if given:
        evidence.check(stated, env, "the given", measured=False)
        return env
    env = _with_stated_build_keys(stated, env)
    found = evidence.contradictions(stated, env, measured=True)
    if not found:
        return env
    stated_env = evidence.stated_environment(stated)
    report.made_elsewhere = evidence.describe(found, "this machine's")
    log.warning("these caches were made elsewhere (%s): recording what they state", report.made_elsewhere)
    return stated_env


def _with_stated_build_keys(stated: list[tuple[Artifact, dict[str, str]]], env: Environment) -> Environment:
    """This machine's environment with the build keys the artifacts state about themselves (a GEMM
    timing file names Triton's), computed now where the snapshot left them out as costly: an
    uncomputed key is not this machine's answer, and must not read as a contradiction."""
    missing = {f for _, said in stated for f in said if f in BUILD_KEYS and getattr(env, f) is None}
    if not missing:
        return env
    local = LocalEnvironment()
    return msgspec.structs.replace(env, **{f: local.get(f) for f in sorted(missing)})


def _add(
    writer: PackWriter, collected: list[Artifact], env: Environment, host_code: dict[str, bytes], report: CollectReport
) -> None:
    """Add the collected artifacts in the environment to record, with the host code they name;
    host code made elsewhere whose Python nobody states is left out."""
    env_digest = writer.add_environment(env)
    unknown_abi = bool(report.made_elsewhere) and not (env.python_abi and env.platform)
    for item in collected:
        if unknown_abi and "platform" in type(item).depends_on:
            report.skipped.append(Skipped(f"{item.kind} {item.key}", _UNKNOWN_ABI))
            continue
        for ref in item.blob_refs():
            if ref in host_code:
                writer.add_blob(host_code[ref], hint=".so")
        writer.add(item if item.env == env_digest else msgspec.structs.replace(item, env=env_digest))
        report.kinds[item.kind] += 1


def first_answers(items: Iterable[Collected]) -> Iterator[Collected]:
    """The same result found in several folders (a kernel in each per-device Triton folder) is
    packed once; where two folders answer one question differently, the first folder's answer
    is kept and the other skipped, with the reason."""
    seen: dict[tuple[str, str], str] = {}
    for item in items:
        if isinstance(item, Skipped):
            yield item
            continue
        digest, question = artifact_digest(item), (item.kind, item.key)
        if question not in seen:
            seen[question] = digest
            yield item
        elif seen[question] != digest:
            yield Skipped(f"{item.kind} {item.key}", "another folder holds a different result for it: kept the first")
