"""The calls people already know from `torch.compiler`, and the one-line startup call.

    atpack.save_cache_artifacts("s3://bucket/model.atpack")    # after a warm-up run
    atpack.load_cache_artifacts("s3://bucket/model.atpack")    # at container startup, or in a fresh process

Unlike torch's pair, a pack also carries GEMM timings, Triton `@triton.autotune` results and
compiled kernels, lives on any fsspec URL, is checked byte for byte, and is loaded partially:
only what applies to this machine, and pickled entries only when trusted.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any

from .collect import pack_caches
from .errors import AtpackError
from .pack import DEFAULT_LEVEL, DEFAULT_LIMITS, SILENT, Limits, PackInfo, Progress, open_pack
from .populate import PopulateReport, populate
from .recording import Capture
from .storage import Retry

__all__ = ["load_cache_artifacts", "save_cache_artifacts", "to_megacache"]

log = logging.getLogger(__name__)


def save_cache_artifacts(
    url: str | os.PathLike[str],
    *,
    capture: Capture | None = None,
    inductor_dir: str | None = None,
    triton_dir: str | None = None,
    with_ir: bool = False,
    annotations: dict[str, str] | None = None,
    storage_options: dict[str, Any] | None = None,
    level: int = DEFAULT_LEVEL,
    allow_empty: bool = False,
) -> PackInfo:
    """Save this process's compile caches as a pack at `url`, like
    `torch.compiler.save_cache_artifacts()`: torch's Megacache entries recorded so far, plus
    everything in the cache folders. With `capture`, only what that capture recorded.
    Where the caches hold nothing, no pack is written (`AtpackError`) unless `allow_empty`.
    Compiled kernels keep what a warm start reads, their metadata and binary; `with_ir`
    keeps their IR and source too (PTX, LLVM IR, TTGIR, TTIR, .source), for debugging and profilers."""
    if capture is not None:
        return capture.save(url, with_ir=with_ir, annotations=annotations, storage_options=storage_options, level=level)
    blob = None
    try:
        import torch
    except ImportError:
        log.info("torch is not installed: saving the cache folders only")
    else:
        saved = torch.compiler.save_cache_artifacts()
        blob = saved[0] if saved is not None else None
    report = pack_caches(
        url,
        inductor_dir=inductor_dir,
        triton_dir=triton_dir,
        megacache=blob,
        with_ir=with_ir,
        annotations=annotations,
        storage_options=storage_options,
        level=level,
        allow_empty=allow_empty,
    )
    assert report.info is not None
    return report.info


def load_cache_artifacts(
    url: str | os.PathLike[str],
    *,
    trust_pickles: bool = False,
    inductor_dir: str | None = None,
    triton_dir: str | None = None,
    ignore_environment: bool = False,
    dry_run: bool = False,
    trusted_keys: Sequence[str | os.PathLike[str]] = (),
    storage_options: dict[str, Any] | None = None,
    retry: Retry | None = None,
    limits: Limits = DEFAULT_LIMITS,
    callback: Progress = SILENT,
    hints: bool = False,
) -> PopulateReport:
    """Populate this machine's caches from the pack at `url` (or the packs of a model folder,
    see `atpack.populate.find_packs`), like `torch.compiler.load_cache_artifacts()`: what applies
    here is written, the rest is skipped, and the report says why for each artifact
    (`report.applied` counts what the caches now hold; `report.format()` says it in lines).
    Never raises for artifacts that do not apply; raises `AtpackError` where the pack cannot be
    read, and `SignatureError` where `trusted_keys` (public key files) are given and none of
    them signed it, before anything is written.

    What runs code when loaded (pickled Megacache entries, Triton's host modules) is written only
    with `trust_pickles`. `dry_run` writes nothing and also compares the build keys (slower: see
    spec/FORMAT.md, §9). By default the folders are the ones torch and Triton use here
    (`atpack.folders`). `retry` (an `atpack.Retry`) says how reads from a remote store are retried;
    `limits` bounds what a pack may make populate write; `callback` (an fsspec callback, such
    as `TqdmCallback`: `atpack.pack.Progress`) follows the blobs read.

    In this process, coordinate-descent results that torch would re-tune are replayed too
    (`atpack.replay`), from when Inductor's runtime is imported (unless ``ATPACK_REPLAY`` is
    off): loading imports neither torch's compiler nor Triton's. With `hints`, results made on
    another GPU or release become hints (`atpack.hints`): this process, and those started later
    that use the Inductor folder, benchmark their winners where a lookup misses (unless
    ``ATPACK_HINTS`` is off)."""
    from . import replay, seam, settings

    report = populate(
        url,
        inductor_dir=inductor_dir,
        triton_dir=triton_dir,
        dry_run=dry_run,
        trust_pickles=trust_pickles,
        ignore_environment=ignore_environment,
        storage_options=storage_options,
        trusted_keys=trusted_keys,
        retry=retry,
        limits=limits,
        callback=callback,
        hints=hints,
    )
    log.info("atpack: %s: %s", os.fspath(url), report.format().splitlines()[-1])
    if not dry_run and settings.replay() is not False:
        seam.install_replay_on_import()
    if hints and not dry_run and replay.hinting(report.inductor_dir):
        seam.install_hints_on_import(os.path.join(report.inductor_dir, replay.HINTS_FILE))
    return report


def to_megacache(
    url: str | os.PathLike[str], *, trust_pickles: bool = False, storage_options: dict[str, Any] | None = None
) -> bytes:
    """The pack's Megacache entries as a blob `torch.compiler.load_cache_artifacts()` reads,
    each checked as `populate` checks it (`UnsafeContentError` for the first that fails; torch
    unpickles graph entries, so they leave the pack only with `trust_pickles`); `AtpackError`
    for a pack that holds none (where torch's own call returns None)."""
    from .adapters import megacache

    with open_pack(url, storage_options=storage_options) as pack:
        entries = megacache.entries(pack.artifacts)
        if not entries:
            raise AtpackError(
                f"{pack.name}: no Megacache entry in this pack ({len(pack.artifacts)} artifacts of other kinds)"
            )
        for entry in entries:
            megacache.check_entry(entry, trust_pickles=trust_pickles)
        contents = dict(pack.read_blobs(a.content for a in entries))
        return megacache.write_blob(
            (a.type_name, a.entry_key, megacache.content(a, contents[a.content])) for a in entries
        )
