"""Populating: pack → artifacts valid here → files in Inductor's and Triton's cache folders.

Each artifact is checked against this machine's environment (only the fields its kind
depends on) and skipped with a reason when it does not apply. Files are written atomically
and never replace a different existing result: what a folder already holds is kept.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import os
import re
import time
from collections.abc import Callable, Sequence
from typing import Any

import msgspec

from . import adapters, kinds, storage  # noqa: F401  (adapters: registers the built-in kinds)
from . import hints as _hints
from .artifacts import Artifact, InductorBestConfig, KeyComponents, LookupKey, UnknownArtifact
from .env import BUILD_KEYS, LocalEnvironment, Mismatch, cuda_devices, mismatches, shown
from .errors import AtpackError, EnvironmentMismatchError, FormatError, LimitError, StorageError
from .files import CacheDir, FileWrite, Writes
from .folders import default_inductor_dir, triton_dirs_to_populate
from .pack import DEFAULT_LIMITS, SILENT, Limits, Pack, Progress, open_pack
from .storage import Retry
from .text import printable

__all__ = ["Outcome", "PopulateReport", "find_packs", "populate"]

log = logging.getLogger(__name__)

WRITTEN, PRESENT, KEPT, MERGED, SKIPPED, FAILED = "written", "present", "kept", "merged", "skipped", "failed"
HINTED = "hinted"
"""Made elsewhere, and kept as a hint (`atpack.hints`): never written as a result."""
ACTIONS = (WRITTEN, MERGED, PRESENT, KEPT, HINTED, SKIPPED, FAILED)
APPLIED = (WRITTEN, MERGED, PRESENT)
"""The actions after which the caches hold the artifact's result (in a dry run: would hold)."""


@dataclasses.dataclass(frozen=True)
class Outcome:
    """What populate did (or, in a dry run, would do) with one artifact."""

    kind: str
    key: str
    action: str
    detail: str = ""
    error: str = ""
    """For a failed artifact, the class of the `AtpackError` that refused it (``"UnsafeContentError"``)."""
    differs: tuple[Mismatch, ...] = ()
    """For an artifact skipped because it was made elsewhere, each environment field that differs."""


@dataclasses.dataclass
class PopulateReport:
    """Every artifact's outcome (but those of kinds populate never acts on, `Kind.populate` ``none``),
    plus where and how populate ran."""

    pack: str
    inductor_dir: str
    triton_dirs: list[str]
    """Every Triton folder written to (each per-device folder, then Triton's own)."""
    dry_run: bool = False
    ignored_environment: bool = False
    trusted_pickles: bool = False
    signed_by: str = ""
    """The id of the trusted key whose signature was checked, when populate required one."""
    replay: str = ""
    """Whether processes using the Inductor folder replay recorded tuning results, and why."""
    hints: str = ""
    """Where the hints went (``populate --hints``), and how many problems the folder's file holds."""
    outcomes: list[Outcome] = dataclasses.field(default_factory=list)
    seconds: float = 0.0
    bytes_read: int = 0

    def count(self, action: str) -> int:
        return sum(1 for o in self.outcomes if o.action == action)

    @property
    def ok(self) -> bool:
        """No artifact failed. True also when nothing applied here (every artifact skipped, or
        none): a startup check that needs the caches warm asks `applied` too."""
        return self.count(FAILED) == 0

    @property
    def applied(self) -> int:
        """How many artifacts the caches hold after populate: written, merged, or already
        present (in a dry run, how many would be)."""
        return sum(self.count(action) for action in APPLIED)

    def format(self, *, verbose: bool = False) -> str:
        """A readable report: counts per kind and action, then the reasons for skips."""
        verb = "would populate" if self.dry_run else "populated"
        lines = [f"{verb} from {self.pack}:", f"  {self.inductor_dir} (inductor)"]
        lines += [f"  {folder} (triton)" for folder in self.triton_dirs]
        if self.ignored_environment:
            lines.append(
                "environment check OVERRIDDEN (--ignore-environment): artifacts made elsewhere are written too"
            )
        if self.signed_by:
            lines.append(f"signature verified: trusted key {self.signed_by}")
        if self.replay:
            lines.append(f"replay: {self.replay}")
        if self.hints:
            lines.append(f"hints: {self.hints}")
        table = collections.Counter((o.kind, o.action) for o in self.outcomes)
        for kind in sorted({k for k, _ in table}):
            counts = ", ".join(f"{table[kind, a]} {self._label(a)}" for a in ACTIONS if table[kind, a])
            lines.append(f"  {kind:28s} {counts}")
        why = collections.Counter(
            (o.kind, o.action, o.detail) for o in self.outcomes if o.action in (SKIPPED, FAILED, KEPT, HINTED)
        )
        for (kind, action, detail), n in sorted(why.items()):
            lines.append(f"  {action} {n} {kind}: {detail}")
        if verbose:
            lines += [f"    {self._label(o.action):11s} {o.kind} {o.key} {o.detail}".rstrip() for o in self.outcomes]
        total = ", ".join(f"{self.count(a)} {self._label(a)}" for a in ACTIONS if self.count(a))
        lines.append(
            f"{len(self.outcomes)} artifacts: {total or 'none'} in {self.seconds:.2f} s, {self.bytes_read:,} bytes read"
        )
        if not self.applied:
            lines.append(self.nothing_applied())
        return "\n".join(printable(line) for line in lines)  # a pack's keys and values: shown, never acting

    def nothing_applied(self) -> str:
        """Why nothing applied, in one line: the environment field that differs for the most
        artifacts, and what to do (meaningful where `applied` is 0)."""
        verb = "would apply" if self.dry_run else "applied"
        if not self.outcomes:
            return f"nothing {verb}: the pack holds no artifact"
        differs = collections.Counter(m.field for o in self.outcomes for m in o.differs)
        if differs:
            field, n = differs.most_common(1)[0]
            first = next(m for o in self.outcomes for m in o.differs if m.field == field)
            made = f"{n} of {len(self.outcomes)} artifacts were made elsewhere ({first})"
            if hinted := self.count(HINTED):
                return f"no exact result {verb} here: {made}; {hinted} kept as hints, tuned among where a lookup misses"
            return f"nothing {verb} here: {made}; {_advice(first)}"
        untrusted = sum(1 for o in self.outcomes if o.action == SKIPPED and _RUNS_CODE in o.detail)
        if untrusted:
            return (
                f"nothing {verb} here: {untrusted} of {len(self.outcomes)} artifacts run code when loaded; "
                "pass --trust-pickles (trust_pickles=True) if you trust whoever made the pack"
            )
        top = collections.Counter((o.action, o.detail) for o in self.outcomes).most_common(1)[0][0]
        return f"nothing {verb} here: {top[0]}: {top[1]}"

    def _label(self, action: str) -> str:
        return f"to be {action}" if self.dry_run and action in (WRITTEN, MERGED, KEPT) else action


_RUNS_CODE = "which runs code"


def _advice(m: Mismatch) -> str:
    """What to do about a pack made where `m` differs from here."""
    field = m.field
    if field in ("device_name", "compute_capability", "backend_hash"):
        made = f"for {m.recorded}" if field == "device_name" else f"where {field} is {m.recorded}"
        return f"the pack was made {made}: populate it on such a GPU, or capture a pack on this machine"
    for package in ("torch", "triton", "cuda", "hip", "python"):
        if field.startswith(package) or (package == "torch" and field == "cache_key_tag"):
            made = f"{field} {shown(m.recorded)}"
            return f"install what made the pack ({made}), or capture a pack with what is installed here"
    return "`atpack populate --dry-run -v` lists every artifact and why; capture a pack on this machine"


@dataclasses.dataclass
class _Planned:
    artifact: Artifact
    root: CacheDir
    writes: list[FileWrite]
    states: list[str]
    note: str = ""
    kept: str = ""  # why what the folder holds is kept, and nothing of the artifact written
    superseded: str = ""  # which artifact of the pack writes its file instead
    error: AtpackError | None = None  # the first file that could not be written

    def done(self, i: int) -> Callable[[], None]:
        """What marks file `i` written."""
        return lambda: self.states.__setitem__(i, "written")

    def failed(self, error: AtpackError) -> None:
        """Marks the artifact failed: its other files may be written, never its `last` ones."""
        if self.error is None:
            self.error = error


def populate(
    pack: Pack | str | os.PathLike[str],
    *,
    inductor_dir: str | None = None,
    triton_dir: str | None = None,
    dry_run: bool = False,
    ignore_environment: bool = False,
    trust_pickles: bool = False,
    storage_options: dict[str, Any] | None = None,
    environment: LocalEnvironment | None = None,
    trusted_keys: Sequence[str | os.PathLike[str]] = (),
    callback: Progress = SILENT,
    devices: Sequence[int] | None = None,
    limits: Limits = DEFAULT_LIMITS,
    retry: Retry | None = None,
    hints: bool = False,
) -> PopulateReport:
    """Write every artifact of `pack` that is valid on this machine into the cache folders
    (by default, the ones torch and triton use here) and report what happened to each.

    Triton's artifacts go to every Triton folder the processes started here read (`atpack.folders`):
    each per-device folder under the Inductor folder, for each of `devices` (by default, every
    CUDA device here, or device 0), and Triton's own; `triton_dir` names one folder instead.

    Re-running is idempotent. `ignore_environment` writes every artifact regardless of
    where it was made (for tests, and for users who know better); the report says so.
    Megacache entries are written where torch's own hooks would write them. Artifacts that run
    code when loaded (pickled Megacache entries, Triton's compiled host modules) only with
    `trust_pickles`.

    With `trusted_keys` (public key files), a pack is populated only if one of them signed it
    (`atpack.signing`); otherwise `SignatureError` is raised before anything is written. So is
    a `LimitError` when the pack (all the packs of a model folder together) declares more bytes
    or files to write than `limits` allow, or a folder holds more packs.

    A frame of the pack that does not verify fails the artifacts whose files it holds (none of
    their files made visible) and the others are written: the report lists both.
    `callback` (a `atpack.pack.Progress`: an fsspec callback such as `TqdmCallback`) follows the blobs read
    to be written; `retry` (an `atpack.Retry`) says how reads from a remote store are retried.

    With `hints`, the tuning results made elsewhere (another GPU, torch or Triton) are not only
    skipped: their winners become hints in the Inductor folder (`atpack.hints`), the candidates
    a process benchmarks where its own lookup misses. Their outcome is ``hinted``.
    """
    budget = _Budget(limits)
    inductor = inductor_dir or default_inductor_dir()
    if triton_dir:
        triton_dirs = [triton_dir]
    else:
        triton_dirs = triton_dirs_to_populate(inductor, (cuda_devices() if devices is None else list(devices)) or [0])
    options: dict[str, Any] = {
        "inductor_dir": inductor,
        "triton_dirs": triton_dirs,
        "dry_run": dry_run,
        "ignore_environment": ignore_environment,
        "trust_pickles": trust_pickles,
        "storage_options": storage_options,
        "environment": environment,
        "trusted_keys": trusted_keys,
        "callback": callback,
        "retry": retry,
        "hints": hints,
    }
    if isinstance(pack, Pack):
        return _populate_one(pack, budget, **options)
    urls = find_packs(pack, storage_options=storage_options)
    if len(urls) == 1:
        return _populate_one(urls[0], budget, **options)
    if len(urls) > limits.max_packs:
        raise LimitError(f"{os.fspath(pack)}: {len(urls)} packs, over the limit of {limits.max_packs}")
    # all or none: every pack opened, checked and held open before any is written, so that a pack
    # swapped for another after its check is not what is written (a local pack is read through
    # the descriptor opened here); the budget bounds what they hold together (max_write_files)
    opened: list[Pack] = []
    try:
        for url in urls:
            opened.append(open_pack(url, storage_options=storage_options, limits=limits, retry=retry))
            if trusted_keys:
                _check_signature(opened[-1], trusted_keys)
            budget.charge(opened[-1], os.fspath(pack), len(triton_dirs))
        budget = _Budget(limits)  # charged again as each is written
        return _combined([_populate_one(each, budget, **options) for each in opened], os.fspath(pack))
    finally:
        for each in opened:
            each.close()


def _populate_one(
    pack: Pack | str,
    budget: _Budget,
    *,
    inductor_dir: str,
    triton_dirs: list[str],
    dry_run: bool,
    ignore_environment: bool,
    trust_pickles: bool,
    storage_options: dict[str, Any] | None,
    environment: LocalEnvironment | None,
    trusted_keys: Sequence[str | os.PathLike[str]],
    callback: Progress,
    retry: Retry | None,
    hints: bool,
) -> PopulateReport:
    start = time.perf_counter()
    opened = not isinstance(pack, Pack)
    source = (
        pack
        if isinstance(pack, Pack)
        else open_pack(pack, storage_options=storage_options, limits=budget.limits, retry=retry)
    )
    try:
        signed_by = _check_signature(source, trusted_keys) if trusted_keys else ""
        report = PopulateReport(
            pack=source.name,
            inductor_dir=inductor_dir,
            triton_dirs=triton_dirs,
            dry_run=dry_run,
            ignored_environment=ignore_environment,
            trusted_pickles=trust_pickles,
            signed_by=signed_by,
        )
        read_before = source.bytes_read
        budget.charge(source, source.name, len(triton_dirs))
        _populate(source, report, environment or LocalEnvironment(), callback, budget.limits, hints)
        report.bytes_read = source.bytes_read - read_before
        tuned = {a.kind for a in source.artifacts if isinstance(a, Artifact) and kinds.of(a).turns_replay_on}
        if not dry_run and any(o.kind in tuned and o.action in (WRITTEN, PRESENT, HINTED) for o in report.outcomes):
            report.replay = _switch_replay_on(report.inductor_dir)
    finally:
        if opened:
            source.close()
    report.seconds = time.perf_counter() - start
    log.info("%s", report.format().splitlines()[-1])
    return report


def _switch_replay_on(inductor_dir: str) -> str:
    """Turn on the replay of tuning results for the processes that will use `inductor_dir`
    (`atpack.replay`), and say how it stands, with the reason that decides it."""
    from . import replay

    try:
        replay.enable(inductor_dir)
    except AtpackError as e:
        return f"off: {e}"
    on, why = replay.state(inductor_dir)
    if not on:
        return f"off: {why}"
    return f"on for processes using {inductor_dir}: {why}"


@dataclasses.dataclass
class _Budget:
    """What populate may still write, charged with each pack's declared sizes before anything
    of it is written: a pack cannot make populate write more than `limits` allow, however its
    files are spread over artifacts or packs."""

    limits: Limits
    bytes: int = 0
    files: int = 0

    def charge(self, pack: Pack, what: str, triton_folders: int) -> None:
        size, files = _declared(pack, triton_folders)
        self.bytes += size
        self.files += files
        if self.bytes > self.limits.max_write_bytes:
            raise LimitError(
                f"{what}: {self.bytes:,} bytes of files to write, over the limit of {self.limits.max_write_bytes:,}"
            )
        if self.files > self.limits.max_write_files:
            raise LimitError(
                f"{what}: {self.files:,} files to write, over the limit of {self.limits.max_write_files:,}"
            )


def _declared(pack: Pack, triton_folders: int) -> tuple[int, int]:
    """At most how many bytes and files populating `pack` writes, from its index alone: each
    file from a blob counted with the blob's size (once per file: one blob can fill many),
    plus, per artifact, one file rendered from it (a JSON file, Triton's group file) no larger
    than the artifact itself; a Triton artifact once in each of the `triton_folders`."""
    size = files = 0
    for artifact, raw in zip(pack.artifacts, pack.raw_artifacts):
        if isinstance(artifact, Artifact):
            refs = list(artifact.blob_refs())
            copies = triton_folders if kinds.of(artifact).folder == "triton" else 1
            size += copies * (len(raw) + sum(pack.blob_size(r) for r in refs))
            files += copies * (len(refs) + 1)
    return size, files


def _check_signature(pack: Pack, trusted_keys: Sequence[str | os.PathLike[str]]) -> str:
    from .signing import verify_signature

    kid = verify_signature(pack, trusted_keys)
    log.info("%s: signed by trusted key %s", pack.name, kid)
    return kid


def find_packs(url: str | os.PathLike[str], *, storage_options: dict[str, Any] | None = None) -> list[str]:
    """The packs at `url`: the pack itself, or, for a folder (a model checkpoint, on any fsspec
    URL, ``hf://`` included), the packs beside the weights: ``<folder>/atpack/*.atpack`` and
    ``<folder>/*.atpack``, sorted."""
    base = os.fspath(url).rstrip("/")
    if not storage.is_folder(url, storage_options):  # each call within the storage deadline
        return [os.fspath(url)]
    inside = {f"atpack/{name}" for name in storage.glob(f"{base}/atpack/*.atpack", storage_options)}
    beside = set(storage.glob(f"{base}/*.atpack", storage_options))
    if not inside | beside:
        raise StorageError(f"{base}: a folder with no pack (looked for atpack/*.atpack and *.atpack)")
    return [f"{base}/{name}" for name in sorted(inside | beside)]


def _combined(reports: list[PopulateReport], name: str) -> PopulateReport:
    first = reports[0]
    combined = dataclasses.replace(first, pack=name, outcomes=[], seconds=0.0, bytes_read=0)
    combined.hints = next((r.hints for r in reversed(reports) if r.hints), "")
    for report in reports:
        combined.outcomes += report.outcomes
        combined.seconds += report.seconds
        combined.bytes_read += report.bytes_read
    combined.signed_by = ", ".join(sorted({r.signed_by for r in reports if r.signed_by}))
    return combined


def _populate(
    pack: Pack,
    report: PopulateReport,
    local: LocalEnvironment,
    callback: Progress,
    limits: Limits,
    hints: bool = False,
) -> None:
    dirs = _Dirs(CacheDir(report.inductor_dir), [])
    try:
        dirs.triton.extend(CacheDir(folder) for folder in report.triton_dirs)  # each closed below, however far it got
        _populate_into(dirs, pack, report, local, callback, limits, hints)
    finally:
        dirs.close()


def _populate_into(
    dirs: _Dirs,
    pack: Pack,
    report: PopulateReport,
    local: LocalEnvironment,
    callback: Progress,
    limits: Limits,
    hints: bool = False,
) -> None:
    planned: list[_Planned] = []
    elsewhere: list[tuple[Artifact, Outcome]] = []  # made elsewhere, of a kind a hint can come from
    merges: list[tuple[Artifact, str]] = []
    checked: dict[tuple[str, type[Artifact]], list[Mismatch]] = {}
    for artifact in pack.artifacts:
        if isinstance(artifact, UnknownArtifact):
            report.outcomes.append(
                Outcome(artifact.kind, artifact.key, SKIPPED, "a kind this atpack version does not know")
            )
            continue
        kind = kinds.of(artifact)
        if kind.populate == "none":
            continue
        if never := kind.never(artifact):
            report.outcomes.append(Outcome(artifact.kind, artifact.key, SKIPPED, never))
            continue
        key = (artifact.env, type(artifact))
        if key not in checked:
            kind_type = type(artifact)
            recorded = pack.manifest.environments[artifact.env]
            checked[key] = mismatches(
                recorded, local.get, kind_type.depends_on, required=kind_type.requires, exact=report.dry_run
            )
        reasons = checked[key]
        note = ""
        if reasons:
            why = "; ".join(map(str, reasons))
            if not report.ignored_environment:
                skipped = Outcome(artifact.kind, artifact.key, SKIPPED, why, differs=tuple(reasons))
                if hints and isinstance(artifact, _hints.HINTED_KINDS):
                    elsewhere.append((artifact, skipped))
                else:
                    report.outcomes.append(skipped)
                continue
            note = "environment differs, overridden: " + why
        if not report.ignored_environment and (contradiction := _contradiction(artifact, {}, local)):
            report.outcomes.append(_failed(artifact, contradiction))
            continue
        if artifact.runs_code and not report.trusted_pickles:
            why = f"{artifact.runs_code}, {_RUNS_CODE}: pass trust_pickles=True (--trust-pickles) to load it"
            report.outcomes.append(Outcome(artifact.kind, artifact.key, SKIPPED, why))
            continue
        try:
            if kind.populate == "merged":
                merges.append((artifact, note))
                continue
            plans = [_plan(pack, artifact, root, note) for root in dirs.of(artifact)]
        except AtpackError as e:
            report.outcomes.append(_failed(artifact, e))
            continue
        planned += plans
    _resolve_conflicts(planned)
    _check_blobs(pack, planned, None if report.ignored_environment else local)
    if not report.dry_run:
        _write(pack, planned, dirs.inductor, callback, limits.batch_bytes)
    report.outcomes += _outcomes(planned, report.dry_run)
    report.outcomes += [_merge(a, note, dirs.inductor, report.dry_run) for a, note in merges]
    if hints:
        _hint(pack, elsewhere, report, local)


def _hint(
    pack: Pack, elsewhere: list[tuple[Artifact, Outcome]], report: PopulateReport, local: LocalEnvironment
) -> None:
    """Keep the winners of the results made elsewhere as hints (`atpack.hints`), and say so."""
    made = [a for a, _ in elsewhere]
    kernels = _kernel_problems(pack, {a.path for a in made if isinstance(a, InductorBestConfig)})
    here = {f: local.get(f) for f in _HINT_FIELDS}
    found, gave = _hints.from_artifacts(made, pack.manifest.environments, kernels, here)
    hinted = {id(a) for a in gave}
    for artifact, skipped in elsewhere:
        if id(artifact) in hinted:
            skipped = dataclasses.replace(skipped, action=HINTED, detail=f"{skipped.detail}: its winners kept as hints")
        report.outcomes.append(skipped)
    if report.dry_run:
        report.hints = f"{len(found)} problems would be hinted" if found else "none in this pack applies"
    elif found:
        path, total = _write_hints(report.inductor_dir, found)
        report.hints = (
            f"{len(found)} problems hinted, {total} in {path} (ATPACK_HINTS=0, or removing it, turns them off)"
        )
    else:
        report.hints = "none: no result of this pack was made elsewhere with winners to offer"


def _kernel_problems(pack: Pack, paths: set[str]) -> dict[str, tuple[str, str]]:
    """The kernel problem (digest, words) of each `.best_config` path of `paths` whose lookup key
    the pack holds with one (its ``kernel`` component)."""
    keys = {
        a.components: a.lookup
        for a in pack.artifacts
        if isinstance(a, LookupKey) and a.cache == "autotune" and a.lookup in paths
    }
    found = {}
    for digest, data in pack.read_blobs(sorted(keys)):
        try:
            components = msgspec.json.decode(data, type=KeyComponents)
        except msgspec.DecodeError:
            continue  # `atpack explain` says what is wrong with it; a hint is only ever missing
        for c in components:
            if c.name == "kernel" and _SHA256.fullmatch(c.hash):
                found[keys[digest]] = (c.hash, c.shown)
    return found


def _write_hints(inductor_dir: str, found: list[_hints.Hint]) -> tuple[str, int]:
    """Add `found` to the folder's hints (the earlier first, at one distance), atomically; the
    file's path and how many problems it holds. A file there that is not atpack's is replaced."""
    from .replay import HINTS_FILE

    with CacheDir(inductor_dir) as root:
        path = root.path(HINTS_FILE)
        try:
            before = _hints.read(path)
        except AtpackError as e:
            log.warning("atpack: %s: replaced", e)
            before = []
        merged = _hints.nearest([*before, *found])
        root.write(path, _hints.encode(merged))
    return path, len(merged)


_SHA256 = re.compile(r"[0-9a-f]{64}")
_HINT_FIELDS = ("compute_capability", "torch_version", "triton_version")


def _plan(pack: Pack, artifact: Artifact, root: CacheDir, note: str) -> _Planned:
    """The files `artifact` writes into `root`, and what each of them holds there now."""
    writes = kinds.of(artifact).files(artifact, root)
    _check_sizes(pack, writes)
    # the files that make the others visible (written last) are looked at first: another
    # process writes them after the others, so where they are, the others are there too
    order = sorted(range(len(writes)), key=lambda i: not writes[i].last)
    states = [""] * len(writes)
    for i in order:
        w = writes[i]
        states[i] = root.state(w.path, data=w.data, digest=w.blob, size=w.size)
    return _Planned(artifact, root, writes, states, note, _kept(artifact, root, writes, states))


def _failed(artifact: Artifact, error: AtpackError) -> Outcome:
    return Outcome(artifact.kind, artifact.key, FAILED, str(error), type(error).__name__)


def _check_sizes(pack: Pack, writes: list[FileWrite]) -> None:
    for w in writes:
        if w.blob is not None and pack.blob_size(w.blob) != w.size:
            raise FormatError(
                f"{os.path.basename(w.path)}: declares {w.size} bytes, its blob holds {pack.blob_size(w.blob)}"
            )


def _resolve_conflicts(planned: list[_Planned]) -> None:
    """Where two artifacts of the pack write one file with different content, the one of higher
    precedence (`Kind.precedence`: a later Megacache record over an earlier, a captured result
    over torch's record of it) writes it and the other is superseded; where neither comes first,
    both are refused: which of them is right is not for populate to guess."""
    claims: dict[str, tuple[bytes | str, _Planned]] = {}
    for p in planned:
        for w in p.writes:
            content: bytes | str = w.blob if w.blob is not None else (w.data or b"")
            first, owner = claims.setdefault(w.path, (content, p))
            if first == content or owner is p:
                continue
            mine, theirs = (
                kinds.of(p.artifact).precedence(p.artifact),
                kinds.of(owner.artifact).precedence(owner.artifact),
            )
            if mine == theirs:
                for culprit, other in ((p, owner), (owner, p)):
                    culprit.failed(
                        FormatError(
                            f"conflicting artifacts in the pack: {w.path}: {other.artifact.kind} "
                            f"{other.artifact.key} writes different content there"
                        )
                    )
                continue
            loser, winner = (p, owner) if mine < theirs else (owner, p)
            loser.superseded = f"superseded by the pack's {winner.artifact.kind} for the same file"
            claims[w.path] = (content, p) if winner is p else (first, owner)


def _kept(artifact: Artifact, root: CacheDir, writes: list[FileWrite], states: list[str]) -> str:
    """Why what the folder holds is kept as it is, nothing of the artifact written ("" when
    nothing is in the way). An existing result that differs is never replaced or mixed with
    the pack's files. A file that `replace` allows (a kernel's group file, which makes the
    others visible to Triton) is replaced only where it is a stale copy of the pack's: it
    lists the same files, every one of them identical, and only its paths differ."""
    differ = [w.path for w, s in zip(writes, states) if s == "different" and not w.replace]
    if differ:
        return f"kept {len(differ)} existing file(s) that differ: {os.path.basename(differ[0])}"
    for w, state in zip(writes, states):
        if not w.replace or state == "absent":
            continue
        name = os.path.basename(w.path)
        if any(s != "same" for other, s in zip(writes, states) if other is not w):
            return f"kept the existing kernel: {name} is there and the pack would add files to its folder"
        if state == "different" and not _repairable(artifact, root, w.path):
            return f"kept the existing kernel: {name} lists other files than the pack's"
    return ""


def _repairable(artifact: Artifact, root: CacheDir, path: str) -> bool:
    try:
        existing = root.read(path)
    except AtpackError:  # a folder, a symlink, a FIFO: not a group file to repair
        return False
    return existing is not None and kinds.of(artifact).repairable(artifact, existing)


def _check_blobs(pack: Pack, planned: list[_Planned], local: LocalEnvironment | None) -> None:
    """Refuse, before any of its files is written, each artifact whose kind checks a blob first
    (`Kind.check`: a kernel whose metadata does not name it), or whose blob states another
    machine than `local` (None: not checked). Only artifacts that write something are checked,
    their blobs read in one pass (small frames: the write reads them again)."""
    by_blob: dict[str, list[_Planned]] = collections.defaultdict(list)
    for p in planned:
        if p.error is None and not p.kept and any(s != "same" for s in p.states):
            blob = kinds.of(p.artifact).check_blob(p.artifact)
            if blob is not None:
                by_blob[blob].append(p)

    def unreadable(digests: list[str], error: AtpackError) -> None:
        for digest in digests:
            for p in by_blob[digest]:
                p.failed(error)

    for digest, data in pack.read_blobs(by_blob, failed=unreadable):
        for p in by_blob[digest]:
            try:
                kinds.of(p.artifact).check(p.artifact, data)
            except AtpackError as e:
                p.failed(e)
            if local is not None and (contradiction := _contradiction(p.artifact, {digest: data}, local)):
                p.failed(contradiction)


def _contradiction(artifact: Artifact, small: dict[str, bytes], local: LocalEnvironment) -> AtpackError | None:
    """What an artifact states itself of the machine it was made for (a kernel's metadata: its
    GPU architecture and Triton release; a GEMM timing file's device; a host module's Python),
    where this machine differs. Checked whatever the pack's environment record says: a record
    that leaves a field out vouches for nothing, so the artifact's own word is held to the
    machine too. Build keys are compared by the dry run only (`mismatches`)."""
    depends_on = type(artifact).depends_on
    for field, stated in kinds.of(artifact).says(artifact, small).items():
        if field in depends_on and field not in BUILD_KEYS:
            have = local.get(field)
            if have is not None and have != stated:
                return EnvironmentMismatchError(
                    f"{artifact.kind} {artifact.key}: it states {field} {shown(stated)} itself, "
                    f"this machine has {shown(have)}"
                )
    return None


def _relative(p: _Planned) -> str:
    """The one file an artifact writes, by its path in its cache folder."""
    path = next(w.path for w, s in zip(p.writes, p.states) if s in ("absent", "written", "different"))
    return os.path.relpath(path, p.root.root)


@dataclasses.dataclass(frozen=True)
class _Dirs:
    inductor: CacheDir
    triton: list[CacheDir]

    def of(self, artifact: Artifact) -> list[CacheDir]:
        """The folders an artifact is written into: Inductor's, or every Triton folder."""
        return [self.inductor] if kinds.of(artifact).folder == "inductor" else self.triton

    def close(self) -> None:
        """Close the folders populate kept open (`CacheDir.close`)."""
        for root in (self.inductor, *self.triton):
            root.close()


def _write(pack: Pack, planned: list[_Planned], link_root: CacheDir, callback: Progress, batch_bytes: int) -> None:
    """Inline files first, then blobs in storage order (each frame fetched once), then the
    files that make the others visible (Triton's group files), each stage complete before the
    next. A blob that cannot be read fails the artifacts it belongs to, not the others. A blob
    written to several places inside `link_root` (a kernel in each per-device Triton folder
    under the Inductor folder) is written once and hard-linked to the others."""
    by_blob: dict[str, list[tuple[_Planned, int]]] = collections.defaultdict(list)
    last: list[tuple[_Planned, int]] = []
    with Writes() as writes:
        for p in planned:
            if p.error is not None or p.kept or p.superseded:
                continue  # refused, or kept: an existing result that differs is never mixed with the pack's files
            for i, (w, state) in enumerate(zip(p.writes, p.states)):
                if state == "same":
                    continue
                if w.last:
                    last.append((p, i))
                elif w.blob is not None:
                    by_blob[w.blob].append((p, i))
                else:
                    _add(writes, p, i, w.data or b"")
        writes.flush()

        def unreadable(digests: list[str], error: AtpackError) -> None:
            for digest in digests:
                for p, _ in by_blob[digest]:
                    p.failed(error)
                callback.relative_update(1)

        links: list[tuple[_Planned, int, _Planned, int]] = []
        callback.set_size(len(by_blob))
        for digest, data in pack.read_blobs(by_blob, batch_bytes=batch_bytes, failed=unreadable):
            first: tuple[_Planned, int] | None = None
            for p, i in by_blob[digest]:
                if first is not None and _inside(p.writes[i].path, link_root.root):
                    links.append((p, i, *first))  # the same bytes in another per-device folder: a link
                    continue
                if first is None and _inside(p.writes[i].path, link_root.root):
                    first = (p, i)
                _add(writes, p, i, data)
            callback.relative_update(1)
        writes.flush()
        for p, i, source, j in links:
            _link(link_root, source, j, p, i)
        for p, i in last:
            if p.error is None:  # a kernel whose files are not all there is not made visible
                _add(writes, p, i, p.writes[i].data or b"")
        writes.flush()
        if writes.threaded:
            log.debug("creating files is slow here: wrote them on %d threads", Writes.THREADS)


def _add(writes: Writes, p: _Planned, i: int, data: bytes) -> None:
    """Write file `i` of `p`: created, never over a file another writer made since the plan,
    unless it is one the kind may replace (`FileWrite.replace`)."""
    w = p.writes[i]
    writes.add(p.root, w.path, data, p.done(i), p.failed, create=not w.replace)


def _inside(path: str, root: str) -> bool:
    return path.startswith(root + "/")


def _link(root: CacheDir, source: _Planned, j: int, target: _Planned, i: int) -> None:
    """Make file `i` of `target` the file `j` of `source` wrote (a hard link, or a copy where the
    filesystem has none): the same bytes, by the same check."""
    if source.states[j] != "written":
        target.failed(source.error or StorageError(f"{source.writes[j].path}: was not written"))
        return
    relative = len(root.root) + 1
    try:
        done = root.link(source.writes[j].path[relative:], target.writes[i].path[relative:])
    except AtpackError as e:
        target.failed(e)
        return
    if done == "different":
        target.failed(StorageError(f"{target.writes[i].path}: another writer put other content there meanwhile"))
    else:
        target.done(i)()


def _outcomes(planned: list[_Planned], dry_run: bool) -> list[Outcome]:
    """One outcome per artifact, over every folder it was planned into."""
    plans: dict[int, list[_Planned]] = {}
    for p in planned:
        plans.setdefault(id(p.artifact), []).append(p)
    return [_outcome(each, dry_run) for each in plans.values()]


def _outcome(plans: list[_Planned], dry_run: bool) -> Outcome:
    """Failed if it failed in one folder; else present if another artifact of the pack writes its
    file (superseded); else kept if a folder's content was kept; else written if a file was
    written; else present."""
    a = plans[0].artifact
    notes = [plans[0].note] if plans[0].note else []
    if error := next((p.error for p in plans if p.error is not None), None):
        return _failed(a, error)
    if superseded := next((p.superseded for p in plans if p.superseded), ""):
        return Outcome(a.kind, a.key, PRESENT, "; ".join([superseded, *notes]))
    if kept := next((p.kept for p in plans if p.kept), ""):
        return Outcome(a.kind, a.key, KEPT, "; ".join([kept, *notes]))
    todo = [p for p in plans for s in p.states if s in ("absent", "written", "different")]
    if not todo:
        return Outcome(a.kind, a.key, PRESENT, "; ".join(notes))
    folders = len({id(p) for p in todo})
    where = f" in {folders} folders" if folders > 1 else ""
    what = f"{len(todo)} file(s)" if len(todo) > 1 else _relative(todo[0])
    did = f"{'would write' if dry_run else 'wrote'} {what}{where}"
    return Outcome(a.kind, a.key, WRITTEN, "; ".join([did, *notes]))


def _merge(artifact: Artifact, note: str, root: CacheDir, dry_run: bool) -> Outcome:
    try:
        action, detail = kinds.of(artifact).merge_file(artifact, root, dry_run=dry_run)
    except AtpackError as e:
        return _failed(artifact, e)
    return Outcome(artifact.kind, artifact.key, action, "; ".join(x for x in (detail, note) if x))
