"""Why a process's cache lookups hit or missed: its lookup record read beside a pack.

Each miss is explained by the entry the pack holds nearest to it, in this order:

1. the pack holds the very key, and the components the capture recorded for it differ from
   the ones looked up (a `.best_config` whose configs list changed: same path, another list);
2. the pack holds the very key and populate leaves it out on this machine (the reason populate
   gives: an environment field, a pickle not trusted);
3. the pack holds the very key and it applies here: it was not in the folder the process read;
4. the pack does not hold the key: the recorded key of the same cache (of the same kernel,
   where the cache names one) that shares the most components, and the components that differ.

A cache whose entries embed another's (an AOT autograd entry holds FX graphs, which hold
kernels) shows each miss at every level: the outermost explains the others.
"""

from __future__ import annotations

import collections
import dataclasses
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import msgspec

from . import kinds, seam
from .adapters import megacache
from .artifacts import (
    Artifact,
    InductorBestConfig,
    InductorGemmTimings,
    KeyComponents,
    LookupKey,
    MegacacheAotAutograd,
    MegacacheAutotune,
    MegacacheEntry,
    MegacacheInductor,
    TritonAutotune,
    TritonKernel,
    UnknownArtifact,
)
from .env import LocalEnvironment, mismatches, shown
from .errors import AtpackError, FormatError
from .lookups import CACHES, Component, Lookup, Record
from .pack import Pack
from .text import printable

__all__ = ["CacheCount", "Difference", "Explanation", "Miss", "explain", "key_components"]

SHOWN_DIFFERENCES = 4
"""How many differing components a miss names in text (all of them in JSON)."""


@dataclasses.dataclass(frozen=True)
class Difference:
    """A component of the missed key that differs from the nearest recorded one (None: absent)."""

    component: str
    recorded: str | None
    found: str | None

    def __str__(self) -> str:
        recorded, found = _around_difference(self.recorded, self.found)
        return f"{printable(self.component)}: recorded {recorded}, found {found}"


@dataclasses.dataclass(frozen=True)
class Miss:
    """One lookup that missed, and why."""

    cache: str
    key: str
    name: str
    seconds: float
    cause: str
    """One line: what differs, or where the entry was."""
    nearest: str | None = None
    """The recorded key compared with (None: none)."""
    differs: tuple[Difference, ...] = ()


@dataclasses.dataclass
class CacheCount:
    hits: int = 0
    misses: int = 0
    seconds: float = 0.0
    """What the misses cost: compiling after them, as the record measured it."""

    @property
    def rate(self) -> float | None:
        looked = self.hits + self.misses
        return self.hits / looked if looked else None


@dataclasses.dataclass
class Explanation:
    """Hits and misses per cache, each miss explained, and the benchmark calls made."""

    counts: dict[str, CacheCount]
    misses: list[Miss]
    benchmarks: int
    benchmark_s: float
    spent_s: float
    """What recording the lookups cost the processes."""
    records: int
    pack: str | None

    @property
    def lookups(self) -> int:
        return sum(c.hits + c.misses for c in self.counts.values())

    def format(self, *, verbose: bool = False) -> str:
        against = f" against {printable(self.pack)}" if self.pack else " (no pack to compare with)"
        lines = [f"{self.lookups} cache lookups in {self.records} process record(s){against}"]
        for cache, count in self.counts.items():
            rate = f"{count.rate:.0%}" if count.rate is not None else "-"
            cost = f", {count.seconds:.2f} s after misses" if count.seconds else ""
            lines.append(f"  {cache:<16}{count.hits:>6} hit {count.misses:>6} miss  {rate:>5} hits{cost}")
        lines.append(f"  benchmark calls {self.benchmarks} ({self.benchmark_s:.2f} s)")
        lines.append(f"  recording the lookups took {self.spent_s:.3f} s")
        shown_misses = self.misses if verbose else self.misses[:50]
        for miss in shown_misses:
            named = f" {printable(miss.name)}" if miss.name else ""
            lines.append(f"miss {miss.cache} {printable(miss.key)}{named}: {printable(miss.cause)}")
            differs = miss.differs if verbose else miss.differs[:SHOWN_DIFFERENCES]
            lines += [f"    {d}" for d in differs]
            if len(miss.differs) > len(differs):
                lines.append(f"    ... and {len(miss.differs) - len(differs)} more (-v)")
        if len(self.misses) > len(shown_misses):
            lines.append(f"... and {len(self.misses) - len(shown_misses)} more misses (-v)")
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {
            "pack": self.pack,
            "records": self.records,
            "lookups": self.lookups,
            "caches": {
                cache: {**dataclasses.asdict(count), "hit_rate": count.rate} for cache, count in self.counts.items()
            },
            "benchmarks": self.benchmarks,
            "benchmark_s": self.benchmark_s,
            "spent_s": self.spent_s,
            "misses": [dataclasses.asdict(m) for m in self.misses],
        }


MAX_EXPLAINED = 10_000
"""Distinct misses explained at most (each further one is counted, its cause "not explained"):
what a record someone else wrote can make `explain` compare."""


def explain(
    records: Sequence[Record],
    artifacts: Iterable[Artifact | UnknownArtifact] = (),
    environments: Mapping[str, Any] | None = None,
    components: Mapping[str, tuple[Component, ...]] | None = None,
    *,
    pack: str | None = None,
    inductor_dir: str | None = None,
    local: LocalEnvironment | None = None,
) -> Explanation:
    """Explain the lookups of `records` by the `artifacts` of a pack (and its `environments`, by
    digest; `components`, its `lookup.key/1` blobs decoded, by digest: `key_components`), the
    processes having read `inductor_dir` (where known: a pickle the pack holds is looked for
    there): see the module's documentation."""
    local = local or LocalEnvironment()
    held = [a for a in artifacts if isinstance(a, Artifact)]
    book = _Book(held, environments or {}, components or {}, local, inductor_dir)
    counts = {cache: CacheCount() for cache in CACHES}
    misses = []
    explained: dict[tuple[str, str, tuple[Component, ...]], Miss] = {}
    for record in records:
        for lookup in record.lookups:
            count = counts[lookup.cache]
            if lookup.hit:
                count.hits += 1
                continue
            count.misses += 1
            count.seconds += lookup.seconds
            same = (lookup.cache, lookup.key, lookup.components)
            if same not in explained:
                too_many = len(explained) >= MAX_EXPLAINED
                explained[same] = _Book.miss(lookup, _NOT_EXPLAINED) if too_many else book.explain(lookup)
            misses.append(dataclasses.replace(explained[same], seconds=lookup.seconds))
    return Explanation(
        counts={c: n for c, n in counts.items() if n.hits or n.misses},
        misses=misses,
        benchmarks=sum(r.benchmarks for r in records),
        benchmark_s=sum(r.benchmark_s for r in records),
        spent_s=sum(r.spent_s for r in records),
        records=len(records),
        pack=pack,
    )


_NOT_EXPLAINED = f"not explained: more than {MAX_EXPLAINED:,} distinct misses"


def _held_key(artifact: Artifact) -> tuple[str, str] | None:
    """The cache entry an artifact populates, as a lookup names it: (cache, key)."""
    if isinstance(artifact, MegacacheInductor):
        return "fx_graph", artifact.entry_key
    if isinstance(artifact, MegacacheAotAutograd):
        return "aot_autograd", artifact.entry_key
    if isinstance(artifact, MegacacheAutotune):
        return "autotune", artifact.entry_key
    if isinstance(artifact, InductorBestConfig):
        return "autotune", artifact.path
    if isinstance(artifact, TritonKernel):
        return "triton_kernel", artifact.cache_key
    if isinstance(artifact, TritonAutotune):
        return "triton_autotune", f"{artifact.cache_key}/{artifact.fn_name}"
    return None


def _held_gemms(artifact: Artifact) -> list[tuple[str, str]]:
    """The GEMMs a timing file of the pack holds, as lookups name them."""
    if not isinstance(artifact, InductorGemmTimings):
        return []
    return [("gemm", seam.gemm_key(artifact.system.hash, e.op, e.inputs, e.precision)) for e in artifact.entries]


@dataclasses.dataclass(frozen=True)
class _Recorded:
    """A key the capture recorded, with its components."""

    lookup: str
    name: str
    components: tuple[Component, ...]


def key_components(pack: Pack) -> dict[str, tuple[Component, ...]]:
    """The components of each `lookup.key/1` of `pack`, by blob digest (one read of their frames)."""
    wanted = sorted({a.components for a in pack.artifacts if isinstance(a, LookupKey)})
    found = {}
    for digest, data in pack.read_blobs(wanted):
        try:
            found[digest] = msgspec.json.decode(data, type=KeyComponents)
        except msgspec.ValidationError as e:
            raise FormatError(f"{pack.name}: the key components in blob {digest}: {e}") from None
        except msgspec.DecodeError as e:
            raise FormatError(f"{pack.name}: blob {digest} is not a list of key components ({e})") from None
    return found


class _Book:
    """What a pack holds, indexed by the keys lookups name and by their components."""

    def __init__(
        self,
        artifacts: list[Artifact],
        environments: Mapping[str, Any],
        components: Mapping[str, tuple[Component, ...]],
        local: LocalEnvironment,
        inductor_dir: str | None,
    ) -> None:
        self.environments = environments
        self.local = local
        self.inductor_dir = inductor_dir
        self.recorded: dict[str, dict[str, _Recorded]] = {}
        self.held: dict[tuple[str, str], list[Artifact]] = {}
        self.sharing: dict[tuple[str, str, str], list[_Recorded]] = {}
        """(cache, component, hash) -> the recorded keys that have it: a miss is compared with
        the keys it shares a component with, not with every key."""
        for artifact in artifacts:
            if isinstance(artifact, LookupKey):
                recorded = _Recorded(artifact.lookup, artifact.name, components.get(artifact.components, ()))
                self.recorded.setdefault(artifact.cache, {})[artifact.lookup] = recorded
            elif (held := _held_key(artifact)) is not None:
                self.held.setdefault(held, []).append(artifact)
            for gemm in _held_gemms(artifact):
                self.held.setdefault(gemm, []).append(artifact)
        for cache, keys in self.recorded.items():
            for key in keys.values():
                for c in key.components:
                    self.sharing.setdefault((cache, c.name, c.hash), []).append(key)

    def explain(self, lookup: Lookup) -> Miss:
        same = self.recorded.get(lookup.cache, {}).get(lookup.key)
        if same is not None and (differs := _differences(same.components, lookup.components)):
            cause = f"the pack holds this key, made of other components: {_names(differs)}"
            return self.miss(lookup, cause, same.lookup, differs)
        held = self.held.get((lookup.cache, lookup.key))
        if held:
            return self.miss(lookup, self._left_out(held))
        if same is not None:
            return self.miss(lookup, "the capture looked this key up, but the pack holds no entry for it (not kept)")
        return self._nearest(lookup)

    def _left_out(self, held: list[Artifact]) -> str:
        """Why the pack's entry for the key was not read: populate's reason, or the folder."""
        for artifact in held:
            kind = type(artifact)
            recorded = self.environments.get(artifact.env)
            if recorded is not None:
                reasons = mismatches(recorded, self.local.get, kind.depends_on, required=kind.requires)
                if reasons:
                    return "the pack holds this entry, and populate leaves it out here: " + "; ".join(map(str, reasons))
            if never := kinds.of(artifact).never(artifact):
                return f"the pack holds this entry, and populate never writes it: {never}"
            there = self._in_folder(artifact)
            if there:
                return (
                    "the pack's entry is in the folder this process read, and torch's own check refused it "
                    "(an FX graph's guards: a shape or value it was specialized on)"
                )
            if artifact.runs_code and there is False:
                return (
                    f"the pack holds this entry, {artifact.runs_code}, and it is not in the folder this process read: "
                    "populate writes it only with --trust-pickles, and into the Inductor folder the process uses"
                )
        return (
            "the pack holds this entry and it applies here, but it was not in the folder this process read "
            "(populate into the Inductor and Triton folders the process uses)"
        )

    def _in_folder(self, artifact: Artifact) -> bool | None:
        """Whether populate wrote the Megacache entry into the Inductor folder (None: cannot tell)."""
        if self.inductor_dir is None or not isinstance(artifact, MegacacheEntry):
            return None
        try:
            path = megacache.target(artifact)
        except AtpackError:
            return None
        return os.path.lexists(os.path.join(self.inductor_dir, path))

    def _nearest(self, lookup: Lookup) -> Miss:
        recorded = self.recorded.get(lookup.cache, {})
        if not recorded:
            held = sum(1 for cache, _ in self.held if cache == lookup.cache)
            why = f"{held} entries of this cache, without their keys' components" if held else "no entry of this cache"
            return self.miss(lookup, f"no entry for this key: the pack holds {why}")
        if not lookup.components:
            return self.miss(lookup, "no entry for this key (the record lists none of its components)")
        shared: collections.Counter[str] = collections.Counter()
        for c in lookup.components:
            shared.update(key.lookup for key in self.sharing.get((lookup.cache, c.name, c.hash), ()))
        candidates = [k for k in recorded.values() if k.name == lookup.name] if lookup.name else []
        candidates = candidates or list(recorded.values())
        nearest = max(candidates, key=lambda k: shared[k.lookup])
        differs = _differences(nearest.components, lookup.components)
        of = f" of {nearest.name}" if lookup.name and nearest.name == lookup.name else ""
        cause = f"no entry for this key; the nearest{of} in the pack differs in {_names(differs) or 'nothing listed'}"
        return self.miss(lookup, cause, nearest.lookup, differs)

    @staticmethod
    def miss(lookup: Lookup, cause: str, nearest: str | None = None, differs: Sequence[Difference] = ()) -> Miss:
        return Miss(lookup.cache, lookup.key, lookup.name, lookup.seconds, cause, nearest, tuple(differs))


def _differences(recorded: Sequence[Component], found: Sequence[Component]) -> list[Difference]:
    """The components whose hash differs or that only one side lists, in the order listed."""
    mine = {c.name: c for c in recorded}
    theirs = {c.name: c for c in found}
    differs = []
    for name in dict.fromkeys([*theirs, *mine]):
        a, b = mine.get(name), theirs.get(name)
        if a is None or b is None or a.hash != b.hash:
            differs.append(Difference(name, a.shown if a else None, b.shown if b else None))
    return differs


def _around_difference(a: str | None, b: str | None, width: int = 48) -> tuple[str, str]:
    """Both values as a reason shows them: where both are long, the part where they start to differ."""
    if a is None or b is None or (len(a) <= width and len(b) <= width):
        return shown(a), shown(b)
    first = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
    start = max(0, first - width // 3)

    def window(text: str) -> str:
        part = text[start : start + width]
        return repr(("..." if start else "") + part + ("..." if start + width < len(text) else ""))

    return window(a), window(b)


def _names(differs: Sequence[Difference]) -> str:
    names = [d.component for d in differs[:SHOWN_DIFFERENCES]]
    more = f" and {len(differs) - len(names)} more" if len(differs) > len(names) else ""
    return ", ".join(names) + more
