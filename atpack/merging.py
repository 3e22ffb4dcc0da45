"""Combining packs (results from many ranks or machines) and comparing two packs.

Two artifacts conflict when they answer the same question (same kind, environment and key:
`Artifact.key`) differently. `merge` resolves conflicts by a policy that does not depend on the
order of its inputs, so merging the same packs in any order gives the same pack:

- ``fastest``: the result with the lowest measured time (Triton autotune medians, fused-kernel
  times, GEMM candidate times); where a kind records no time to compare (a ``.best_config``
  records tuning time, not kernel time), the newest;
- ``newest``: the result of the pack created last (annotation ``io.atpack.created``);
- ``fail``: no pack is written; the error lists every conflict.
Remaining ties go to the lower artifact digest. GEMM timing files are merged entry by entry.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import os
from collections.abc import Sequence
from typing import Any, Literal

from . import adapters, kinds  # noqa: F401  (adapters: registers the built-in kinds)
from .artifacts import Artifact, UnknownArtifact, artifact_digest
from .errors import AtpackError, MergeConflictError
from .pack import CREATED, DEFAULT_LEVEL, Pack, PackInfo, create, open_pack
from .signing import SIGNATURE_PREFIX

__all__ = [
    "Change",
    "Conflict",
    "MergeConflictError",
    "MergeReport",
    "Policy",
    "diff",
    "merge",
]

Policy = Literal["fastest", "newest", "fail"]
POLICIES: tuple[str, ...] = ("fastest", "newest", "fail")


@dataclasses.dataclass(frozen=True)
class Conflict:
    """Several answers to one question, and the one kept (None under ``fail``)."""

    kind: str
    env: str
    key: str
    candidates: tuple[str, ...]
    chosen: str | None
    reason: str


@dataclasses.dataclass
class MergeReport:
    url: str
    inputs: list[str]
    artifacts: int = 0
    conflicts: list[Conflict] = dataclasses.field(default_factory=list)
    info: PackInfo | None = None
    dropped_signatures: int = 0
    """How many inputs were signed: a signature is never carried into the merged pack, whose
    content is not what was signed."""

    def format(self) -> str:
        lines = [f"merged {len(self.inputs)} packs into {self.url}: {self.artifacts} artifacts"]
        if self.info:
            lines[0] += f" ({self.info.size:,} bytes, {self.info.digest})"
        if self.dropped_signatures:
            lines.append(f"dropped the signatures of {self.dropped_signatures} inputs: re-sign the merged pack")
        lines.append(f"{len(self.conflicts)} conflicts" + (":" if self.conflicts else ""))
        lines += [f"  {c.kind} {c.key}: {len(c.candidates)} answers, {c.reason}" for c in self.conflicts]
        return "\n".join(lines)


@dataclasses.dataclass(frozen=True)
class _Answer(kinds.Answer[Any]):
    pack: int = 0


def merge(
    urls: Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    *,
    policy: Policy = "fail",
    storage_options: dict[str, Any] | None = None,
    level: int = DEFAULT_LEVEL,
) -> MergeReport:
    """Merge packs into one at `out`; see the module's documentation for the policies."""
    if policy not in POLICIES:
        raise ValueError(f"unknown merge policy {policy!r}; choose one of {', '.join(POLICIES)}")
    with contextlib.ExitStack() as stack:
        # every index open at once; blobs are copied pack by pack, one batch at a time
        packs = [stack.enter_context(open_pack(u, storage_options=storage_options)) for u in urls]
        report = MergeReport(os.fspath(out), [p.name for p in packs])
        answers: dict[tuple[str, str, str], dict[str, _Answer]] = collections.defaultdict(dict)
        for i, pack in enumerate(packs):
            created = pack.manifest.annotations.get(CREATED, "")
            for a in pack.artifacts:
                digest = artifact_digest(a)
                answers[(a.kind, a.env, a.key)].setdefault(digest, _Answer(a, digest, created, i))
        chosen: list[_Answer] = []
        made: list[Artifact] = []
        for question in sorted(answers):
            options = sorted(answers[question].values(), key=lambda x: x.digest)
            if len(options) == 1:
                chosen.append(options[0])
                continue
            merged = kinds.of(options[0].artifact).merge(options, policy)
            if merged is not None:
                made.append(merged[0])
                conflict = _merge_conflict(options, *merged, policy)
            else:
                pick, reason = _resolve(options, policy)
                conflict = Conflict(*question, tuple(o.digest for o in options), pick.digest if pick else None, reason)
                if pick is not None:
                    chosen.append(pick)
            if conflict is not None:
                report.conflicts.append(conflict)
        if policy == "fail" and report.conflicts:
            raise MergeConflictError(report.conflicts)
        with create(out, storage_options=storage_options, level=level) as writer:
            by_pack: dict[int, list[Artifact | UnknownArtifact]] = collections.defaultdict(list)
            for answer in chosen:
                by_pack[answer.pack].append(answer.artifact)
            for i, artifacts in sorted(by_pack.items()):
                writer.copy_from(packs[i], artifacts)
            for artifact in made:
                writer.add(artifact)
                writer.add_environment(_environment(packs, artifact.env))
            for key, value in _annotations(packs).items():
                writer.annotate(key, value)
        report.info = writer.info
        report.artifacts = len(chosen) + len(made)
        report.dropped_signatures = sum(1 for p in packs if any(map(_is_signature, p.manifest.annotations)))
        return report


def _resolve(options: list[_Answer], policy: Policy) -> tuple[_Answer | None, str]:
    if policy == "fail":
        return None, "unresolved"
    if policy == "fastest":
        timed = [(t, o) for o in options if (t := _time(o.artifact)) is not None]
        if len(timed) == len(options):
            best = min(timed, key=lambda to: (to[0], to[1].digest))
            return best[1], f"kept the fastest ({best[0]:.4g} ms)"
    newest = max(options, key=lambda o: o.newness)
    return newest, f"kept the newest ({newest.created or 'undated'})" + (
        " (no time recorded to compare)" if policy == "fastest" else ""
    )


def _time(artifact: Artifact | UnknownArtifact) -> float | None:
    """The measured time of a result (ms), where its kind records one."""
    return kinds.of(artifact).time(artifact)


def _merge_conflict(options: list[_Answer], merged: Artifact, disagreed: str, policy: Policy) -> Conflict | None:
    """The conflict a merge of several answers resolved part by part, if they disagreed."""
    if not disagreed:
        return None
    chosen = None if policy == "fail" else artifact_digest(merged)
    return Conflict(merged.kind, merged.env, merged.key, tuple(o.digest for o in options), chosen, disagreed)


def _environment(packs: list[Pack], digest: str) -> Any:
    for pack in packs:
        if digest in pack.manifest.environments:
            return pack.manifest.environments[digest]
    raise AtpackError(f"environment {digest} is in none of the packs")


def _is_signature(key: str) -> bool:
    return key.startswith(SIGNATURE_PREFIX)


def _annotations(packs: list[Pack]) -> dict[str, str]:
    """Annotations every input agrees on (signatures aside), and the latest creation time."""
    out: dict[str, str] = {}
    keys = set.intersection(*(set(p.manifest.annotations) for p in packs)) if packs else set()
    keys = {key for key in keys if not _is_signature(key)}
    for key in sorted(keys - {CREATED}):
        values = {p.manifest.annotations[key] for p in packs}
        if len(values) == 1:
            out[key] = values.pop()
    created = [p.manifest.annotations[CREATED] for p in packs if CREATED in p.manifest.annotations]
    if created:
        out[CREATED] = max(created)
    return out


# --------------------------------------------------------------------------- diff


@dataclasses.dataclass(frozen=True)
class Change:
    """One question answered in one pack and not the other, or answered differently."""

    change: Literal["added", "removed", "changed"]
    kind: str
    env: str
    key: str
    detail: str = ""


def diff(
    before: str | os.PathLike[str], after: str | os.PathLike[str], *, storage_options: dict[str, Any] | None = None
) -> list[Change]:
    """What changed from pack `before` to pack `after`, question by question."""
    with (
        open_pack(before, storage_options=storage_options) as a,
        open_pack(after, storage_options=storage_options) as b,
    ):
        old = {(x.kind, x.env, x.key): x for x in a.artifacts}
        new = {(x.kind, x.env, x.key): x for x in b.artifacts}
    changes = []
    for question in sorted(old.keys() | new.keys()):
        x, y = old.get(question), new.get(question)
        if x is None:
            changes.append(Change("added", *question, _describe(y)))
        elif y is None:
            changes.append(Change("removed", *question, _describe(x)))
        elif artifact_digest(x) != artifact_digest(y):
            changes.append(Change("changed", *question, _delta(x, y)))
    return changes


def _describe(artifact: Artifact | UnknownArtifact | None) -> str:
    return artifact.summary() if artifact is not None else ""


def _delta(x: Artifact | UnknownArtifact, y: Artifact | UnknownArtifact) -> str:
    tx, ty = _time(x), _time(y)
    if tx is not None and ty is not None:
        return f"{tx:.4g} ms -> {ty:.4g} ms ({(ty - tx) / tx * 100 if tx else 0:+.1f}%)"
    return kinds.of(x).delta(x, y)  # one question: one kind
