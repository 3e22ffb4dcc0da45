"""What artifacts say about the machine that made them, read from their own content, and where
that contradicts the environment a pack would record for them.

A pack records one environment per artifact; collection takes it from the packing machine (or
`--environment`). Caches copied from elsewhere (GPU workers' folders packed on a login node)
would then claim the packing machine: Triton kernels would populate onto machines they cannot
run on. Each kernel's metadata names its Triton version and GPU architecture, and a GEMM timing
file names its device, CUDA version and Triton build: where these disagree with the environment
to be recorded, collection refuses (`EnvironmentMismatchError`)."""

from __future__ import annotations

import collections
import json
from collections.abc import Iterable, Mapping

from .artifacts import Artifact, Environment, InductorGemmTimings, TritonKernel
from .errors import EnvironmentMismatchError

__all__ = ["check", "said_by"]

METADATA_READ = 1 << 16
"""Kernel metadata files kept for reading while collecting (a few KB each)."""


def said_by(artifact: Artifact, small_files: Mapping[str, bytes]) -> dict[str, str]:
    """The environment fields `artifact` states itself. `small_files` maps blob digests to the
    bytes of the kernel metadata files collected so far."""
    if isinstance(artifact, TritonKernel):
        metadata = next((f.blob for f in artifact.files if f.name == f"{artifact.name}.json"), None)
        raw = small_files.get(metadata) if metadata else None
        return _kernel_says(raw) if raw is not None else {}
    if isinstance(artifact, InductorGemmTimings):
        system = artifact.system
        said = {
            "device_name": system.device_name,
            "cuda_version": system.cuda,
            "hip_version": system.hip,
            "triton_key": system.triton,
        }
        return {field: value for field, value in said.items() if isinstance(value, str) and value}
    return {}


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


def check(stated: Iterable[tuple[Artifact, dict[str, str]]], env: Environment, whose: str) -> None:
    """Refuse, in one line, to record `env` (`whose`: "this machine's", "the given") for
    artifacts that state otherwise."""
    found: dict[tuple[str, str, str], list[Artifact]] = collections.defaultdict(list)
    for artifact, said in stated:
        for field, value in said.items():
            recorded = getattr(env, field)
            if not _same(field, value, recorded if isinstance(recorded, str) else None):
                found[field, value, _short(recorded) if recorded else "none"].append(artifact)
    if not found:
        return
    parts = [
        f"{len(artifacts)} {artifacts[0].kind} say {field} {_short(value)} where {whose} environment records {recorded}"
        for (field, value, recorded), artifacts in sorted(found.items())
    ]
    raise EnvironmentMismatchError(
        f"these caches were made elsewhere: {'; '.join(parts)} (pack them on the machine that made them, "
        "or give --environment with what they say)"
    )


def _same(field: str, said: str, recorded: str | None) -> bool:
    if recorded is None:
        return False
    if field == "triton_version":  # the same release, whatever local build label it carries
        return said.split("+")[0] == recorded.split("+")[0]
    return said == recorded


def _short(value: str) -> str:
    return repr(value if len(value) <= 24 else value[:21] + "...")
