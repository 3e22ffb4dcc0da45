"""Triton's disk cache: ``@triton.autotune`` results (``<key>/<fn>.autotune.json``) and
compiled kernel folders (``<key>/<name>.json``, ``.cubin``, ... and ``__grp__<name>.json``).

A kernel folder's ``__grp__`` file lists ABSOLUTE paths of its files, so it is not stored:
populate writes it afresh for the target folder, after every file it names.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar

import msgspec

from .. import evidence
from ..artifacts import TritonAutotune, TritonConfig, TritonHostModule, TritonKernel
from ..errors import AtpackError, CacheFileError, LimitError, UnsafeContentError
from ..files import CacheDir, FileWrite
from ..kinds import Collected, Kind, Shown, Skipped, Source
from ..walk import Folder, open_cache
from .common import AddBlob, as_float, config_text, dumps, finite, load_json, to_artifact
from .configs import triton_config_problem

__all__ = [
    "BINARY_SUFFIXES",
    "KINDS",
    "MAX_METADATA_SIZE",
    "check_metadata",
    "collect",
    "files",
    "group_children",
    "metadata_blob",
    "render_autotune",
    "render_group",
    "repairable_group",
]

log = logging.getLogger(__name__)

BINARY_SUFFIXES = (".cubin", ".hsaco", ".spv", ".zebin")
"""What a kernel needs besides its metadata to launch, per backend."""

MAX_METADATA_SIZE = 1 << 20
"""The largest kernel metadata file populate checks and writes (Triton's are about 1 KiB)."""

_NAME_LIMIT = 150
"""Triton names a kernel's files after the first 150 characters of its name."""

_KEY = re.compile(r"^[A-Za-z0-9_-]{16,128}$")
_CONFIG_FIELDS = ("kwargs", "num_warps", "num_ctas", "num_stages", "maxnreg")
_GROUP_PREFIX, _JSON = "__grp__", ".json"
_AUTOTUNE = ".autotune.json"


# --------------------------------------------------------------------------- collect


def collect(
    root: str,
    env: str,
    add_blob: AddBlob,
    *,
    binaries_only: bool = False,
    include: Callable[[str], bool] | None = None,
) -> Iterator[Collected]:
    """Every autotune result and compiled kernel folder under `root` (in the folders whose names
    `include` accepts, if given). With `binaries_only`, kernels keep only their metadata and
    binary (no IR, no source): smaller, still a hit. Read through `atpack.walk`: a symlink, a
    FIFO or an oversized file is skipped (with the kernel it belongs to), never followed or
    waited on."""
    cache = open_cache(root)
    if cache is None:
        log.info("no Triton cache folder at %s", root)
        return
    with cache:
        for key in cache.names():
            if not _KEY.match(key) or (include is not None and not include(key)):
                continue
            try:
                folder = cache.folder(key)
            except CacheFileError as e:
                yield Skipped(os.path.join(cache.path, key), str(e))
                continue
            if folder is not None:
                with folder:
                    yield from _collect_folder(key, folder, env, add_blob, binaries_only)


def _collect_folder(key: str, folder: Folder, env: str, add_blob: AddBlob, binaries_only: bool) -> Iterator[Collected]:
    try:
        names = folder.names()
    except CacheFileError as e:
        yield Skipped(folder.path, str(e))
        return
    if names and all(name.endswith(".so") for name in names):
        yield _read_host_module(key, folder, names, env, add_blob)
        return
    present = set(names)
    for name in names:
        try:
            if name.endswith(_AUTOTUNE):
                yield _read_autotune(key, name, folder, env)
            elif name.startswith(_GROUP_PREFIX) and name.endswith(_JSON):
                kernel = name[len(_GROUP_PREFIX) : -len(_JSON)]
                yield _read_kernel(key, kernel, folder, present, env, add_blob, binaries_only)
        except CacheFileError as e:
            yield Skipped(os.path.join(folder.path, name), str(e))


def _read_autotune(key: str, name: str, folder: Folder, env: str) -> TritonAutotune:
    raw = folder.read(name)
    artifact = parse_autotune(key, name[: -len(_AUTOTUNE)], raw, env)
    if render_autotune(artifact) != raw:
        log.warning("%s/%s: unusual formatting; it will be written back with triton's formatting", folder.path, name)
    return artifact


def parse_autotune(key: str, fn_name: str, raw: bytes, env: str) -> TritonAutotune:
    where = f"{key}/{fn_name}{_AUTOTUNE}"
    data = load_json(raw, where)
    try:
        fields: dict[str, Any] = {
            "env": env,
            "cache_key": key,
            "fn_name": fn_name,
            "tuning_key": data["key"],
            "configs_timings": [
                [_config_fields(config), [finite(t) for t in timings]] for config, timings in data["configs_timings"]
            ],
            "extra": [[k, v] for k, v in data.items() if k not in ("key", "configs_timings")],
        }
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise CacheFileError(f"{where}: not an autotune result ({type(e).__name__}: {e})") from e
    return to_artifact(TritonAutotune, fields, where)  # type: ignore[no-any-return]


def _config_fields(config: dict[str, Any]) -> dict[str, Any]:
    fields = {k: config[k] for k in _CONFIG_FIELDS if k in config}
    fields["kwargs"] = list(config["kwargs"].items())
    fields["extra"] = [[k, v] for k, v in config.items() if k not in _CONFIG_FIELDS]
    return fields


def _read_kernel(
    key: str, name: str, folder: Folder, names: set[str], env: str, add_blob: AddBlob, binaries_only: bool
) -> TritonKernel:
    where = f"{key}/{_GROUP_PREFIX}{name}{_JSON}"
    group_data = load_json(folder.read(f"{_GROUP_PREFIX}{name}{_JSON}"), where)
    try:
        children = list(group_data["child_paths"])
    except (KeyError, TypeError) as e:
        raise CacheFileError(f"{where}: not a Triton group file (no child_paths)") from e
    metadata = f"{name}{_JSON}"
    if metadata not in children:
        raise CacheFileError(f"{where}: the group does not list the kernel's metadata {metadata}")
    if binaries_only:
        children = [c for c in children if c == metadata or c.endswith(BINARY_SUFFIXES)]
    stored = []
    for child in children:
        if os.path.basename(str(child)) != child or child not in names:
            continue  # Triton ignores children that are missing, so do we
        data = folder.read(child)  # a symlink, a FIFO, a folder there: the kernel is skipped
        stored.append([child, add_blob(data, os.path.splitext(child)[1]), len(data)])  # hint: TritonKernel.blob_hint
    if not any(name == metadata for name, _, _ in stored):
        raise CacheFileError(f"{where}: the kernel's metadata {metadata} is missing")
    fields = {
        "env": env,
        "cache_key": key,
        "name": name,
        "files": sorted(stored),
        "group": [c for c in children if any(c == s[0] for s in stored)],
    }
    return to_artifact(TritonKernel, fields, where)  # type: ignore[no-any-return]


def _read_host_module(key: str, folder: Folder, names: list[str], env: str, add_blob: AddBlob) -> Collected:
    files = []
    for name in names:
        try:
            data = folder.read(name)
        except CacheFileError as e:
            return Skipped(os.path.join(folder.path, name), str(e))
        files.append([name, add_blob(data, ".so"), len(data)])
    try:
        return to_artifact(TritonHostModule, {"env": env, "cache_key": key, "files": files}, f"{key}/")  # type: ignore[no-any-return]
    except CacheFileError as e:
        return Skipped(folder.path, str(e))


# --------------------------------------------------------------------------- render


def render_autotune(a: TritonAutotune) -> bytes:
    data = {
        "key": list(a.tuning_key),
        "configs_timings": [[_config_dict(ct.config), [as_float(t) for t in ct.timings]] for ct in a.configs_timings],
    }
    data.update(a.extra)
    return dumps(data).encode()


def _config_dict(c: TritonConfig) -> dict[str, Any]:
    out: dict[str, Any] = {"kwargs": dict(c.kwargs), "num_warps": c.num_warps}
    if c.num_ctas is not msgspec.UNSET:
        out["num_ctas"] = c.num_ctas
    out["num_stages"] = c.num_stages
    if c.maxnreg is not msgspec.UNSET:
        out["maxnreg"] = c.maxnreg
    out.update(c.extra)
    return out


def render_group(folder: str, children: list[str]) -> bytes:
    """A ``__grp__`` file naming `children` inside `folder`, as Triton writes it."""
    return dumps({"child_paths": {c: f"{folder}/{c}" for c in children}}).encode()


# --------------------------------------------------------------------------- populate


def files(artifact: TritonAutotune | TritonKernel | TritonHostModule, root: CacheDir) -> list[FileWrite]:
    """The files populate writes for an autotune result, a kernel folder or a host module.

    A kernel's group file is written last and is the only file populate may replace: only
    where the folder's group already lists the same files, all identical (see
    `repairable_group`), to rewrite the paths of a folder that moved."""
    if isinstance(artifact, TritonHostModule):
        return [
            FileWrite(root.path(f"{artifact.cache_key}/{f.name}"), blob=f.blob, size=f.size) for f in artifact.files
        ]
    if isinstance(artifact, TritonAutotune):
        path = root.path(f"{artifact.cache_key}/{artifact.fn_name}{_AUTOTUNE}")
        return [FileWrite(path, data=render_autotune(artifact))]
    writes = [FileWrite(root.path(f"{artifact.cache_key}/{f.name}"), blob=f.blob, size=f.size) for f in artifact.files]
    folder = os.path.dirname(root.path(f"{artifact.cache_key}/{artifact.name}{_JSON}"))
    writes.append(
        FileWrite(
            root.path(f"{artifact.cache_key}/{_GROUP_PREFIX}{artifact.name}{_JSON}"),
            data=render_group(folder, group_children(artifact)),
            last=True,
            replace=True,
        )
    )
    return writes


def group_children(artifact: TritonKernel) -> list[str]:
    """The files a kernel's group file lists: its recorded group, else every file."""
    return list(artifact.group) if artifact.group is not msgspec.UNSET else sorted(f.name for f in artifact.files)


def repairable_group(artifact: TritonKernel, existing: bytes) -> bool:
    """Whether an existing group file lists exactly the kernel's group (only its absolute paths
    may differ): then rewriting it for this folder changes nothing Triton loads."""
    try:
        children = load_json(existing, f"{artifact.cache_key}/{_GROUP_PREFIX}{artifact.name}{_JSON}")["child_paths"]
    except (AtpackError, KeyError, TypeError):
        return False
    group = group_children(artifact)
    return isinstance(children, dict) and len(children) == len(group) and set(children) == set(group)


def metadata_blob(artifact: TritonKernel) -> str:
    """The blob of the kernel's metadata file (``<name>.json``, which every kernel has), to be
    checked with `check_metadata` before any of the kernel's files is written."""
    return next(f.blob for f in artifact.files if f.name == f"{artifact.name}{_JSON}")


def check_metadata(artifact: TritonKernel, data: bytes) -> None:
    """Refuse a kernel whose metadata is not a JSON object naming the kernel: Triton loads the
    function that the metadata names from the binary, whatever the files are called."""
    where = f"{artifact.cache_key}/{artifact.name}{_JSON}"
    if len(data) > MAX_METADATA_SIZE:
        raise LimitError(f"{where}: kernel metadata of {len(data)} bytes, over the limit of {MAX_METADATA_SIZE}")
    metadata = load_json(data, where)
    if not isinstance(metadata, dict):
        raise CacheFileError(f"{where}: kernel metadata is a JSON {type(metadata).__name__}, not an object")
    named = metadata.get("name")
    truncated = len(artifact.name) == _NAME_LIMIT and isinstance(named, str) and named.startswith(artifact.name)
    if named != artifact.name and not truncated:
        raise UnsafeContentError(f"{where}: the metadata names kernel {_quoted(named)}, not {artifact.name!r}")


def _quoted(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


# --------------------------------------------------------------------------- kinds


def _collect(source: Source) -> Iterator[Collected]:
    return collect(source.root, source.env, source.add_blob, binaries_only=source.binaries_only, include=source.include)


T = TypeVar("T", TritonAutotune, TritonKernel, TritonHostModule)


class _InTritonFolders(Kind[T]):
    """A kind of Triton's cache folders: read by one walk of each, written by `files`."""

    folder = "triton"

    def __init__(self) -> None:
        super().__init__(_collect)

    def files(self, artifact: T, root: CacheDir) -> list[FileWrite]:
        return files(artifact, root)


class _Autotune(_InTritonFolders[TritonAutotune]):
    artifact = TritonAutotune

    def never(self, artifact: TritonAutotune) -> str:
        for timed in artifact.configs_timings:
            c = timed.config
            ctas, maxnreg = _given(c.num_ctas, 1), _given(c.maxnreg)
            if problem := triton_config_problem(c.num_warps, c.num_stages, ctas, maxnreg, c.kwargs):
                return f"not a config Triton runs: {problem}"
        return ""

    def time(self, artifact: TritonAutotune) -> float | None:
        """The fastest median."""
        medians = [ct.timings[0] for ct in artifact.configs_timings if ct.timings and ct.timings[0] is not None]
        return min(medians) if medians else None

    def show(self, artifact: TritonAutotune, shown: Shown) -> None:
        shown.candidates += len(artifact.configs_timings)
        chosen = artifact.best()
        times = [
            (_config(ct.config), ct.timings[0])
            for ct in artifact.configs_timings
            if ct.timings and ct.timings[0] is not None
        ]
        best = _config(chosen) if chosen else "-"
        shown.autotunes.append({"fn": artifact.fn_name, "key": list(artifact.tuning_key), "times": times, "best": best})


def _given(value: Any, default: Any = None) -> Any:
    return default if value is msgspec.UNSET else value


def _config(c: TritonConfig) -> str:
    return config_text(c.kwargs, c.num_warps, c.num_stages)


class _Kernel(_InTritonFolders[TritonKernel]):
    artifact = TritonKernel

    def check_blob(self, artifact: TritonKernel) -> str | None:
        return metadata_blob(artifact)

    def check(self, artifact: TritonKernel, data: bytes) -> None:
        check_metadata(artifact, data)

    def repairable(self, artifact: TritonKernel, existing: bytes) -> bool:
        return repairable_group(artifact, existing)

    def says(self, artifact: TritonKernel, small_files: Mapping[str, bytes]) -> dict[str, str]:
        return evidence.kernel_says(artifact, small_files)

    def show(self, artifact: TritonKernel, shown: Shown) -> None:
        size = sum(f.size for f in artifact.files)
        shown.kernels.append(
            {"name": artifact.name, "key": artifact.cache_key, "files": len(artifact.files), "bytes": size}
        )


class _HostModule(_InTritonFolders[TritonHostModule]):
    artifact = TritonHostModule

    def says(self, artifact: TritonHostModule, small_files: Mapping[str, bytes]) -> dict[str, str]:
        return evidence.host_module_says(artifact)


KINDS: tuple[Kind[Any], ...] = (_Autotune(), _Kernel(), _HostModule())
"""Triton's kinds (`atpack.kinds`): read by one walk of each Triton cache folder."""
