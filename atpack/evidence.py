"""What artifacts say about the machine that made them, read from their own content, and where
that contradicts the environment a pack would record for them.

A pack records one environment per artifact; collection takes it from the packing machine (or
`--environment`). Caches copied from elsewhere (GPU workers' folders packed on a login node)
would then claim the packing machine: Triton kernels would populate onto machines they cannot
run on. Each kernel's metadata names its Triton version and GPU architecture, a GEMM timing
file names its device, CUDA version and Triton build, and a native module's file name the
Python it was built for (one function a kind, called by that kind's `Kind.says`). Where these disagree with the packing
machine, it is evidently not where they were made: collection records what the artifacts state
instead (`stated_environment`), nothing of the packing machine. Where they disagree with an
environment given by hand, or among themselves, it refuses (`EnvironmentMismatchError`)."""

from __future__ import annotations

import collections
import json
import re
from collections.abc import Iterable, Mapping

import msgspec

from .artifacts import Artifact, Environment, InductorGemmTimings, InductorLocalValues, TritonHostModule, TritonKernel
from .errors import EnvironmentMismatchError

__all__ = [
    "check",
    "contradictions",
    "describe",
    "gemm_timings_say",
    "host_module_says",
    "kernel_says",
    "stated_environment",
]

METADATA_READ = 1 << 16
"""Kernel metadata files kept for reading while collecting (a few KB each)."""


def kernel_says(artifact: TritonKernel, small_files: Mapping[str, bytes]) -> dict[str, str]:
    """What a compiled kernel's metadata file states. `small_files` maps blob digests to the
    bytes of the kernel metadata files collected so far."""
    metadata = next((f.blob for f in artifact.files if f.name == f"{artifact.name}.json"), None)
    raw = small_files.get(metadata) if metadata else None
    return _kernel_says(raw) if raw is not None else {}


def gemm_timings_say(artifact: InductorGemmTimings | InductorLocalValues) -> dict[str, str]:
    """What Inductor's local cache file's ``system`` record states."""
    system = artifact.system
    said = {
        "device_name": system.device_name,
        "cuda_version": system.cuda,
        "hip_version": system.hip,
        "triton_key": system.triton,
    }
    return {field: value for field, value in said.items() if isinstance(value, str) and value}


_EXTENSION = re.compile(r"\.(cpython-3\d+)(?:-(x86_64|aarch64|ppc64le|s390x)-linux-gnu)?\.so$")


def host_module_says(artifact: TritonHostModule) -> dict[str, str]:
    """A native module's file name carries the interpreter it was built for, as Python names
    extension modules (``cuda_utils.cpython-312-x86_64-linux-gnu.so``): its ABI tag and, on
    Linux, its platform in `sysconfig.get_platform()`'s spelling."""
    said: dict[str, str] = {}
    for file in artifact.files:
        if match := _EXTENSION.search(file.name):
            said["python_abi"] = match[1]
            if match[2]:
                said["platform"] = f"linux-{match[2]}"
    return said


def _kernel_says(raw: bytes) -> dict[str, str]:
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        return {}  # the kernel's own checks report bad metadata
    if not isinstance(data, dict):
        return {}
    said: dict[str, str] = {}
    if isinstance(version := data.get("triton_version"), str) and version:
        said["triton_version"] = version
    target = data.get("target")
    if isinstance(target, dict) and target.get("backend") == "cuda" and type(arch := target.get("arch")) is int:
        said["compute_capability"] = f"{arch // 10}.{arch % 10}"  # sm_90 → "9.0", as torch reports it
    return said


Found = dict[tuple[str, str, str], list[Artifact]]
"""Contradictions: (field, what artifacts say, what the environment records) → those artifacts."""


def contradictions(stated: Iterable[tuple[Artifact, dict[str, str]]], env: Environment, *, measured: bool) -> Found:
    """Where what artifacts state about where they were made differs from `env`. Where `env` was
    `measured` on this machine, a field it leaves unrecorded differs too (this machine has no such
    GPU); a field left out of an environment given by hand is only not checked."""
    found: Found = collections.defaultdict(list)
    for artifact, said in stated:
        for field, value in said.items():
            recorded = getattr(env, field)
            if recorded is None and not measured:
                continue
            if not _same(field, value, recorded if isinstance(recorded, str) else None):
                found[field, value, _short(recorded) if recorded else "none"].append(artifact)
    return dict(found)


def describe(found: Found, whose: str) -> str:
    """`found` in a few words (`whose`: "this machine's", "the given")."""
    return "; ".join(
        f"{len(artifacts)} {artifacts[0].kind} say {field} {_short(value)} where {whose} environment records {recorded}"
        for (field, value, recorded), artifacts in sorted(found.items())
    )


def check(stated: Iterable[tuple[Artifact, dict[str, str]]], env: Environment, whose: str, *, measured: bool) -> None:
    """Refuse, in one line, to record `env` (`whose`: "this machine's", "the given"; `measured`
    as for `contradictions`) for artifacts that state otherwise."""
    if found := contradictions(stated, env, measured=measured):
        raise EnvironmentMismatchError(
            f"these caches were made elsewhere: {describe(found, whose)} (pack them on the machine that made them, "
            "or give --environment with what they say)"
        )


def stated_environment(stated: Iterable[tuple[Artifact, dict[str, str]]]) -> Environment:
    """The environment the artifacts of one collection state together: each field as they state
    it, nothing else. Refused, in one line, where they disagree among themselves (caches of two
    machines collected as one)."""
    values: dict[str, dict[str, list[Artifact]]] = collections.defaultdict(lambda: collections.defaultdict(list))
    for artifact, said in stated:
        for field, value in said.items():
            values[field][value].append(artifact)
    disagreeing = {field: said for field, said in values.items() if len(said) > 1}
    if disagreeing:
        parts = [
            " and ".join(f"{len(arts)} {arts[0].kind} {_short(value)}" for value, arts in sorted(said.items()))
            for field, said in sorted(disagreeing.items())
        ]
        fields = ", ".join(sorted(disagreeing))
        raise EnvironmentMismatchError(
            f"these caches state different {fields}: {'; '.join(parts)} (caches of different machines: pack them apart)"
        )
    return msgspec.convert({field: next(iter(said)) for field, said in values.items()}, Environment)


def _same(field: str, said: str, recorded: str | None) -> bool:
    if recorded is None:
        return False
    if field == "triton_version":  # the same release, whatever local build label it carries
        return said.split("+")[0] == recorded.split("+")[0]
    return said == recorded


def _short(value: str) -> str:
    return repr(value if len(value) <= 24 else value[:21] + "...")
