"""Hints: tuning results made on another GPU or release, offered as candidates, never as answers.

A result recorded under another GPU, torch or Triton does not answer a lookup here: its key
names the build it was made with, and a stale answer is unsafe (pytorch/pytorch#150494). It
still says which candidates won there. ``atpack populate --hints`` keeps, for each *problem* (a
kernel and its sizes, whatever built it: `atpack.seam.kernel_problem`, `autotune_problem`,
`gemm_problem`), the winners recorded by the nearest environments, in the Inductor folder's
``atpack-hints.json`` (`encode`, `read`). A process whose exact lookup then misses
(`atpack.seam.install_hints_on_import`) benchmarks only the candidates of its own list that a
hint names, plus the first of its list (torch's or Triton's default), and saves the winner as
torch's or Triton's own result under its own key; where coordinate descent found the recorded
winner, torch's search starts from it instead. A hint only ever narrows the candidates torch or
Triton made here (or moves where torch's own search starts): it changes how long tuning takes and
which of their own candidates wins, never what a kernel computes (spec/FORMAT.md, §17).

Nearest: the same compute capability first, then the same architecture family (major), then
any other device; at each, the same torch and Triton releases before others; then the order of
the recorded timings. At most `PER_PROBLEM` candidates a problem.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import stat
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal, Union

import msgspec

from .artifacts import (
    Artifact,
    Environment,
    InductorBestConfig,
    InductorGemmTimings,
    TritonAutotune,
    TritonConfig,
)
from .errors import FormatError

__all__ = [
    "HINTED_KINDS",
    "PER_PROBLEM",
    "Candidate",
    "Hint",
    "Hints",
    "autotune_problem",
    "config_of",
    "encode",
    "from_artifacts",
    "gemm_problem",
    "nearest",
    "problem_digest",
    "read",
]

log = logging.getLogger(__name__)

PER_PROBLEM = 3
"""Recorded winners offered a problem, at most (torch's or Triton's first candidate besides)."""
MAX_BYTES = 64 << 20
"""The most a hints file may hold."""
MAX_HINTS = 200_000
"""The most problems a hints file may hint."""

HintCache = Literal["autotune", "triton_autotune", "gemm"]
"""The caches a hint applies to, named as the lookup record names them (`atpack.lookups`)."""
Value = Union[int, float, str, bool, None]


class Candidate(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One recorded winner: the config's values (block sizes, ``num_warps``, ``num_stages``...;
    for a GEMM, ``choice``: the candidate's hash as torch keys its timings), how far the machine
    that recorded it is from this one (`distance`), and that machine in words."""

    config: dict[str, Value]
    distance: int
    made_on: str = ""
    searched: bool = False
    """Found by Inductor's coordinate descent (a `.best_config` marked so): a search's result,
    which a search here starts from (`Hints.search_start`)."""


class Hint(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The recorded winners of one problem of one cache, nearest first; `name` says which
    (a kernel's heuristic and sizes, a function's name, a GEMM's op), for logs."""

    cache: HintCache
    problem: str
    name: str
    candidates: tuple[Candidate, ...]


class HintsFile(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``atpack-hints.json``."""

    format: Literal["atpack-hints/1"]
    hints: tuple[Hint, ...]


# --------------------------------------------------------------------------- problems


def autotune_problem(fn_name: str, tuning_key: Sequence[Any]) -> str:
    """A ``@triton.autotune`` kernel's problem: its function's name and the values of its tuning key."""
    return problem_digest(
        [fn_name, [v if isinstance(v, (int, float, str, bool)) or v is None else str(v) for v in tuning_key]]
    )


def gemm_problem(op: str, inputs: str, precision: str) -> str:
    """A max-autotune GEMM's problem: the operation, its inputs' sizes, strides and dtypes as torch
    keys its timings, and the float32 matmul precision."""
    return problem_digest([op, inputs, precision])


def problem_digest(value: Any) -> str:
    """A problem's digest: SHA-256 of its parts as canonical JSON."""
    return hashlib.sha256(json.dumps(value, separators=(",", ":")).encode()).hexdigest()


def config_of(kwargs: Iterable[tuple[str, Any]], **options: Any) -> dict[str, Value]:
    """A config as a hint names it: its keyword values and its options (``num_warps``...), those
    that are set."""
    values: dict[str, Value] = {str(k): v for k, v in kwargs}
    values.update({k: v for k, v in options.items() if v is not None})
    return values


# --------------------------------------------------------------------------- from a pack


HINTED_KINDS = (InductorBestConfig, TritonAutotune, InductorGemmTimings)
"""The kinds whose results can be hints."""


def from_artifacts(
    artifacts: Sequence[Artifact],
    environments: Mapping[str, Environment],
    kernels: Mapping[str, tuple[str, str]],
    here: Mapping[str, str | None],
) -> tuple[list[Hint], list[Artifact]]:
    """The hints `artifacts` (results made elsewhere, recorded under `environments`) give this
    machine (`here`: its environment's fields), one per problem, and the artifacts that gave one.
    A `.best_config` gives one where `kernels` holds its kernel's problem by its path (the
    ``kernel`` component of its lookup key: a capture records it)."""
    hints, gave = [], []
    for artifact in artifacts:
        recorded = msgspec.structs.asdict(environments[artifact.env])
        near, on = distance(recorded, here), made_on(recorded)
        found = [
            Hint(cache, problem, name, tuple(Candidate(c, near, on, searched) for c, searched in configs[:PER_PROBLEM]))
            for cache, problem, name, configs in _winners(artifact, kernels)
            if configs
        ]
        hints += found
        if found:
            gave.append(artifact)
    return nearest(hints), gave


def _winners(
    artifact: Artifact, kernels: Mapping[str, tuple[str, str]]
) -> Iterable[tuple[HintCache, str, str, list[tuple[dict[str, Value], bool]]]]:
    """(cache, problem, name, winners fastest first, each with whether a search found it) of each
    problem `artifact` records."""
    if isinstance(artifact, InductorBestConfig) and artifact.path in kernels:
        problem, shown = kernels[artifact.path]
        config = config_of(artifact.kwargs, num_warps=artifact.num_warps, num_stages=artifact.num_stages)
        yield "autotune", problem, shown, [(config, artifact.found_by_coordesc is True)]
    elif isinstance(artifact, TritonAutotune):
        timed = [(t.timings[0], t.config) for t in artifact.configs_timings if t.timings and t.timings[0] is not None]
        configs = [(_triton_config(c), False) for _, c in sorted(timed, key=lambda t: t[0])]
        yield "triton_autotune", autotune_problem(artifact.fn_name, artifact.tuning_key), artifact.fn_name, configs
    elif isinstance(artifact, InductorGemmTimings):
        for entry in artifact.entries:
            fastest = sorted((t.ms, t.choice) for t in entry.timings if t.ms is not None)
            choices: list[tuple[dict[str, Value], bool]] = [({"choice": choice}, False) for _, choice in fastest]
            yield "gemm", gemm_problem(entry.op, entry.inputs, entry.precision), entry.op, choices


def _triton_config(config: TritonConfig) -> dict[str, Value]:
    options = {k: getattr(config, k) for k in ("num_ctas", "maxnreg") if getattr(config, k) is not msgspec.UNSET}
    return config_of(config.kwargs, num_warps=config.num_warps, num_stages=config.num_stages, **options)


# --------------------------------------------------------------------------- nearest


def distance(recorded: Mapping[str, str | None], here: Mapping[str, str | None]) -> int:
    """How far a recorded environment is from this machine: 0 the same compute capability and
    releases; +2 per step of device (another architecture in the family, another family); +1
    where torch's or Triton's release differs."""
    cc, local_cc = recorded.get("compute_capability"), here.get("compute_capability")
    if cc and cc == local_cc:
        device = 0
    elif cc and local_cc and cc.split(".")[0] == local_cc.split(".")[0]:
        device = 1
    else:
        device = 2
    release = any(recorded.get(f) != here.get(f) for f in ("torch_version", "triton_version"))
    return 2 * device + int(release)


def made_on(recorded: Mapping[str, str | None]) -> str:
    """The machine of a recorded environment, in words (for logs)."""
    parts = [recorded.get("device_name") or "an unnamed device"]
    parts += [
        f"{p} {recorded[f]}" for p, f in (("torch", "torch_version"), ("triton", "triton_version")) if recorded.get(f)
    ]
    return ", ".join(parts)


def nearest(hints: Iterable[Hint]) -> list[Hint]:
    """One hint per problem: the candidates of every hint of it, nearest first (the earlier of
    two equally near), each config once, at most `PER_PROBLEM`; at most `MAX_HINTS`."""
    merged: dict[tuple[str, str], tuple[str, list[Candidate]]] = {}
    for hint in hints:
        name, candidates = merged.setdefault((hint.cache, hint.problem), (hint.name, []))
        candidates += hint.candidates
    result = []
    for (cache, problem), (name, candidates) in sorted(merged.items()):
        chosen: list[Candidate] = []
        for candidate in sorted(candidates, key=lambda c: c.distance):  # stable: recorded order within
            if all(c.config != candidate.config for c in chosen) and len(chosen) < PER_PROBLEM:
                chosen.append(candidate)
        result.append(Hint(cache, problem, name, tuple(chosen)))  # type: ignore[arg-type]
    return result[:MAX_HINTS]


# --------------------------------------------------------------------------- the file


def encode(hints: Sequence[Hint]) -> bytes:
    return msgspec.json.encode(HintsFile("atpack-hints/1", tuple(hints))) + b"\n"


def read(path: str) -> list[Hint]:
    """The hints in the file `path`, if it is the user's: a regular file of at most `MAX_BYTES`,
    opened without following a link or waiting on a special file; [] where there is none. A
    file that is not one atpack wrote is a `FormatError`."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        return []
    except OSError as e:
        raise FormatError(f"{path}: cannot open the hints ({e.strerror})") from None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid():
            raise FormatError(f"{path}: not a regular file of this user's")
        data = f.read(MAX_BYTES + 1)
    if len(data) > MAX_BYTES:
        raise FormatError(f"{path}: more than {MAX_BYTES} bytes")
    try:
        hints = msgspec.json.decode(data, type=HintsFile).hints
    except msgspec.DecodeError as e:
        raise FormatError(f"{path}: not atpack's hints ({e})") from None
    if len(hints) > MAX_HINTS:
        raise FormatError(f"{path}: {len(hints)} hints, more than {MAX_HINTS}")
    return list(hints)


class Hints:
    """A process's hints, by cache and problem (read once, when the first lookup misses)."""

    def __init__(self, hints: Iterable[Hint]) -> None:
        self._by: dict[tuple[str, str], Hint] = {(h.cache, h.problem): h for h in hints}
        self.used: dict[str, int] = {}
        """How many lookups of each cache benchmarked hinted candidates only."""

    def __len__(self) -> int:
        return len(self._by)

    def get(self, cache: HintCache, problem: str) -> Hint | None:
        return self._by.get((cache, problem))

    def narrowed(self, cache: HintCache, problem: str, candidates: Sequence[dict[str, Value]]) -> list[int] | None:
        """The positions of `candidates` (this process's, in its order) to benchmark: the first,
        and each a hint for `problem` names exactly. None where no hint narrows them (none for the
        problem, none of its configs among the candidates, or all of them are)."""
        hint = self.get(cache, problem)
        if hint is None or len(candidates) < 2:
            return None
        wanted = [c.config for c in hint.candidates]
        kept = [i for i, config in enumerate(candidates) if i == 0 or any(_names(w, config) for w in wanted)]
        if len(kept) < 2 or len(kept) == len(candidates):
            return None
        self.said(hint, f"{len(kept)} of {len(candidates)} candidates benchmarked")
        return kept

    def search_start(self, problem: str) -> dict[str, Value] | None:
        """Where Inductor's coordinate descent starts for the kernel of `problem`: the nearest
        recorded winner, where a search found it (else None: the search starts as torch starts it)."""
        hint = self.get("autotune", problem)
        return dict(hint.candidates[0].config) if hint and hint.candidates and hint.candidates[0].searched else None

    def said(self, hint: Hint, what: str) -> None:
        """Count a lookup a hint narrowed, and say so in one line."""
        self.used[hint.cache] = self.used.get(hint.cache, 0) + 1
        made = "; ".join(dict.fromkeys(c.made_on for c in hint.candidates))
        log.info("atpack: %s %s: %s, as hinted (%s)", hint.cache, hint.name, what, made)


def _names(hinted: Mapping[str, Value], config: Mapping[str, Value]) -> bool:
    """Whether a hinted config is `config`: every value the hint sets is the config's, and the
    config sets no other but an option a release may have added (`_ADDED`)."""
    return all(k in config and config[k] == v for k, v in hinted.items()) and all(
        k in hinted or k in _ADDED for k in config
    )


_ADDED = frozenset(("num_ctas", "maxnreg"))
