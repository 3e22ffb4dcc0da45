"""The data model: artifact kinds, the environment they are valid in, the manifest of a pack.

Every artifact is a frozen msgspec struct in one tagged union; the tag (`kind`) names the
kind and its schema version, e.g. ``"triton.autotune/1"``. A released kind's schema never
changes: a change makes a new version of the kind, which older readers keep on rewrite and
skip on use (see `UnknownArtifact`).

Cache files whose byte layout matters (JSON objects written by torch and triton) keep the
order of their keys: ordered maps are stored as lists of ``[key, value]`` pairs, and keys
an artifact does not type are kept, in order, in its ``extra`` field.

A pack is untrusted input, so each kind also checks what its fields may hold when it is built
or decoded (`__post_init__`; msgspec reports a refusal as a `ValidationError`): a data kind
names only files that hold data (a compiled kernel's IR and binary, never a host module, a
Python file or a pickle), and a free-form field never repeats or shadows a typed one, so what
`atpack inspect` shows is exactly what populate writes.
"""

from __future__ import annotations

import dataclasses
import os
import typing
from collections.abc import Iterable, Iterator
from typing import Annotated, Any, ClassVar, NoReturn, Union

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType

from .digest import Digest, canonical, digest_bytes, is_digest

__all__ = [
    "ARTIFACT_TYPES",
    "Artifact",
    "ChoiceTiming",
    "Environment",
    "GemmEntry",
    "GemmSystem",
    "InductorBestConfig",
    "InductorGemmTimings",
    "InductorKernelPerf",
    "InductorLocalValues",
    "KERNEL_SUFFIXES",
    "KernelFile",
    "KeyComponent",
    "KeyComponents",
    "LookupKey",
    "LocalValue",
    "MEGACACHE_TYPES",
    "MAX_EXTRA_DEPTH",
    "Manifest",
    "MegacacheAotAutograd",
    "MegacacheAutotune",
    "MegacacheEntry",
    "MegacacheInductor",
    "MegacacheOther",
    "MegacachePgo",
    "MegacachePrecompile",
    "Scalar",
    "TritonAutotune",
    "TritonConfig",
    "TritonConfigTiming",
    "TritonHostModule",
    "TritonKernel",
    "UnknownArtifact",
    "artifact_digest",
    "manifest_digest",
]

Scalar = Union[int, float, str, bool, None]
"""A JSON scalar: what block sizes, tuning-key entries and option values are."""

Timing = Annotated[
    float | None,
    Meta(description="milliseconds; null stands for a non-finite time (a candidate that failed)"),
]

Params = tuple[tuple[str, Scalar], ...]
"""An ordered map of names to scalars, stored as ``[name, value]`` pairs."""

Extra = tuple[tuple[str, Any], ...]
"""An ordered map of names to any JSON values: the keys an artifact does not type."""

RelPath = Annotated[str, Meta(max_length=512)]
CacheKey = Annotated[str, Meta(pattern=r"^[A-Za-z0-9_-]{16,128}(?!\n)$", description="a cache folder name")]
FileName = Annotated[
    str,
    Meta(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.+-]{0,254}(?!\n)$", description="a plain file name, no folders"),
]
Hex64 = Annotated[str, Meta(pattern=r"^[0-9a-f]{64}(?!\n)$")]
Size = Annotated[int, Meta(ge=0)]

MAX_EXTRA_DEPTH = 32
"""How deeply JSON values in an ``extra`` field may nest (torch and triton write scalars and
flat objects there): deeper values would make Python's recursive JSON code fail later."""

KERNEL_SUFFIXES = (
    ".json",
    ".source",
    ".ttir",
    ".ttgir",
    ".glir",
    ".llir",
    ".ptx",
    ".cubin",
    ".amdgcn",
    ".hsaco",
    ".spv",
    ".zebin",
)
"""What Triton's compiler writes into a kernel's cache folder after the kernel's name: its
metadata, its source, each stage's IR and its binary (NVIDIA, AMD and Intel backends). All
data: nothing there is loaded as host code."""


class Environment(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    """What must hold on a machine for an artifact to be valid there.

    A field left as None was not recorded and is not checked. Each artifact kind names the
    fields it depends on (`Artifact.depends_on`). Validators added after format 1.0 go in
    `extra`; a reader that does not know one refuses to vouch for the artifact.
    """

    torch_version: str | None = None
    torch_key: Hex64 | None = None
    triton_version: str | None = None
    triton_key: str | None = None
    backend_hash: str | None = None
    device_name: str | None = None
    compute_capability: str | None = None
    cuda_version: str | None = None
    hip_version: str | None = None
    python_abi: str | None = None
    platform: str | None = None
    cache_key_tag: str | None = None
    extra: dict[str, str] = {}

    @property
    def digest(self) -> str:
        return digest_bytes(canonical(self))


class Artifact(Struct, tag_field="kind", frozen=True, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    """Base of every artifact kind. `env` is the digest of its `Environment`."""

    env: Digest

    kind: ClassVar[str] = ""
    """The kind's tag, e.g. ``"triton.autotune/1"`` (set for each kind below)."""

    runs_code: ClassVar[str] = ""
    """What code loading this artifact runs on the host ("" for data): such artifacts are
    populated only when the caller trusts them."""

    depends_on: ClassVar[tuple[str, ...]] = ()
    """The `Environment` fields this kind is valid under."""

    requires: ClassVar[tuple[str, ...]] = ()
    """Those of `depends_on` that its environment must record, the release that made it: without
    them nothing says where the artifact is valid, and populate skips it. (Device fields are
    checked where recorded: a machine whose GPU atpack cannot name, a ROCm one say, records none.)"""

    @property
    def key(self) -> str:
        """What identifies the result within its kind and environment: two artifacts with the
        same kind, env and key are two answers to one question. Kinds override it."""
        return artifact_digest(self)

    def blob_refs(self) -> Iterator[str]:
        """The digests of the blobs this artifact references."""
        return iter(())

    def blob_hint(self, digest: str) -> str:
        """How a writer should group this blob with similar ones (see `PackWriter.add_blob`)."""
        return ""

    def summary(self) -> str:
        """A short human-readable description."""
        return self.key


class InductorBestConfig(Artifact, tag="inductor.best_config/1", frozen=True):
    """One Inductor ``.best_config`` file: the chosen config of a pointwise, reduction or
    persistent-reduction kernel (heuristics or coordinate descent).

    `path` is relative to the Inductor cache folder: ``<xx>/<k2>.best_config``, where `k2`
    hashes the kernel module name, `cache_key_tag` and `torch_key()`.
    """

    path: Annotated[RelPath, Meta(pattern=r"^[a-z0-9]{2}/[0-9a-f]{64}\.best_config(?!\n)$")]
    kwargs: Params
    num_warps: int
    num_stages: int
    configs_hash: str | UnsetType = UNSET
    found_by_coordesc: bool | UnsetType = UNSET
    time_taken_ms: int | float | UnsetType = UNSET
    triton_cache_hash: str | UnsetType | None = UNSET
    extra: Extra = ()

    depends_on: ClassVar[tuple[str, ...]] = ("torch_version", "torch_key", "cache_key_tag", "device_name")
    requires: ClassVar[tuple[str, ...]] = ("torch_version",)

    def __post_init__(self) -> None:
        # one JSON object holds kwargs, the typed fields and extra: a name in two of them, or
        # twice in one, would show one value here and write another
        kwargs = _unique_names(self, "kwargs", self.kwargs, _BEST_CONFIG_FIELDS)
        if self.extra:
            _unique_names(self, "extra", self.extra, _BEST_CONFIG_FIELDS | kwargs)
            _shallow(self, "extra", self.extra)

    @property
    def key(self) -> str:
        return self.path

    def summary(self) -> str:
        params = " ".join(f"{k}={v}" for k, v in self.kwargs)
        how = "coordesc" if self.found_by_coordesc is True else "heuristic"
        return f"{self.path} {params} warps={self.num_warps} stages={self.num_stages} ({how})"


class InductorKernelPerf(Artifact, tag="inductor.kernel_perf/1", frozen=True):
    """One Inductor ``.kernel_perf`` file: the measured time of a fused kernel, used to decide
    fusions (benchmark_fusion, combo kernels). Two values for combo kernels (time, clone time)."""

    path: Annotated[RelPath, Meta(pattern=r"^[a-z0-9]{2}/c[a-z0-9]{51}\.kernel_perf(?!\n)$")]
    timings: Annotated[tuple[Timing, ...], Meta(min_length=1, max_length=2)]

    depends_on: ClassVar[tuple[str, ...]] = ("torch_version", "torch_key", "device_name")
    requires: ClassVar[tuple[str, ...]] = ("torch_version",)

    @property
    def key(self) -> str:
        return self.path

    def summary(self) -> str:
        return f"{self.path} {' '.join(_ms(t) for t in self.timings)}"


class GemmSystem(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    """The ``system`` record of a GEMM timing file; `hash` names the file."""

    hash: Hex64
    device_name: str | UnsetType | None = UNSET
    triton: str | UnsetType = UNSET
    cuda: str | UnsetType | None = UNSET
    hip: str | UnsetType | None = UNSET


GemmText = Annotated[str, Meta(max_length=65536)]
"""A GEMM timing file's strings (an op, its inputs' layouts, a candidate's key): far below 64 KiB
in torch's own files."""


class ChoiceTiming(Struct, frozen=True, array_like=True, forbid_unknown_fields=True):
    """One benchmarked GEMM candidate: its hash key and time."""

    choice: GemmText
    ms: Timing


class GemmEntry(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The timings of every candidate of one GEMM (op, input layouts, float32 precision)."""

    op: GemmText
    inputs: GemmText
    precision: GemmText
    timings: tuple[ChoiceTiming, ...]


class InductorGemmTimings(Artifact, tag="inductor.gemm_timings/1", frozen=True):
    """Inductor's max-autotune GEMM timing cache (``cache/<system hash>``), entries in file
    order. Populate merges it entry by entry into what is already there."""

    system: GemmSystem
    entries: tuple[GemmEntry, ...]

    def __post_init__(self) -> None:
        # the file nests timings by op, inputs and precision, then candidate: a repeat would
        # be collapsed into one value when written
        gemms: set[tuple[str, str, str]] = set()
        for e in self.entries:
            gemm = (e.op, e.inputs, e.precision)
            if gemm in gemms:
                _refuse(self, "entries", f"the GEMM {gemm!r} is listed twice")
            gemms.add(gemm)
            repeated = _repeated(t.choice for t in e.timings)
            if repeated is not None:
                _refuse(self, "entries", f"candidate {repeated!r} of the GEMM {gemm!r} is listed twice")

    depends_on: ClassVar[tuple[str, ...]] = (
        "triton_key",
        "triton_version",
        "device_name",
        "cuda_version",
        "hip_version",
    )
    requires: ClassVar[tuple[str, ...]] = ("triton_version",)

    @property
    def key(self) -> str:
        return self.system.hash

    def summary(self) -> str:
        n = sum(len(e.timings) for e in self.entries)
        return f"cache/{self.system.hash[:12]}… {len(self.entries)} GEMMs, {n} timings"


class LocalValue(Struct, frozen=True, array_like=True, forbid_unknown_fields=True):
    """One value torch's `LocalCache.set_value` recorded under one key."""

    key: Annotated[str, Meta(max_length=4096)]
    value: bool | float


class InductorLocalValues(Artifact, tag="inductor.local_values/1", frozen=True):
    """The other entries of the file of `InductorGemmTimings` (``cache/<system hash>``): what
    Inductor's `LocalCache.set_value` records beside the GEMM timings, one value per key (the
    padding pass's benchmark times and decisions, the scheduler's fusion benchmark times, ...),
    in file order. Populate adds the missing ones to the file, never changing one there."""

    system: GemmSystem
    values: Annotated[tuple[LocalValue, ...], Meta(min_length=1)]

    def __post_init__(self) -> None:
        repeated = _repeated(v.key for v in self.values)
        if repeated is not None:
            _refuse(self, "values", f"the key {repeated!r} is listed twice")

    depends_on: ClassVar[tuple[str, ...]] = InductorGemmTimings.depends_on
    requires: ClassVar[tuple[str, ...]] = InductorGemmTimings.requires

    @property
    def key(self) -> str:
        return self.system.hash

    def summary(self) -> str:
        return f"cache/{self.system.hash[:12]}… {len(self.values)} values"


class TritonConfig(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    """A `triton.Config` as Triton writes it (``config.__dict__``)."""

    kwargs: Params
    num_warps: int
    num_ctas: int | UnsetType = UNSET
    num_stages: int
    maxnreg: int | UnsetType | None = UNSET
    extra: Extra = ()

    NULL_EXTRA: ClassVar[tuple[str, ...]] = ("pre_hook", "ir_override")
    """The other attributes of a `triton.Config` that Triton 3.4+ writes (``config.__dict__``),
    always null in a disk-cache result: Triton does not cache configs with a pre-hook, and a
    non-null ``ir_override`` names a local file of IR that Triton would compile instead."""

    def check(self, where: Artifact, field: str) -> None:
        """Triton rebuilds the config with ``Config(**config_dict)`` and launches the kernel
        with its kwargs merged into the typed options: no name repeats or shadows another, and
        nothing but data is added."""
        _unique_names(where, f"{field}.kwargs", self.kwargs, _TRITON_CONFIG_FIELDS, "the option Triton launches with")
        _no_repeats(where, f"{field}.extra", [name for name, _ in self.extra])
        for name, value in self.extra:
            if name not in self.NULL_EXTRA:
                _refuse(where, f"{field}.extra", f"{name!r} may not be here (only {' and '.join(self.NULL_EXTRA)})")
            if value is not None:
                _refuse(where, f"{field}.extra", f"{name!r} must be null, not {_brief(value)}")


class TritonConfigTiming(Struct, frozen=True, array_like=True, forbid_unknown_fields=True):
    """One candidate config and its measured times ([median, p20, p80] in Triton 3.4+)."""

    config: TritonConfig
    timings: tuple[Timing, ...]


class TritonAutotune(Artifact, tag="triton.autotune/1", frozen=True):
    """One ``@triton.autotune`` disk-cache result:
    ``<triton cache>/<cache_key>/<fn_name>.autotune.json``."""

    cache_key: CacheKey
    fn_name: Annotated[str, Meta(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,149}(?!\n)$")]
    tuning_key: tuple[Scalar, ...]
    configs_timings: tuple[TritonConfigTiming, ...]
    extra: Extra = ()

    depends_on: ClassVar[tuple[str, ...]] = (
        "triton_version",
        "triton_key",
        "backend_hash",
        "compute_capability",
        "device_name",
        "python_abi",
    )
    requires: ClassVar[tuple[str, ...]] = ("triton_version",)

    def __post_init__(self) -> None:
        if self.extra:
            _unique_names(self, "extra", self.extra, _AUTOTUNE_FIELDS)
            _shallow(self, "extra", self.extra)
        for i, ct in enumerate(self.configs_timings):
            ct.config.check(self, f"configs_timings[{i}].config")

    @property
    def key(self) -> str:
        return f"{self.cache_key}/{self.fn_name}"

    def best(self) -> TritonConfig | None:
        """The config Triton picks from this file: the smallest timings, compared as lists."""
        timed = [ct for ct in self.configs_timings if all(t is not None for t in ct.timings)]
        if not timed:
            return None
        return min(timed, key=lambda ct: tuple(t or 0.0 for t in ct.timings)).config

    def summary(self) -> str:
        best = self.best()
        chosen = " ".join(f"{k}={v}" for k, v in best.kwargs) if best else "-"
        return f"{self.fn_name} key={list(self.tuning_key)} best: {chosen} of {len(self.configs_timings)}"


class KernelFile(Struct, frozen=True, array_like=True, forbid_unknown_fields=True):
    """One file of a compiled kernel folder, stored as a blob."""

    name: FileName
    blob: Digest
    size: Size


class TritonKernel(Artifact, tag="triton.kernel/1", frozen=True):
    """A compiled Triton kernel folder ``<triton cache>/<cache_key>/``.

    The ``__grp__<name>.json`` file is not stored: it names absolute paths, so populate
    writes it afresh for the target folder, listing `group` (in that order) where present.
    """

    cache_key: CacheKey
    name: Annotated[str, Meta(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,254}(?!\n)$")]
    files: Annotated[tuple[KernelFile, ...], Meta(min_length=1)]
    group: tuple[FileName, ...] | UnsetType = UNSET

    depends_on: ClassVar[tuple[str, ...]] = (
        "triton_version",
        "triton_key",
        "backend_hash",
        "compute_capability",
        "python_abi",
    )
    requires: ClassVar[tuple[str, ...]] = ("triton_version",)

    def __post_init__(self) -> None:
        # a data kind, populated without trust: only what Triton's compiler writes for this
        # kernel (Triton loads a native module from any key's folder by its name)
        names = [f.name for f in self.files]
        for name in names:
            suffix = name[len(self.name) :]
            if not name.startswith(self.name) or suffix not in KERNEL_SUFFIXES or name.startswith("__grp__"):
                _refuse(
                    self,
                    "files",
                    f"{name!r} is not a file Triton's compiler writes for kernel {self.name!r} "
                    f"(its name followed by one of {' '.join(KERNEL_SUFFIXES)})",
                )
        _no_repeats(self, "files", names)
        if f"{self.name}.json" not in names:
            _refuse(self, "files", f"the kernel's metadata {self.name}.json is missing")
        if self.group is not UNSET:
            _no_repeats(self, "group", self.group)
            for child in self.group:
                if child not in names:
                    _refuse(self, "group", f"{child!r} is not one of the kernel's files")
            if f"{self.name}.json" not in self.group:
                _refuse(self, "group", f"the kernel's metadata {self.name}.json is not listed")

    @property
    def key(self) -> str:
        return self.cache_key

    def blob_refs(self) -> Iterator[str]:
        return (f.blob for f in self.files)

    def blob_hint(self, digest: str) -> str:
        return next((os.path.splitext(f.name)[1] for f in self.files if f.blob == digest), "")

    def summary(self) -> str:
        size = sum(f.size for f in self.files)
        return f"{self.cache_key[:12]}… {self.name} ({len(self.files)} files, {size:,} bytes)"


class MegacacheEntry(Artifact, frozen=True):
    """One entry of a PyTorch Megacache blob (`torch.compiler.save_cache_artifacts`): its
    `type`, `key` and `content` (a blob), and `seq`, its position in the blob, which keeps the
    order torch replays entries in (a later entry for the same key wins)."""

    entry_key: Annotated[str, Meta(max_length=4096)] = msgspec.field(name="key")
    seq: Annotated[int, Meta(ge=0)]
    content: Digest
    size: Size

    megacache_type: ClassVar[str] = ""
    runs_code: ClassVar[str] = "a pickle, unpickled when loaded"

    depends_on: ClassVar[tuple[str, ...]] = (
        "torch_version",
        "torch_key",
        "triton_version",
        "device_name",
        "cuda_version",
        "hip_version",
        "python_abi",
        "cache_key_tag",
    )
    requires: ClassVar[tuple[str, ...]] = ("torch_version", "python_abi")

    @property
    def key(self) -> str:
        return f"{self.entry_key}@{self.content[7:19]}"

    @property
    def type_name(self) -> str:
        return self.megacache_type

    def blob_refs(self) -> Iterator[str]:
        return iter((self.content,))

    def blob_hint(self, digest: str) -> str:
        return f"megacache.{self.type_name}"

    def summary(self) -> str:
        trust = "pickle" if self.runs_code else "data"
        return f"#{self.seq} {self.type_name} {self.entry_key} ({self.size:,} bytes, {trust})"


class MegacacheAutotune(MegacacheEntry, tag="megacache.autotune/1", frozen=True):
    """A Megacache ``autotune`` entry: a ``.best_config`` file's JSON (data, not code)."""

    megacache_type: ClassVar[str] = "autotune"
    runs_code: ClassVar[str] = ""
    depends_on: ClassVar[tuple[str, ...]] = InductorBestConfig.depends_on
    requires: ClassVar[tuple[str, ...]] = InductorBestConfig.requires


class MegacacheInductor(MegacacheEntry, tag="megacache.inductor/1", frozen=True):
    """A Megacache ``inductor`` entry: a pickled compiled FX graph (host code)."""

    megacache_type: ClassVar[str] = "inductor"


class MegacacheAotAutograd(MegacacheEntry, tag="megacache.aot_autograd/1", frozen=True):
    """A Megacache ``aot_autograd`` entry: a pickled AOTAutograd result (host code)."""

    megacache_type: ClassVar[str] = "aot_autograd"


class MegacachePgo(MegacacheEntry, tag="megacache.pgo/1", frozen=True):
    """A Megacache ``pgo`` entry: pickled profile-guided dynamic-shape decisions."""

    megacache_type: ClassVar[str] = "pgo"


class MegacachePrecompile(MegacacheEntry, tag="megacache.precompile/1", frozen=True):
    """A Megacache ``precompile`` entry: a pickled precompiled artifact (host code)."""

    megacache_type: ClassVar[str] = "precompile"


class MegacacheOther(MegacacheEntry, tag="megacache.other/1", frozen=True):
    """A Megacache entry of a type this version does not know by name; treated as code."""

    type: Annotated[str, Meta(pattern=r"^[A-Za-z0-9_.-]{1,64}(?!\n)$")]

    @property
    def type_name(self) -> str:
        return self.type


MEGACACHE_TYPES: dict[str, type[MegacacheEntry]] = {
    t.megacache_type: t
    for t in (MegacacheAutotune, MegacacheInductor, MegacacheAotAutograd, MegacachePgo, MegacachePrecompile)
}


class TritonHostModule(Artifact, tag="triton.host_module/1", frozen=True):
    """A native module Triton compiled for the host, ``<triton cache>/<cache_key>/<name>.so``
    (its CUDA utilities, a kernel launcher): built with a C compiler on first use, which a warm
    start can skip. Loading it runs its code, so it is populated only when trusted."""

    cache_key: CacheKey
    files: Annotated[tuple[KernelFile, ...], Meta(min_length=1)]

    runs_code: ClassVar[str] = "a native host module, loaded into the process"
    depends_on: ClassVar[tuple[str, ...]] = ("triton_version", "triton_key", "python_abi", "platform")
    requires: ClassVar[tuple[str, ...]] = ("triton_version", "python_abi", "platform")

    def __post_init__(self) -> None:
        names = [f.name for f in self.files]
        for name in names:
            if not name.endswith(".so"):
                _refuse(self, "files", f"{name!r} is not a native module (.so)")
        _no_repeats(self, "files", names)

    @property
    def key(self) -> str:
        return self.cache_key

    def blob_refs(self) -> Iterator[str]:
        return (f.blob for f in self.files)

    def blob_hint(self, digest: str) -> str:
        return ".so"

    def summary(self) -> str:
        return f"{self.cache_key[:12]}… {', '.join(f.name for f in self.files)} (host code)"


LookupCache = typing.Literal["fx_graph", "aot_autograd", "autotune", "gemm", "triton_kernel", "triton_autotune"]
"""A cache whose lookups atpack records (`atpack.lookups`)."""


class KeyComponent(Struct, frozen=True, array_like=True, forbid_unknown_fields=True):
    """One part of a cache key: its name (``inductor_config[max_autotune]``, ``source``), the
    hash torch or Triton gave it (or atpack, where they give none), and its value as text (cut)."""

    name: Annotated[str, Meta(max_length=512)]
    hash: Annotated[str, Meta(max_length=128)]
    shown: Annotated[str, Meta(max_length=1024)]


class LookupKey(Artifact, tag="lookup.key/1", frozen=True):
    """One key a cache was looked up or filled with in the capturing process (format 1.2): what
    `atpack explain` compares a later miss with. Its components are a blob (a JSON array of
    `KeyComponent`), so that the many a graph's key lists, repeated from key to key, compress
    with the pack's frames rather than weigh on its index. Populate writes nothing for it."""

    cache: LookupCache
    lookup: Annotated[str, Meta(min_length=1, max_length=512)]
    components: Digest
    count: Annotated[int, Meta(ge=0, le=8192)]
    """How many components the blob lists."""
    name: Annotated[str, Meta(max_length=512)] = ""

    @property
    def key(self) -> str:
        return f"{self.cache}:{self.lookup}"

    def blob_refs(self) -> Iterator[str]:
        return iter((self.components,))

    def blob_hint(self, digest: str) -> str:
        return f"lookup.{self.cache}"

    def summary(self) -> str:
        named = f" {self.name}" if self.name else ""
        return f"{self.cache} {self.lookup}{named}: {self.count} components"


KeyComponents = Annotated[tuple[KeyComponent, ...], Meta(max_length=8192)]
"""The blob of a `LookupKey`."""


AnyArtifact = Union[
    InductorBestConfig,
    InductorKernelPerf,
    InductorGemmTimings,
    InductorLocalValues,
    TritonAutotune,
    TritonKernel,
    TritonHostModule,
    MegacacheAutotune,
    MegacacheInductor,
    MegacacheAotAutograd,
    MegacachePgo,
    MegacachePrecompile,
    MegacacheOther,
    LookupKey,
]
"""The kinds of format 1.0, in one tagged union (the schema in `spec/schema/` is generated from
it). Packs are read with these and every kind registered since (`atpack.kinds`), whose behaviour
lives in its adapter module."""

ARTIFACT_TYPES: tuple[type[Artifact], ...] = typing.get_args(AnyArtifact)

for _kind in ARTIFACT_TYPES:
    _kind.kind = str(_kind.__struct_config__.tag)

KNOWN_KINDS: frozenset[str] = frozenset(t.kind for t in ARTIFACT_TYPES)
"""The tags of format 1.0's kinds (`atpack.kinds.known` also knows those registered since)."""


class UnknownArtifact:
    """An artifact of a kind (or kind version) this version of atpack does not know.

    Kept byte for byte on rewrite, skipped on populate. Its blobs are the digests that appear
    as JSON strings anywhere in it (`spec/FORMAT.md`, section "Unknown kinds").
    """

    __slots__ = ("env", "kind", "raw")

    def __init__(self, kind: str, env: str, raw: bytes) -> None:
        self.kind = kind
        self.env = env
        self.raw = raw

    @property
    def key(self) -> str:
        return digest_bytes(self.raw)

    def blob_refs(self) -> Iterator[str]:
        return _digests_in(msgspec.json.decode(self.raw))

    def summary(self) -> str:
        return f"{len(self.raw)} bytes of a kind this atpack version does not know"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, UnknownArtifact) and other.raw == self.raw

    def __hash__(self) -> int:
        return hash(self.raw)

    def __repr__(self) -> str:
        return f"UnknownArtifact(kind={self.kind!r}, {len(self.raw)} bytes)"


def _digests_in(value: Any) -> Iterator[str]:
    """The digest strings in a JSON value, in document order (a loop, not recursion: an
    unknown kind may nest as deeply as the decoder allows)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if is_digest(item):
                yield item
        elif isinstance(item, list):
            stack.extend(reversed(item))
        elif isinstance(item, dict):
            stack.extend(reversed([v for k, v in item.items() if k != "env"]))


# --------------------------------------------------------------------------- content checks


def _refuse(where: Artifact | str, field: str, problem: str) -> NoReturn:
    """Refuse content, naming the artifact (or struct) and the field. msgspec turns the
    ValueError into a ValidationError, which the reader reports as a `FormatError`."""
    what = where if isinstance(where, str) else f"{where.kind} {where.key}"
    raise ValueError(f"{what}: {field}: {problem}")


def _repeated(names: Iterable[str]) -> str | None:
    """The first name that appears twice, if any."""
    seen: set[str] = set()
    for name in names:
        if name in seen:
            return name
        seen.add(name)
    return None


def _no_repeats(where: Artifact | str, field: str, names: list[str] | tuple[str, ...]) -> None:
    if len(set(names)) != len(names):
        _refuse(where, field, f"{_repeated(names)!r} is listed twice")


def _unique_names(
    where: Artifact | str,
    field: str,
    pairs: tuple[tuple[str, Any], ...],
    taken: frozenset[str],
    shadowed: str = "another key of the same JSON object",
) -> frozenset[str]:
    """The names of an ordered map stored as pairs, checked: each once, none of `taken`."""
    names = [name for name, _ in pairs]
    _no_repeats(where, field, names)
    if not taken.isdisjoint(names):
        shadow = next(name for name in names if name in taken)
        _refuse(where, field, f"{shadow!r} would shadow {shadowed}")
    return frozenset(names)


def _typed_fields(struct: type[Struct], untyped: tuple[str, ...]) -> frozenset[str]:
    """The names a struct gives a field of its own, as they appear in the file it renders."""
    return frozenset(struct.__struct_fields__) - {"env", *untyped}


_BEST_CONFIG_FIELDS = _typed_fields(InductorBestConfig, ("path", "kwargs", "extra"))
_TRITON_CONFIG_FIELDS = _typed_fields(TritonConfig, ("kwargs", "extra")) | set(TritonConfig.NULL_EXTRA)
_AUTOTUNE_FIELDS = frozenset(("key", "configs_timings"))  # the keys of an autotune file besides extra's


def _shallow(where: Artifact, field: str, pairs: Extra) -> None:
    for name, value in pairs:
        if _depth(value) > MAX_EXTRA_DEPTH:
            _refuse(where, field, f"{name!r} nests deeper than {MAX_EXTRA_DEPTH} levels")


def _depth(value: Any) -> int:
    """How deeply a JSON value nests (0 for a scalar), without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (list, tuple, dict)):
            deepest = max(deepest, depth)
            if deepest > MAX_EXTRA_DEPTH:
                break
            stack.extend((v, depth + 1) for v in (item.values() if isinstance(item, dict) else item))
    return deepest


def _brief(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def artifact_digest(artifact: Artifact | UnknownArtifact) -> str:
    """The content digest of an artifact: sha256 of its canonical encoding."""
    if isinstance(artifact, UnknownArtifact):
        return digest_bytes(artifact.raw)
    return digest_bytes(canonical(artifact))


@dataclasses.dataclass(frozen=True)
class Manifest:
    """What a pack holds: its artifacts (sorted by digest), their environments (by digest)
    and the pack's annotations.

    Annotations are free-form (reverse-DNS keys, e.g. ``org.example.model``) and do not
    enter the pack's digest, except those whose keys are listed in `digested_annotations`.
    """

    environments: dict[str, Environment]
    artifacts: tuple[Artifact | UnknownArtifact, ...]
    annotations: dict[str, str]
    digested_annotations: tuple[str, ...] = ()

    @property
    def digest(self) -> str:
        """The pack's content digest: its artifacts and digested annotations, not its bytes."""
        return manifest_digest(
            (artifact_digest(a) for a in self.artifacts),
            {k: self.annotations[k] for k in self.digested_annotations},
        )


def manifest_digest(artifact_digests: Iterable[str], digested_annotations: dict[str, str]) -> str:
    """sha256 of the canonical encoding of ``{"annotations": …, "artifacts": [sorted digests]}``."""
    return digest_bytes(canonical({"annotations": digested_annotations, "artifacts": sorted(artifact_digests)}))


def _ms(value: float | None) -> str:
    return "inf" if value is None else f"{value:.4g}"
