"""Every artifact kind atpack knows, and what it does with each: one registry.

A kind is its data, a frozen struct in the tagged union of artifacts (a subclass of
`Artifact` with its tag), and its behaviour, a `Kind`: the cache folder it lives in and how it
is collected and populated, how two answers to its question merge, what `inspect` and `report`
show of it, what it says about the machine that made it. A kind's struct and its `Kind` live in
its adapter module, which lists its kinds in ``KINDS``; the rest of atpack asks this registry
(`of`) and names no kind. The format 1.0 kinds keep their structs in `atpack.artifacts`, where
the schema of format 1.0 is generated from, and their behaviour in `atpack.adapters`.

Reading a pack needs only the structs. The built-in kinds' behaviour is registered when
`atpack.adapters` (which reaches into cache folders) is imported: by the modules that act on
artifacts (collect, populate, merge, report), never by this registry, which imports no adapter.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar, Union

from .artifacts import ARTIFACT_TYPES, Artifact, UnknownArtifact
from .errors import AtpackError

if TYPE_CHECKING:
    from .files import CacheDir, FileWrite

__all__ = [
    "Answer",
    "Collected",
    "Kind",
    "Shown",
    "Skipped",
    "Source",
    "collectors",
    "known",
    "of",
    "register",
    "registered",
    "types",
]

A = TypeVar("A", bound=Artifact)

CacheFolder = Literal["inductor", "triton"]
"""Inductor's cache folder, or every Triton cache folder (each per-device folder, Triton's own)."""


@dataclasses.dataclass(frozen=True)
class Skipped:
    """A cache file that was not collected, and why: collecting yields it for a file that is not
    what its name says (a half-written or foreign file must not stop a collection)."""

    path: str
    reason: str


Collected = Union[Artifact, Skipped]
"""What a collector yields for each cache file it reads."""


@dataclasses.dataclass(frozen=True)
class Source:
    """A cache folder to collect from, and how."""

    root: str
    env: str
    """The digest of the environment the collected artifacts are valid in."""
    add_blob: Callable[[bytes, str], str]
    """Stores a blob (bytes, grouping hint) and returns its digest."""
    include: Callable[[str], bool] | None = None
    """Which entries of the folder to read, by path relative to it (None: all): a file's, or a
    folder's whose files are read together (Triton's kernel folders)."""
    binaries_only: bool = False
    """Compiled kernels keep only what they need to launch."""


Collector = Callable[[Source], Iterator[Collected]]
"""Reads a cache folder: its kinds' artifacts, and `Skipped` for files that are not."""


@dataclasses.dataclass(frozen=True)
class Answer(Generic[A]):
    """One answer to a question when packs are merged: the artifact, its digest, and when the
    pack that holds it was made."""

    artifact: A
    digest: str
    created: str

    @property
    def newness(self) -> tuple[str, str]:
        """Orders answers oldest first; of two made at once, the one of the higher digest first
        (so that the newest is `max`, ties going to the lower digest)."""
        return self.created, "".join(chr(0x10FFFF - ord(c)) for c in self.digest)


@dataclasses.dataclass
class Shown:
    """What a report shows of a pack's artifacts beyond counting them: rows of its tables (one
    dict a row) and what tuning cost when the pack was made."""

    gemms: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    autotunes: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    configs: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    kernels: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    tuning_ms: float = 0.0
    candidates: int = 0


class Kind(Generic[A]):
    """What atpack does with artifacts of one kind (`artifact`). A subclass overrides what its
    kind does differently from these defaults: a data kind, nothing to merge, nothing to show."""

    artifact: type[A]
    folder: CacheFolder = "inductor"
    """The cache folder the kind is collected from and populated into."""
    populate: Literal["files", "merged", "none"] = "files"
    """How populate writes it: its `files`, never over a different existing one; merged into
    the file already there (`merge_file`); or not at all, without an outcome (``none``: not a
    cache file, but what atpack keeps about one, such as a key's components)."""
    turns_replay_on: bool = False
    """Whether it is a tuning result that atpack's replay (`atpack.autoload`) acts on: populating
    one turns the replay on for the folder."""

    def __init__(self, collect: Collector | None = None) -> None:
        self.collect = collect
        """Reads the kind from a cache folder (kinds collected by one walk share it); None: not
        collected from folders (Megacache entries come from torch's blob)."""

    def files(self, artifact: A, root: CacheDir) -> list[FileWrite]:
        """The files populate writes for `artifact` into the cache folder `root`."""
        raise AtpackError(f"no adapter populates {artifact.kind}")

    def precedence(self, artifact: A) -> tuple[int, int]:
        """Where two artifacts of a pack write one file with different content, the higher one's
        is the file's and the other is superseded; equal ones are refused as a conflict. A
        result collected from a cache folder is that file's final state: (1, 0)."""
        return (1, 0)

    def check_blob(self, artifact: A) -> str | None:
        """A blob that `check` reads before any file of `artifact` is written (None: none)."""
        return None

    def check(self, artifact: A, data: bytes) -> None:
        """Refuse (`AtpackError`) an artifact whose `check_blob` holds `data`."""

    def repairable(self, artifact: A, existing: bytes) -> bool:
        """Whether a file that `files` may replace (`FileWrite.replace`) and that holds
        `existing` is a stale copy of the artifact's, to be rewritten."""
        return False

    def merge_file(self, artifact: A, root: CacheDir, *, dry_run: bool) -> tuple[str, str]:
        """Merge `artifact` into its file in `root` (`populate` ``"merged"``): (action, detail)."""
        raise AtpackError(f"no adapter merges {artifact.kind} into a cache file")

    def never(self, artifact: A) -> str:
        """Why populate never writes `artifact`, trusted or not ("" where it may)."""
        return ""

    def time(self, artifact: A) -> float | None:
        """The measured time of the result (ms), where the kind records one: merge keeps the
        fastest of two answers, diff shows the change."""
        return None

    def merge(self, answers: Sequence[Answer[A]], policy: str) -> tuple[A, str] | None:
        """One artifact made of several answers to one question, part by part, and what they
        disagreed on and how `policy` ("fastest", "newest", "fail") resolved it ("" where they
        agree); None where the kind is not merged (one answer is kept whole, by the policy)."""
        return None

    def delta(self, before: A, after: A) -> str:
        """How an answer changed, in a few words (`atpack.diff`)."""
        return "content differs"

    def says(self, artifact: A, small_files: Mapping[str, bytes]) -> dict[str, str]:
        """The environment fields the artifact states itself (`atpack.evidence`); `small_files`
        maps blob digests to the bytes of the small JSON files collected so far."""
        return {}

    def show(self, artifact: A, shown: Shown) -> None:
        """Add what a report shows of `artifact` to `shown`."""


_TAG = re.compile(r"[a-z0-9_]+(\.[a-z0-9_]+)+/[1-9][0-9]*")
_TYPES: dict[str, type[Artifact]] = {t.kind: t for t in ARTIFACT_TYPES}
_KINDS: dict[type[Artifact], Kind[Any]] = {}
_UNKNOWN: Kind[Any] = Kind()


def register(kind: Kind[A]) -> Kind[A]:
    """Add a kind: its struct to the union packs are read with, its behaviour to the registry.
    A kind registered again replaces the earlier registration."""
    tag = kind.artifact.__struct_config__.tag if issubclass(kind.artifact, Artifact) else None
    if not isinstance(tag, str) or not _TAG.fullmatch(tag):
        raise TypeError(
            f"{kind.artifact.__name__} is not an artifact kind: a subclass of Artifact whose tag names "
            "the kind and its version (tag='triton.autotune/2')"
        )
    kind.artifact.kind = tag
    _TYPES[tag] = kind.artifact
    _KINDS[kind.artifact] = kind
    return kind


def registered(artifact: type[Artifact]) -> bool:
    """Whether a kind's struct has its behaviour registered."""
    return artifact in _KINDS


def types() -> tuple[type[Artifact], ...]:
    """The struct of every kind known now, format 1.0's first."""
    return tuple(_TYPES.values())


def known(tag: str) -> bool:
    """Whether a kind is known: one of `atpack.artifacts`, or one registered since."""
    return tag in _TYPES


def of(artifact: Artifact | UnknownArtifact) -> Kind[Any]:
    """The behaviour of an artifact's kind; for an artifact of an unknown kind, the defaults
    (nothing to merge, nothing to show; populate skips it before asking). The built-in kinds are
    registered by importing `atpack.adapters`."""
    if isinstance(artifact, UnknownArtifact):
        return _UNKNOWN
    kind = _KINDS.get(type(artifact))
    if kind is None:
        raise AtpackError(
            f"{artifact.kind}: no adapter registers this kind (import atpack.adapters, or atpack.kinds.register)"
        )
    return kind


def collectors(folder: str) -> list[Collector]:
    """What reads a cache folder of that sort: each kind's collector, once, in registration order."""
    found: list[Collector] = []
    for kind in _KINDS.values():
        if kind.folder == folder and kind.collect is not None and kind.collect not in found:
            found.append(kind.collect)
    return found
