"""Inductor's autotune results: ``.best_config`` and ``.kernel_perf`` files beside the
generated kernel modules, and the max-autotune GEMM timing file ``cache/<system hash>``.

Every file is rendered back exactly as torch writes it (``json.dumps`` of the same keys in
the same order), so a populated file is byte-identical to the collected one.
"""

from __future__ import annotations

import collections
import contextlib
import json
import logging
import math
import os
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Union

import msgspec

from .. import evidence
from ..artifacts import (
    ChoiceTiming,
    GemmEntry,
    GemmSystem,
    InductorBestConfig,
    InductorGemmTimings,
    InductorKernelPerf,
    InductorLocalValues,
    LocalValue,
)
from ..errors import CacheFileError, FileChangedMeanwhileError, FileCreatedMeanwhileError
from ..files import CacheDir, FileWrite
from ..kinds import Answer, Collected, Kind, Shown, Skipped, Source
from ..walk import Folder, open_cache
from .common import as_float, config_text, dumps, finite, load_json, to_artifact
from .configs import inductor_config_problem

__all__ = [
    "KINDS",
    "collect",
    "files",
    "merge_local_cache",
    "render_best_config",
    "render_gemm_timings",
    "render_kernel_perf",
    "best_config_problem",
]

log = logging.getLogger(__name__)

_SHARD = re.compile(r"^[a-z0-9]{2}$")
_GEMM_FILE = re.compile(r"^[0-9a-f]{64}$")
_Result = Union[InductorBestConfig, InductorKernelPerf, InductorGemmTimings, InductorLocalValues]
_BEST_CONFIG_FIELDS = (
    "num_warps",
    "num_stages",
    "configs_hash",
    "found_by_coordesc",
    "time_taken_ms",
    "triton_cache_hash",
)


# --------------------------------------------------------------------------- collect


def collect(root: str, env: str, *, include: Callable[[str], bool] | None = None) -> Iterator[Collected]:
    """Every ``.best_config``, ``.kernel_perf`` and GEMM timing file under `root` (those whose
    relative path `include` accepts, if given). Read through `atpack.walk`: a symlink, a FIFO
    or an oversized file is skipped, never followed or waited on."""
    cache = open_cache(root)
    if cache is None:
        log.info("no Inductor cache folder at %s", root)
        return
    with cache:
        names = cache.names()
        for shard in names:
            if _SHARD.match(shard):
                yield from _collect_folder(cache, shard, _result_parser, env, include)
        if "cache" in names:
            yield from _collect_folder(cache, "cache", _local_cache_parser, env, include)


_Parse = Callable[[str, bytes, str], Union[_Result, list[_Result]]]


def _collect_folder(
    cache: Folder, name: str, parser: Callable[[str], _Parse | None], env: str, include: Callable[[str], bool] | None
) -> Iterator[Collected]:
    try:
        folder = cache.folder(name)
    except CacheFileError as e:
        yield Skipped(os.path.join(cache.path, name), str(e))
        return
    if folder is None:
        return
    with folder:
        for file in folder.names():
            parse = parser(file)
            if parse is not None and (include is None or include(f"{name}/{file}")):
                yield from _parsed(parse, folder, file, env)


def _result_parser(name: str) -> _Parse | None:
    if name.endswith(".best_config"):
        return parse_best_config
    if name.endswith(".kernel_perf"):
        return parse_kernel_perf
    return None


def _local_cache_parser(name: str) -> _Parse | None:
    if not _GEMM_FILE.match(name):
        return None
    return lambda relative, raw, env: parse_local_cache(name, raw, env)


def _parsed(parse: _Parse, folder: Folder, name: str, env: str) -> list[Collected]:
    path = os.path.join(folder.path, name)
    try:
        raw = folder.read(name)
        parsed = parse(f"{folder.relative}/{name}", raw, env)
    except CacheFileError as e:
        return [Skipped(path, str(e))]
    artifacts = parsed if isinstance(parsed, list) else [parsed]
    if render(*artifacts) != raw:
        log.warning("%s: unusual formatting; it will be written back with torch's formatting", path)
    return list(artifacts)


def parse_best_config(relative: str, raw: bytes, env: str) -> InductorBestConfig:
    data = load_json(raw, relative)
    if not isinstance(data, dict) or "num_warps" not in data or "num_stages" not in data:
        raise CacheFileError(f"{relative}: not a best_config (no num_warps/num_stages)")
    keys = list(data)
    split = keys.index("num_warps")
    fields: dict[str, Any] = {
        "env": env,
        "path": relative,
        "kwargs": [[k, data[k]] for k in keys[:split]],
        "extra": [[k, data[k]] for k in keys[split:] if k not in _BEST_CONFIG_FIELDS],
    }
    fields.update({k: data[k] for k in _BEST_CONFIG_FIELDS if k in data})
    return to_artifact(InductorBestConfig, fields, relative)  # type: ignore[no-any-return]


def parse_kernel_perf(relative: str, raw: bytes, env: str) -> InductorKernelPerf:
    try:
        timings = [finite(float(t)) for t in raw.decode("ascii").split()]
    except (UnicodeDecodeError, ValueError) as e:
        raise CacheFileError(f"{relative}: not a kernel_perf file ({e})") from e
    return to_artifact(InductorKernelPerf, {"env": env, "path": relative, "timings": timings}, relative)  # type: ignore[no-any-return]


def parse_local_cache(name: str, raw: bytes, env: str) -> list[_Result]:
    """Inductor's local cache file ``cache/<system hash>``: its GEMM timings (objects nested by
    op, inputs and precision) as `InductorGemmTimings`, its other entries (one value under one
    key, `LocalCache.set_value`) as `InductorLocalValues`; each only where the file has some."""
    data = load_json(raw, name)
    try:
        system, cache = data["system"], data["cache"]
        version = system.get("version", {})
        fields: dict[str, Any] = {"hash": system["hash"]}
        if "device" in system:
            fields["device_name"] = system["device"]["name"]
        for key in ("triton", "cuda", "hip"):
            if key in version:
                fields[key] = version[key]
        entries = [
            {
                "op": op,
                "inputs": inputs,
                "precision": precision,
                "timings": [[choice, finite(ms)] for choice, ms in choices.items()],
            }
            for op, by_inputs in cache.items()
            if isinstance(by_inputs, dict)
            for inputs, by_precision in by_inputs.items()
            for precision, choices in by_precision.items()
        ]
        values = [[key, _local_value(value)] for key, value in cache.items() if not isinstance(value, dict)]
    except (KeyError, TypeError, AttributeError, ValueError) as e:
        raise CacheFileError(f"cache/{name}: not Inductor's local cache file ({type(e).__name__}: {e})") from e
    if fields["hash"] != name:
        raise CacheFileError(f"cache/{name}: names system hash {fields['hash']}")
    found: list[_Result] = []
    if entries or not values:  # a file of no entry at all is still its GEMM timings, empty
        found.append(
            to_artifact(InductorGemmTimings, {"env": env, "system": fields, "entries": entries}, f"cache/{name}")
        )
    if values:
        found.append(
            to_artifact(InductorLocalValues, {"env": env, "system": fields, "values": values}, f"cache/{name}")
        )
    return found


def _local_value(value: Any) -> bool | float:
    """A value `LocalCache.set_value` records: a decision (bool) or a time (a finite number)."""
    if isinstance(value, bool):
        return value
    ms = finite(value)
    if ms is None:
        raise ValueError(f"not a finite number: {value!r}")
    return ms


# --------------------------------------------------------------------------- render


def render(*artifacts: _Result) -> bytes:
    """The file one artifact is, or the local cache file a GEMM timing and a values artifact
    make together (timings first, as torch writes a file where GEMMs were tuned first)."""
    first = artifacts[0]
    if isinstance(first, InductorBestConfig):
        return render_best_config(first)
    if isinstance(first, InductorKernelPerf):
        return render_kernel_perf(first)
    cache: dict[str, Any] = {}
    for a in artifacts:
        if isinstance(a, InductorGemmTimings):
            cache.update(_nested(a))
        elif isinstance(a, InductorLocalValues):
            cache.update((v.key, v.value) for v in a.values)
    return render_gemm_timings(first.system, cache)


def render_best_config(a: InductorBestConfig) -> bytes:
    data: dict[str, Any] = dict(a.kwargs)
    data["num_warps"] = a.num_warps
    data["num_stages"] = a.num_stages
    for key in _BEST_CONFIG_FIELDS[2:]:
        value = getattr(a, key)
        if value is not msgspec.UNSET:
            data[key] = value
    data.update(a.extra)
    return dumps(data).encode("ascii")


def render_kernel_perf(a: InductorKernelPerf) -> bytes:
    return " ".join(str(as_float(t)) for t in a.timings).encode("ascii")


def render_gemm_timings(system: GemmSystem | dict[str, Any], cache: dict[str, Any]) -> bytes:
    return json.dumps({"system": _system_dict(system), "cache": cache}, indent=4).encode("ascii")


def _system_dict(system: GemmSystem | dict[str, Any]) -> dict[str, Any]:
    if isinstance(system, dict):
        return system
    out: dict[str, Any] = {}
    if not _unset(system.device_name):
        out["device"] = {"name": system.device_name}
    version = {k: getattr(system, k) for k in ("triton", "cuda", "hip") if not _unset(getattr(system, k))}
    if version:
        out["version"] = version
    out["hash"] = system.hash
    return out


def _nested(a: InductorGemmTimings) -> dict[str, Any]:
    cache: dict[str, Any] = {}
    for e in a.entries:
        slot = cache.setdefault(e.op, {}).setdefault(e.inputs, {}).setdefault(e.precision, {})
        for t in e.timings:
            slot[t.choice] = as_float(t.ms)
    return cache


def _unset(value: object) -> bool:
    return value is msgspec.UNSET


# --------------------------------------------------------------------------- populate


def files(artifact: InductorBestConfig | InductorKernelPerf, root: CacheDir) -> list[FileWrite]:
    """The file populate writes for a ``.best_config`` or ``.kernel_perf`` artifact."""
    return [FileWrite(root.path(artifact.path), data=render(artifact))]


_Merged = Union[InductorGemmTimings, InductorLocalValues]


def merge_local_cache(artifact: _Merged, root: CacheDir, *, dry_run: bool = False) -> tuple[str, str]:
    """Merge the artifact's GEMM timings or values into Inductor's local cache file under a
    lock, entry by entry: entries already there are kept, missing ones added. Returns
    (action, detail)."""
    path = root.path(f"cache/{artifact.system.hash}")
    if dry_run:
        return _merge_file(artifact, root, path, dry_run=True)
    root.read(path)  # a symlink or a folder in its place is refused before the lock file is made
    with root.locked(f"locks/{artifact.system.hash}.atpack.lock"):
        return _merge_file(artifact, root, path, dry_run=False)


_MERGE_TRIES = 5


def _merge_file(artifact: _Merged, root: CacheDir, path: str, *, dry_run: bool) -> tuple[str, str]:
    """Torch writes this file without atpack's lock: a file it creates or replaces between the
    read and the write is merged again from what is there then, never written over."""
    for _ in range(_MERGE_TRIES - 1):
        with contextlib.suppress(FileCreatedMeanwhileError, FileChangedMeanwhileError):
            return _merge_once(artifact, root, path, dry_run=dry_run)
    return _merge_once(artifact, root, path, dry_run=dry_run)


def _merge_once(artifact: _Merged, root: CacheDir, path: str, *, dry_run: bool) -> tuple[str, str]:
    what = "timings" if isinstance(artifact, InductorGemmTimings) else "values"
    raw = root.read(path)
    if raw is None:
        if not dry_run:
            root.write(path, render(artifact), create=True)
        return "written", f"{_count(artifact)} {what}"
    existing = load_json(raw, path)
    try:
        cache, system = existing["cache"], existing["system"]
        added = _merge_into(cache, artifact)
    except (KeyError, TypeError, AttributeError) as e:
        raise CacheFileError(f"{path}: not Inductor's local cache file ({type(e).__name__}: {e}); left as it is") from e
    if not added:
        return "present", f"every one of its {what} already there"
    if not dry_run:
        root.write(path, render_gemm_timings(system, cache), replacing=raw)
    return "merged", f"{added} {what} added"


def _count(artifact: _Merged) -> int:
    if isinstance(artifact, InductorGemmTimings):
        return sum(len(e.timings) for e in artifact.entries)
    return len(artifact.values)


def _merge_into(cache: dict[str, Any], artifact: _Merged) -> int:
    added = 0
    if isinstance(artifact, InductorLocalValues):
        for v in artifact.values:
            if v.key not in cache:  # a key there holds torch's own value (or timings): kept
                cache[v.key] = v.value
                added += 1
        return added
    for e in artifact.entries:
        slot = _nested_dict(_nested_dict(_nested_dict(cache, e.op), e.inputs), e.precision)
        for t in e.timings:
            if t.choice not in slot:
                slot[t.choice] = as_float(t.ms)
                added += 1
    return added


def _nested_dict(parent: Any, key: str) -> dict[str, Any]:
    if not isinstance(parent, dict):
        raise TypeError(f"a {type(parent).__name__} where an object of timings belongs")
    child = parent.setdefault(key, {})
    if not isinstance(child, dict):
        raise TypeError(f"{key!r} holds a {type(child).__name__}, not an object")
    return child


# --------------------------------------------------------------------------- kinds


def _collect(source: Source) -> Iterator[Collected]:
    return collect(source.root, source.env, include=source.include)


def best_config_problem(a: InductorBestConfig) -> str:
    """Why torch would never have written this ``.best_config`` ("" where it could have): a config
    Inductor does not emit (`configs`), or a key torch's file never holds, which its reader would
    hand to the kernel as a parameter."""
    if a.extra:
        names = ", ".join(repr(name)[:40] for name, _ in a.extra)
        return f"it holds {names}, which torch's .best_config never holds (it would reach the kernel as an argument)"
    return inductor_config_problem(a.kwargs, a.num_warps, a.num_stages)


class _BestConfig(Kind[InductorBestConfig]):
    artifact = InductorBestConfig
    turns_replay_on = True

    def files(self, artifact: InductorBestConfig, root: CacheDir) -> list[FileWrite]:
        return files(artifact, root)

    def never(self, artifact: InductorBestConfig) -> str:
        problem = best_config_problem(artifact)
        return f"not a config Inductor emits: {problem}" if problem else ""

    def delta(self, before: InductorBestConfig, after: InductorBestConfig) -> str:
        return f"{_config(before)} -> {_config(after)}"

    def show(self, artifact: InductorBestConfig, shown: Shown) -> None:
        if isinstance(artifact.time_taken_ms, (int, float)):
            shown.tuning_ms += artifact.time_taken_ms
        config = artifact.summary().split(" ", 1)[-1]
        shown.configs.append({"path": artifact.path, "config": config, "ms": artifact.time_taken_ms})


def _config(a: InductorBestConfig) -> str:
    return config_text(a.kwargs, a.num_warps, a.num_stages)


class _KernelPerf(Kind[InductorKernelPerf]):
    artifact = InductorKernelPerf

    def files(self, artifact: InductorKernelPerf, root: CacheDir) -> list[FileWrite]:
        return files(artifact, root)

    def time(self, artifact: InductorKernelPerf) -> float | None:
        return artifact.timings[0]

    def show(self, artifact: InductorKernelPerf, shown: Shown) -> None:
        shown.candidates += 1


class _GemmTimings(Kind[InductorGemmTimings]):
    artifact = InductorGemmTimings
    populate = "merged"

    def merge_file(self, artifact: InductorGemmTimings, root: CacheDir, *, dry_run: bool) -> tuple[str, str]:
        return merge_local_cache(artifact, root, dry_run=dry_run)

    def merge(self, answers: Sequence[Answer[InductorGemmTimings]], policy: str) -> tuple[InductorGemmTimings, str]:
        """Every entry and candidate of each file; a candidate timed differently is resolved by
        the policy (fastest: the lower time; newest: the newest pack's)."""
        slots: dict[tuple[str, str, str], dict[str, list[tuple[float | None, Answer[InductorGemmTimings]]]]] = (
            collections.defaultdict(lambda: collections.defaultdict(list))
        )
        for answer in answers:
            for entry in answer.artifact.entries:
                for t in entry.timings:
                    slots[(entry.op, entry.inputs, entry.precision)][t.choice].append((t.ms, answer))
        disputed = 0
        entries = []
        for (op, inputs, precision), choices in sorted(slots.items()):
            timings = []
            for choice, measured in sorted(choices.items()):
                values = {ms for ms, _ in measured}
                disputed += len(values) > 1
                if policy == "newest":
                    ms = max(measured, key=lambda m: m[1].newness)[0]
                else:
                    ms = min(values, key=lambda v: math.inf if v is None else v)
                timings.append(ChoiceTiming(choice, ms))
            entries.append(GemmEntry(op=op, inputs=inputs, precision=precision, timings=tuple(timings)))
        first = answers[0].artifact
        merged = InductorGemmTimings(env=first.env, system=first.system, entries=tuple(entries))
        how = "kept the newest times" if policy == "newest" else "kept the fastest times"
        return merged, f"{disputed} candidates timed differently; {how}" if disputed else ""

    def delta(self, before: InductorGemmTimings, after: InductorGemmTimings) -> str:
        fx, fy = _flat(before), _flat(after)
        common = [k for k in fx.keys() & fy.keys() if fx[k] is not None and fy[k] is not None and fx[k] != fy[k]]
        ratios = [fy[k] / fx[k] for k in common if fx[k]]  # type: ignore[operator]
        mean = f", mean time x{sum(ratios) / len(ratios):.3f}" if ratios else ""
        added, removed = len(fy.keys() - fx.keys()), len(fx.keys() - fy.keys())
        return f"{added} timings added, {removed} removed, {len(common)} changed{mean}"

    def says(self, artifact: InductorGemmTimings, small_files: Mapping[str, bytes]) -> dict[str, str]:
        return evidence.gemm_timings_say(artifact)

    def show(self, artifact: InductorGemmTimings, shown: Shown) -> None:
        for e in artifact.entries:
            shown.candidates += len(e.timings)
            times = [(t.choice, t.ms) for t in e.timings if t.ms is not None]
            best = min(times, key=lambda ct: ct[1])[0] if times else "-"
            shown.gemms.append({"op": e.op, "inputs": e.inputs, "precision": e.precision, "best": best, "times": times})


class _LocalValues(Kind[InductorLocalValues]):
    artifact = InductorLocalValues
    populate = "merged"

    def merge_file(self, artifact: InductorLocalValues, root: CacheDir, *, dry_run: bool) -> tuple[str, str]:
        return merge_local_cache(artifact, root, dry_run=dry_run)

    def merge(self, answers: Sequence[Answer[InductorLocalValues]], policy: str) -> tuple[InductorLocalValues, str]:
        """Every key of each file; a key two answers gave different values is resolved by the
        policy (newest: the newest pack's; otherwise the first pack's, as torch keeps the value
        a key has)."""
        chosen: dict[str, tuple[bool | float, Answer[InductorLocalValues]]] = {}
        disputed = 0
        for answer in answers:
            for v in answer.artifact.values:
                if v.key not in chosen:
                    chosen[v.key] = (v.value, answer)
                elif chosen[v.key][0] != v.value:
                    disputed += 1
                    if policy == "newest" and answer.newness > chosen[v.key][1].newness:
                        chosen[v.key] = (v.value, answer)
        first = answers[0].artifact
        values = tuple(LocalValue(key, value) for key, (value, _) in sorted(chosen.items()))
        merged = InductorLocalValues(env=first.env, system=first.system, values=values)
        how = "kept the newest" if policy == "newest" else "kept the first pack's"
        return merged, f"{disputed} values differed; {how}" if disputed else ""

    def says(self, artifact: InductorLocalValues, small_files: Mapping[str, bytes]) -> dict[str, str]:
        return evidence.gemm_timings_say(artifact)


def _flat(a: InductorGemmTimings) -> dict[tuple[str, str, str, str], float | None]:
    return {(e.op, e.inputs, e.precision, t.choice): t.ms for e in a.entries for t in e.timings}


KINDS: tuple[Kind[Any], ...] = (
    _BestConfig(_collect),
    _KernelPerf(_collect),
    _GemmTimings(_collect),
    _LocalValues(_collect),
)
"""Inductor's kinds (`atpack.kinds`): read by one walk of its cache folder."""
