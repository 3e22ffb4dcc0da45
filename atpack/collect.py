"""Collecting: cache folders → artifacts → one pack on any fsspec URL."""

from __future__ import annotations

import collections
import dataclasses
import itertools
import logging
import os
from collections.abc import Iterable
from typing import Any

from .adapters import Collected, Skipped
from .artifacts import Environment
from .merge import CREATED, created_now
from .pack import DEFAULT_LEVEL, PackInfo, create

__all__ = ["CollectReport", "pack_caches"]

log = logging.getLogger(__name__)


@dataclasses.dataclass
class CollectReport:
    """What a collection found: artifacts per kind, files skipped and why, the pack written."""

    url: str
    kinds: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    skipped: list[Skipped] = dataclasses.field(default_factory=list)
    info: PackInfo | None = None

    def format(self) -> str:
        lines = [f"packed {sum(self.kinds.values())} artifacts into {self.url}"]
        if self.info:
            lines[0] += f" ({self.info.size:,} bytes, {self.info.blob_bytes:,} bytes of blobs, {self.info.digest})"
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
    binaries_only: bool = False,
    annotations: dict[str, str] | None = None,
    storage_options: dict[str, Any] | None = None,
    level: int = DEFAULT_LEVEL,
) -> CollectReport:
    """Collect every supported artifact from Inductor's and Triton's cache folders (by
    default, the folders torch and triton would use here), and from a Megacache blob if given
    (the bytes `torch.compiler.save_cache_artifacts()` returned), into a pack at `url`.

    `environment` describes the machine the caches were made on; by default, this one.
    """
    from .adapters import inductor, triton
    from .adapters import megacache as megacache_adapter
    from .env import LocalEnvironment, default_inductor_dir, default_triton_dir

    sources = set(sources)
    unknown = sources - {"inductor", "triton"}
    if unknown:
        raise ValueError(f"unknown cache sources: {', '.join(sorted(unknown))}")
    env = environment or LocalEnvironment().snapshot()
    report = CollectReport(os.fspath(url))
    with create(url, storage_options=storage_options, level=level) as writer:
        env_digest = writer.add_environment(env)
        streams: list[Iterable[Collected]] = []
        if "inductor" in sources:
            streams.append(inductor.collect(inductor_dir or default_inductor_dir(), env_digest))
        add_blob = lambda data, hint: writer.add_blob(data, hint=hint)  # noqa: E731
        if "triton" in sources:
            streams.append(
                triton.collect(triton_dir or default_triton_dir(), env_digest, add_blob, binaries_only=binaries_only)
            )
        if megacache is not None:
            streams.append(megacache_adapter.collect(megacache, env_digest, add_blob))
        for item in itertools.chain.from_iterable(streams):
            if isinstance(item, Skipped):
                log.warning("skipped %s: %s", item.path, item.reason)
                report.skipped.append(item)
            else:
                writer.add(item)
                report.kinds[item.kind] += 1
        writer.annotate(CREATED, created_now())
        for key, value in (annotations or {}).items():
            writer.annotate(key, value)
    report.info = writer.info
    return report
