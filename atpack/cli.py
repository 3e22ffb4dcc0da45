"""The `atpack` command: a thin shell over the library.

Exit codes: 0 success; 1 an error (bad pack, storage, cache folder), printed as one line;
2 bad usage (a flag, or a value atpack does not understand in a variable it reads); 3 ``populate
--require-applied`` applied nothing; ``diff --exit-code`` exits 1 when the packs differ.
Tracebacks only with ``--debug`` or ``ATPACK_DEBUG=1``.

Each command is one unit here: ``_NAME_command(sub)`` declares its arguments and sets its run
function, ``_NAME(args)``, defined just below it; `_parser` loops over the commands. A run
function handles arguments and prints; what a command computes or renders is the library's
(``inspect`` prints `atpack.report.describe`), and it imports its library modules when it runs,
so ``import atpack.cli`` stays cheap. The commands share this module rather than each having
its own (huggingface_hub's shape): each is a few dozen lines, and the checks, argument types and
progress bar they share sit below them, not in a further module that every command would import.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import msgspec

from . import __version__, settings
from .errors import AtpackError, IsAFolderError, NotFoundError, SettingError

if TYPE_CHECKING:
    from typing import TypeAlias

    _Commands: TypeAlias = argparse._SubParsersAction[argparse.ArgumentParser]

__all__ = ["main"]

log = logging.getLogger("atpack")

EXAMPLES = """\
examples:
  atpack capture -o s3://bucket/packs/llama.atpack -- python train.py   record a warm-up run
  atpack populate s3://bucket/packs/llama.atpack          warm this machine's caches (and turn on the replay)
  atpack pack -o s3://bucket/packs/llama-h100.atpack      collect this machine's cache folders
  atpack populate ./my-model                              the packs beside a checkpoint
  atpack populate pack.atpack --dry-run                   show what would be written
  atpack inspect pack.atpack --json                       what a pack holds, for scripts
  atpack verify pack.atpack                               check every byte
  atpack merge rank*.atpack -o all.atpack --policy fastest
  atpack push all.atpack s3://bucket/store -t llama-h100  publish under a name
  atpack pull s3://bucket/store llama-h100 -o /tmp/p.atpack
  atpack report pack.atpack -o report.html                a picture of a pack

exit codes: 0 success; 1 an error (one line on stderr; --debug for the traceback); 2 bad usage;
  3 populate --require-applied applied nothing; diff --exit-code: 1 when the packs differ
"""

NOTHING_APPLIED = 3
"""The exit code of `populate --require-applied` when no artifact applied here."""


def main(argv: Sequence[str] | None = None) -> int:
    _printable_output()
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = _parser(_named_command(argv))
    args = parser.parse_args(argv)
    if getattr(args, "timeout", None) is not None:
        os.environ["ATPACK_TIMEOUT"] = str(args.timeout)  # what the storage layer reads (atpack.storage)
    try:
        debug = args.debug or settings.debug()
    except SettingError as e:
        print(f"atpack: error: {e}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=logging.DEBUG if debug else (logging.INFO if args.verbose else logging.WARNING),
        format="atpack: %(levelname)s: %(message)s",
    )
    for handler in logging.getLogger().handlers:
        handler.setFormatter(_PrintableFormatter(handler.formatter))
    try:
        with _terminated_as_interrupted():
            return int(args.run(args) or 0)
    except BrokenPipeError:
        return 0
    except SettingError as e:  # a variable is part of the command line
        print(f"atpack: error: {e}", file=sys.stderr)
        return 2
    except (AtpackError, OSError) as e:  # OSError: what the library did not foresee of a file or a network
        if debug:
            raise
        print(f"atpack: error: {_one_line(e)}", file=sys.stderr)
        return 1
    except _UsageError as e:
        print(f"atpack: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("atpack: interrupted", file=sys.stderr)
        return 130


def _printable_output() -> None:
    """Whatever the locale or ``PYTHONIOENCODING``, a path or key that the terminal's encoding
    cannot show is printed escaped, never a `UnicodeEncodeError` halfway through a report."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            with contextlib.suppress(ValueError, OSError):
                reconfigure(errors="backslashreplace")


@contextlib.contextmanager
def _terminated_as_interrupted() -> Iterator[None]:
    """SIGTERM (``docker stop``, a job scheduler) ends a command as Ctrl-C does: what it was
    writing is cleaned up on the way out, instead of the process vanishing mid-write."""
    import signal

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread: leave the signal to whoever owns it
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _shown(text: str) -> str:
    """Text holding a pack's or a store's names, each line shown escaped (`atpack.text`)."""
    from .text import printable

    return "\n".join(printable(line) for line in text.split("\n"))


def _one_line(error: BaseException | str) -> str:
    """An error in one line, a pack's or a store's text in it shown escaped (`atpack.text`)."""
    from .text import printable

    return printable(" ".join(str(error).split())) or type(error).__name__


class _PrintableFormatter(logging.Formatter):
    """Log lines as the terminal should show them: a name or reason from a cache folder, a pack or
    a store (someone else's text) escaped, one line a record."""

    def __init__(self, inner: logging.Formatter | None) -> None:
        super().__init__()
        self._inner = inner or logging.Formatter()

    def format(self, record: logging.LogRecord) -> str:
        import copy

        from .text import printable

        shown = copy.copy(record)
        shown.msg, shown.args = printable(record.getMessage()), None  # a traceback (--debug) keeps its lines
        return self._inner.format(shown)


class _UsageError(Exception):
    """The command line asks for something that cannot be (exit code 2)."""


# --------------------------------------------------------------------------- the parser


def _parser(only: str | None = None) -> argparse.ArgumentParser:
    """The command line's parser; with `only`, a known command's alone (the others' parsers cost
    a command line more than some of its own work)."""
    parser = argparse.ArgumentParser(
        prog="atpack",
        description="Autotune results as packs: collect, inspect, verify, populate.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _global_options(parser, False)
    parser.add_argument("--version", action="version", version=f"atpack {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, command in _COMMANDS.items():
        if only in (None, name):
            command(sub)
    return parser


def _named_command(argv: Sequence[str]) -> str | None:
    """The command `argv` names, where it names a known one first (the options before it take no value)."""
    first = next((a for a in argv if not a.startswith("-")), None)
    return first if first in _COMMANDS else None


def _command(
    sub: _Commands,
    name: str,
    run: Callable[[argparse.Namespace], int],
    *,
    help: str,
    description: str,
    storage: bool = True,
) -> argparse.ArgumentParser:
    """Adds command `name`, which `run` runs, with --debug and -v (which it takes after its
    name too) and, with `storage`, the options of the commands that read or write URLs."""
    p = sub.add_parser(name, help=help, description=description)
    _global_options(p, argparse.SUPPRESS)
    if storage:
        _storage_options(p)
    p.set_defaults(run=run)
    return p


def _ir_options(parser: argparse.ArgumentParser) -> None:
    """What a pack keeps of each compiled kernel: by default what a warm start reads (its metadata
    and binary); ``--with-ir`` keeps the rest, for debugging and profilers."""
    parser.add_argument(
        "--with-ir",
        action="store_true",
        help="kernels: also their IR and source (PTX, LLVM IR, TTGIR, TTIR, .source), which no warm start reads",
    )
    parser.add_argument("--binaries-only", action="store_true", help=argparse.SUPPRESS)  # the default since 0.2


def _global_options(parser: argparse.ArgumentParser, default: Any) -> None:
    """--debug and -v, taken before the command (`default` False) and after it (`default`
    SUPPRESS: given there, they set the value; not given, they leave the one given before)."""
    parser.add_argument("--debug", action="store_true", default=default, help="show tracebacks (also ATPACK_DEBUG=1)")
    parser.add_argument("-v", "--verbose", action="store_true", default=default, help="more detail")


def _storage_options(parser: argparse.ArgumentParser) -> None:
    """--storage-options and --timeout, for the commands that read or write URLs."""
    parser.add_argument(
        "--storage-options",
        metavar="JSON",
        type=_json_object,
        default=None,
        help="fsspec storage_options, passed through unchanged (e.g. '{\"anon\": true}')",
    )
    parser.add_argument(
        "--timeout",
        metavar="SECONDS",
        type=_seconds,
        default=None,
        help="give up on a call to a remote store after this long, retries included (default 60; also ATPACK_TIMEOUT)",
    )


# --------------------------------------------------------------------------- the commands


def _pack_command(sub: _Commands) -> None:
    p = _command(
        sub,
        "pack",
        _pack,
        help="collect cache folders into a pack",
        description="Collect every supported artifact from Inductor's and Triton's cache folders.",
    )
    p.add_argument("-o", "--output", required=True, metavar="URL", help="where to write the pack (any fsspec URL)")
    p.add_argument("--inductor-dir", metavar="DIR", help="Inductor cache folder (default: the one torch uses)")
    p.add_argument("--triton-dir", metavar="DIR", help="Triton cache folder (default: the one triton uses)")
    p.add_argument("--no-inductor", action="store_true", help="do not collect Inductor's caches")
    p.add_argument("--no-triton", action="store_true", help="do not collect Triton's caches")
    p.add_argument(
        "--megacache",
        metavar="FILE",
        help="a blob from torch.compiler.save_cache_artifacts() to read (alone, unless cache folders are named)",
    )
    _ir_options(p)
    p.add_argument(
        "--environment", metavar="FILE", help="JSON environment the caches were made in (default: this machine's)"
    )
    p.add_argument(
        "--annotate",
        metavar="KEY=VALUE",
        type=_annotation,
        action="append",
        default=[],
        help="add an annotation (reverse-DNS key, like org.example.model)",
    )
    p.add_argument("--level", type=_zstd_level, default=9, help="zstd level, 1..22 (default 9)")
    p.add_argument(
        "--allow-empty",
        action="store_true",
        help="write a pack even when no artifact is found (by default that is an error)",
    )


def _pack(args: argparse.Namespace) -> int:
    from .collect import pack_caches
    from .env import environment_from_json

    environment = None
    if args.environment:
        try:
            with open(args.environment, "rb") as f:
                environment = environment_from_json(f.read())
        except (OSError, msgspec.DecodeError) as e:
            raise AtpackError(f"{args.environment}: not an environment file ({e})") from e
    _check_output(args.output, args.storage_options)
    annotations = dict(args.annotate)
    sources = [s for s, off in (("inductor", args.no_inductor), ("triton", args.no_triton)) if not off]
    blob = None
    if args.megacache:
        try:
            with open(args.megacache, "rb") as f:
                blob = f.read()
        except OSError as e:
            raise AtpackError(f"{args.megacache}: {e.strerror or e}") from e
        sources = [s for s in sources if getattr(args, f"{s}_dir")]  # the blob alone, unless folders are named
    try:
        report = pack_caches(
            args.output,
            inductor_dir=args.inductor_dir,
            triton_dir=args.triton_dir,
            sources=sources,
            megacache=blob,
            environment=environment,
            with_ir=args.with_ir,
            annotations=annotations,
            storage_options=args.storage_options,
            level=args.level,
            allow_empty=args.allow_empty,
        )
    except ValueError as e:
        raise AtpackError(str(e)) from e
    print(_shown(report.format()))
    return 0


def _capture_command(sub: _Commands) -> None:
    p = _command(
        sub,
        "capture",
        _capture,
        help="run a command and pack what it tuned",
        description="Run COMMAND (unchanged: it need not import atpack) and pack what its processes compiled and "
        "tuned, as atpack.capture() does in code: Megacache entries, .best_config files with coordinate descent's "
        "results, GEMM timings, Triton autotune results and the kernels the compiled code launches.",
    )
    p.add_argument("-o", "--output", required=True, metavar="URL", help="where to write the pack (any fsspec URL)")
    _ir_options(p)
    p.add_argument(
        "--partial",
        action="store_true",
        help="write the pack even if the command fails (by default a failed run publishes nothing)",
    )
    p.add_argument("command", nargs=argparse.REMAINDER, metavar="-- COMMAND", help="the command to run")


def _capture(args: argparse.Namespace) -> int:
    from .recording import capture_command

    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        raise _UsageError("capture: give the command to run after --")
    report = capture_command(
        command,
        args.output,
        with_ir=args.with_ir,
        partial=args.partial,
        storage_options=args.storage_options,
    )
    print(_shown(report.format()))
    if report.merged is None:
        print(
            f"atpack: error: {command[0]} exited with {report.returncode}: {args.output} not written", file=sys.stderr
        )
    return report.returncode if report.returncode >= 0 else 128 - report.returncode  # a signal: as sh says


def _replay_command(sub: _Commands) -> None:
    p = _command(
        sub,
        "replay",
        _replay,
        storage=False,
        help="show or switch the replay of tuning results in processes that never import atpack",
        description="atpack populate turns on, for the processes that use the Inductor folder it populated, the "
        "replay of tuning results torch would search again (atpack's torch plug-in). Show it, or turn it on or off.",
    )
    p.add_argument("action", nargs="?", choices=["status", "on", "off"], default="status")
    p.add_argument("--inductor-dir", metavar="DIR", help="Inductor cache folder (default: the one torch uses)")


def _replay(args: argparse.Namespace) -> int:
    from . import replay
    from .folders import default_inductor_dir

    folder = args.inductor_dir or default_inductor_dir()
    if args.action == "on":
        print(f"wrote {replay.enable(folder)}")
    elif args.action == "off":
        marker = os.path.join(folder, replay.MARKER)
        print(f"removed {marker}" if replay.disable(folder) else f"no {marker} to remove")
    on, why = replay.state(folder)
    print(f"replay {'on' if on else 'off'} for processes using {folder}: {why}")
    return 0


def _populate_command(sub: _Commands) -> None:
    p = _command(
        sub,
        "populate",
        _populate,
        help="write a pack's artifacts into this machine's caches",
        description="Write every artifact valid on this machine into the cache folders; explain the rest.",
    )
    p.add_argument("url", metavar="URL")
    p.add_argument("--inductor-dir", metavar="DIR", help="Inductor cache folder (default: the one torch uses)")
    p.add_argument("--triton-dir", metavar="DIR", help="Triton cache folder (default: the one triton uses)")
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="show what would be written and why not, comparing the build keys too (it imports torch's and "
        "Triton's compilers: seconds); write nothing",
    )
    p.add_argument(
        "--ignore-environment", action="store_true", help="write artifacts made elsewhere too (you know better)"
    )
    p.add_argument(
        "--trust-pickles",
        action="store_true",
        help="also load what runs code when loaded: pickled Megacache entries, Triton's host modules",
    )
    p.add_argument(
        "--trusted-key",
        action="append",
        default=[],
        metavar="PUBLIC.pem",
        help="populate only a pack signed by one of these public keys (repeatable)",
    )
    p.add_argument(
        "--hints",
        action="store_true",
        help="keep the tuning results made on another GPU, torch or Triton as hints: where a lookup misses, "
        "the processes using the Inductor folder benchmark the recorded winners among their own candidates",
    )
    p.add_argument(
        "--require-applied",
        action="store_true",
        help=f"exit {NOTHING_APPLIED} when no artifact applies here (none written, merged or already present): "
        "for startup checks that need the caches warm",
    )
    p.add_argument(
        "--explain",
        action="store_true",
        help="make the processes that use the Inductor folder record their cache lookups, for atpack explain",
    )
    p.add_argument("--json", action="store_true", help="print the report as JSON")


def _populate(args: argparse.Namespace) -> int:
    from .populate import populate

    report = populate(
        args.url,
        inductor_dir=args.inductor_dir,
        triton_dir=args.triton_dir,
        dry_run=args.dry_run,
        ignore_environment=args.ignore_environment,
        trust_pickles=args.trust_pickles,
        storage_options=args.storage_options,
        trusted_keys=args.trusted_key,
        callback=_silent() if args.json else _bar("reading blobs"),
        hints=args.hints,
    )
    if args.json:
        print(json.dumps(msgspec.to_builtins(report), indent=2))
    else:
        print(report.format(verbose=args.verbose))
    if args.explain and not args.dry_run:
        from . import replay

        marker = replay.enable(report.inductor_dir, replay.EXPLAIN_MARKER)
        said = f"wrote {marker}: processes using this folder record their cache lookups (atpack explain reads them)"
        print(said, file=sys.stderr if args.json else sys.stdout)
    if not report.ok:
        failed = [o for o in report.outcomes if o.action == "failed"]
        first = _one_line(f"{failed[0].kind} {failed[0].key}: {failed[0].detail}")
        print(f"atpack: error: {len(failed)} artifact(s) failed, the first: {first}", file=sys.stderr)
        return 1
    if args.require_applied and not report.applied:
        print(f"atpack: {_one_line(report.nothing_applied())} (--require-applied)", file=sys.stderr)
        return NOTHING_APPLIED
    return 0


def _explain_command(sub: _Commands) -> None:
    p = _command(
        sub,
        "explain",
        _explain,
        help="say which cache lookups of a process hit, which missed, and why",
        description="Read the lookup records of the processes that used an Inductor folder (recorded where "
        "ATPACK_EXPLAIN=1 or populate --explain asked) and explain each miss by the nearest entry of PACK: the "
        "component of the key that differs, or why populate left the entry out.",
    )
    p.add_argument("url", metavar="PACK", nargs="?", help="the pack (or model folder) the caches were populated from")
    p.add_argument("--records", metavar="FILE", nargs="+", help="record files (default: every one in the folder)")
    p.add_argument("--inductor-dir", metavar="DIR", help="Inductor cache folder (default: the one torch uses)")
    p.add_argument(
        "--off", action="store_true", help="stop recording in the folder (remove populate --explain's marker)"
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")


def _explain(args: argparse.Namespace) -> int:
    from . import replay
    from .explaining import explain
    from .folders import default_inductor_dir

    folder = args.inductor_dir or default_inductor_dir()
    if args.off:
        marker = os.path.join(folder, replay.EXPLAIN_MARKER)
        print(f"removed {marker}" if replay.disable(folder, replay.EXPLAIN_MARKER) else f"no {marker} to remove")
        return 0
    records = _records(args)
    artifacts: list[Any] = []
    environments: dict[str, Any] = {}
    components: dict[str, Any] = {}
    if args.url:
        from .explaining import key_components
        from .pack import open_pack
        from .populate import find_packs

        for url in find_packs(args.url, storage_options=args.storage_options):
            with open_pack(url, storage_options=args.storage_options) as pack:
                artifacts += pack.artifacts
                environments.update(pack.manifest.environments)
                components.update(key_components(pack))
    explanation = explain(records, artifacts, environments, components, pack=args.url, inductor_dir=folder)
    print(json.dumps(explanation.to_json(), indent=2) if args.json else explanation.format(verbose=args.verbose))
    return 0


def _records(args: argparse.Namespace) -> list[Any]:
    """The lookup records `--records` names, else every one in the Inductor folder."""
    from .folders import default_inductor_dir
    from .lookups import read_records, record_files

    folder = args.inductor_dir or default_inductor_dir()
    paths = args.records or record_files(folder)
    if not paths:
        raise NotFoundError(
            f"no lookup record in {folder}: run the process with ATPACK_EXPLAIN=1, or populate with --explain first"
        )
    return read_records(paths)


def _inspect_command(sub: _Commands) -> None:
    p = _command(
        sub,
        "inspect",
        _inspect,
        help="show what a pack holds",
        description="Show a pack's environments and artifacts (reads only its index); for a model folder, "
        "every pack beside the weights.",
    )
    p.add_argument("url", metavar="URL")
    p.add_argument("--json", action="store_true", help="machine-readable output")


def _inspect(args: argparse.Namespace) -> int:
    from .pack import open_pack
    from .populate import find_packs
    from .report import contents, describe

    urls = find_packs(args.url, storage_options=args.storage_options)
    found: list[Any] = []
    for url in urls:
        with open_pack(url, storage_options=args.storage_options) as pack:
            found.append(contents(pack) if args.json else describe(pack, verbose=args.verbose))
    if args.json:
        print(json.dumps(found[0] if len(urls) == 1 else {"url": args.url, "packs": found}, indent=2))
    else:
        print("\n\n".join(found))
    return 0


def _sign_command(sub: _Commands) -> None:
    p = _command(
        sub,
        "sign",
        _sign,
        help="sign a pack's content digest with an Ed25519 key",
        description="Sign a pack (the signature is stored in the pack; its content digest does not change).",
    )
    p.add_argument("url", metavar="URL")
    p.add_argument("--key", required=True, metavar="PRIVATE.pem", help="an Ed25519 private key (atpack keygen)")
    p.add_argument("-o", "--output", metavar="URL", help="write the signed pack here (default: over the pack)")


def _sign(args: argparse.Namespace) -> int:
    from .signing import sign

    if args.output:
        _check_output(args.output, args.storage_options)
    with _one_pack("sign", [args.url], args.storage_options):
        kid = sign(args.url, args.key, out=args.output, storage_options=args.storage_options)
    print(f"signed {args.output or args.url} with key {kid}")
    return 0


def _keygen_command(sub: _Commands) -> None:
    p = _command(
        sub,
        "keygen",
        _keygen,
        storage=False,
        help="make an Ed25519 key pair for signing packs",
        description="Write NAME.key (private, mode 600) and NAME.pub (public, to hand to verifiers).",
    )
    p.add_argument("name", metavar="NAME")


def _keygen(args: argparse.Namespace) -> int:
    from .signing import generate_key

    try:
        kid = generate_key(f"{args.name}.key", f"{args.name}.pub")
    except FileExistsError as e:
        raise AtpackError(f"{e.filename} exists (a file or a symlink): not overwriting it") from e
    print(f"wrote {args.name}.key (private) and {args.name}.pub (public), key {kid}")
    return 0


def _verify_command(sub: _Commands) -> None:
    p = _command(
        sub,
        "verify",
        _verify,
        help="check every digest of a pack",
        description="Read every byte of a pack and check every checksum and digest; for a model folder, of "
        "every pack beside the weights.",
    )
    p.add_argument("url", metavar="URL")
    p.add_argument(
        "--key",
        action="append",
        default=[],
        metavar="PUBLIC.pem",
        help="also require a valid signature by one of these public keys (repeatable)",
    )


def _verify(args: argparse.Namespace) -> int:
    from .pack import open_pack
    from .populate import find_packs

    for url in find_packs(args.url, storage_options=args.storage_options):
        with open_pack(url, storage_options=args.storage_options) as pack:
            pack.verify(callback=_bar("checking frames"))
            signed = ""
            if args.key:
                from .signing import verify_signature

                signed = f", signed by key {verify_signature(pack, args.key)}"
            print(
                f"ok: {pack.name}: {len(pack.artifacts)} artifacts, {pack.blob_count} blobs, every digest matches"
                f"{signed}"
            )
    return 0


def _megacache_command(sub: _Commands) -> None:
    p = _command(
        sub,
        "megacache",
        _megacache,
        help="write a pack's Megacache entries as a torch blob",
        description="Write the Megacache entries of a pack as a blob torch.compiler.load_cache_artifacts reads.",
    )
    p.add_argument("url", metavar="URL")
    p.add_argument("-o", "--output", required=True, metavar="FILE", help="where to write the blob")
    p.add_argument(
        "--trust-pickles",
        action="store_true",
        help="export its pickled entries too (graphs: torch unpickles them when it loads the blob)",
    )


def _megacache(args: argparse.Namespace) -> int:
    from .api import to_megacache
    from .storage import publish

    _check_output(args.output, None)
    with _one_pack("megacache", [args.url], args.storage_options):
        blob = to_megacache(args.url, trust_pickles=args.trust_pickles, storage_options=args.storage_options)
    with publish(args.output) as f:
        f.write(blob)
    print(f"wrote {args.output} ({len(blob):,} bytes)")
    return 0


def _env_command(sub: _Commands) -> None:
    p = _command(
        sub,
        "env",
        _env,
        storage=False,
        help="show this machine's environment",
        description="The environment fields artifacts are checked against here.",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output (usable with pack --environment)")


def _env(args: argparse.Namespace) -> int:
    from .env import LocalEnvironment

    env = LocalEnvironment().snapshot()
    if args.json:
        print(msgspec.json.format(msgspec.json.encode(env), indent=2).decode())
    else:
        for field in env.__struct_fields__:
            value = getattr(env, field)
            if field != "extra":
                print(f"{field:20s} {value if value is not None else '-'}")
    return 0


def _diff_command(sub: _Commands) -> None:
    p = _command(
        sub,
        "diff",
        _diff,
        help="what changed between two packs",
        description="Results added, removed and changed from pack A to pack B, with timing deltas.",
    )
    p.add_argument("before", metavar="A")
    p.add_argument("after", metavar="B")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--exit-code", action="store_true", help="exit 1 when the packs differ, 0 when not (as git diff)")


def _diff(args: argparse.Namespace) -> int:
    from .merging import diff

    with _one_pack("diff", [args.before, args.after], args.storage_options):
        changes = diff(args.before, args.after, storage_options=args.storage_options)
    if args.json:
        print(json.dumps([msgspec.to_builtins(c) for c in changes], indent=2))
    else:
        from .text import printable

        for c in changes:  # each field of the pack's escaped: a newline in a key is shown, never a line
            key, detail = printable(c.key), printable(c.detail)
            print(f"{c.change:8s} {printable(c.kind):24s} {key[:70]:70s} {detail}".rstrip())
        counts = {k: sum(1 for c in changes if c.change == k) for k in ("added", "removed", "changed")}
        print(", ".join(f"{n} {k}" for k, n in counts.items()))
    return 1 if args.exit_code and changes else 0


def _merge_command(sub: _Commands) -> None:
    p = _command(
        sub,
        "merge",
        _merge,
        help="merge packs (say, from several ranks) into one",
        description="Merge packs into one. The result does not depend on the order of the inputs. A model folder "
        "stands for the packs beside its weights. Signatures are not carried over: sign the merged pack.",
    )
    p.add_argument("inputs", nargs="+", metavar="URL", help="packs, or model folders")
    p.add_argument("-o", "--output", required=True, metavar="URL")
    p.add_argument(
        "--policy",
        choices=["fastest", "newest", "fail"],
        default="fail",
        help="for one question answered differently: keep the fastest result, the newest, or fail (default)",
    )


def _merge(args: argparse.Namespace) -> int:
    from .merging import merge
    from .populate import find_packs

    _check_output(args.output, args.storage_options)
    inputs = [pack for url in args.inputs for pack in find_packs(url, storage_options=args.storage_options)]
    report = merge(inputs, args.output, policy=args.policy, storage_options=args.storage_options)
    print(_shown(report.format()))
    return 0


def _push_command(sub: _Commands) -> None:
    p = _command(
        sub,
        "push",
        _push,
        help="put a pack in a store, optionally under tags",
        description="Put a pack in a store (blobs the store has are not sent again) and point tags at it.",
    )
    p.add_argument("pack", metavar="PACK")
    p.add_argument("store", metavar="STORE", help="the store's URL (any fsspec URL)")
    p.add_argument("-t", "--tag", action="append", default=[], help="a tag to point at the pack (repeatable)")


def _push(args: argparse.Namespace) -> int:
    from .store import Store

    with _one_pack("push", [args.pack], args.storage_options):
        report = Store(args.store, storage_options=args.storage_options).push(
            args.pack, tags=args.tag, progress=_progress(_bar("pushing blobs"))
        )
    print(_shown(report.format()))
    return 0


def _pull_command(sub: _Commands) -> None:
    p = _command(
        sub,
        "pull",
        _pull,
        help="get a pack from a store by tag or digest",
        description="Assemble a pack from a store, fetching only the blobs the local store lacks.",
    )
    p.add_argument("store", metavar="STORE")
    p.add_argument("ref", metavar="TAG|DIGEST")
    p.add_argument("-o", "--output", metavar="URL", help="where to write the pack (default: in the local store)")
    p.add_argument("--local", metavar="DIR", help="the node-local store (default: $ATPACK_CACHE_DIR/store)")


def _pull(args: argparse.Namespace) -> int:
    from .store import Store

    if args.output:
        _check_output(args.output, args.storage_options)
    local = Store(args.local) if args.local else None
    with _store_must_exist(args.store, args.storage_options):
        report = Store(args.store, storage_options=args.storage_options).pull(
            args.ref,
            args.output,
            local=local,
            storage_options=args.storage_options,
            progress=_progress(_bar("fetching blobs")),
        )
    print(_shown(report.format()))
    return 0


def _tag_command(sub: _Commands) -> None:
    p = _command(
        sub,
        "tag",
        _tag,
        help="list a store's tags, or point a tag at a pack",
        description="With NAME and REF, point tag NAME at REF (a digest or a tag), atomically; else list tags.",
    )
    p.add_argument("store", metavar="STORE")
    p.add_argument("name", nargs="?", metavar="NAME")
    p.add_argument("ref", nargs="?", metavar="REF")


def _tag(args: argparse.Namespace) -> int:
    from .store import Store

    registry = Store(args.store, storage_options=args.storage_options)
    if args.name is not None and args.ref is None:
        raise _UsageError("tag: give both NAME and REF, or neither to list the tags")
    with _store_must_exist(args.store, args.storage_options):
        if args.name is not None:
            print(f"{args.name} -> {registry.tag(args.name, args.ref)}")
            return 0
        names = registry.tags()
        if not names and _no_store(args.store, args.storage_options):
            raise NotFoundError(f"no store at {args.store}")
        tags = registry.resolve_many(names)
    for name, digest in tags.items():
        print(f"{_shown(name)}\t{digest}")
    if not tags:
        print(f"atpack: {args.store} holds no tag", file=sys.stderr)
    return 0


def _report_command(sub: _Commands) -> None:
    p = _command(
        sub,
        "report",
        _report,
        help="write an HTML page about a pack",
        description="A self-contained HTML page: environments, signatures, kernels, chosen configs, candidate "
        "timings. It reads without JavaScript.",
    )
    p.add_argument("url", metavar="URL")
    p.add_argument("-o", "--output", required=True, metavar="FILE.html")
    p.add_argument(
        "--key",
        action="append",
        default=[],
        metavar="PUBLIC.pem",
        help="check the pack's signatures against these public keys (repeatable); else they are listed unverified",
    )
    p.add_argument(
        "--lookups",
        action="store_true",
        help="add the cache lookups recorded in the Inductor folder (atpack explain's), explained by the pack",
    )
    p.add_argument("--records", metavar="FILE", nargs="+", help="with --lookups: these record files")
    p.add_argument("--inductor-dir", metavar="DIR", help="with --lookups: the Inductor folder (default: torch's)")


def _report(args: argparse.Namespace) -> int:
    from .folders import default_inductor_dir
    from .report import write_report

    _check_output(args.output, args.storage_options)
    records = _records(args) if args.lookups else []
    folder = args.inductor_dir or default_inductor_dir()
    with _one_pack("report", [args.url], args.storage_options):
        out = write_report(
            args.url,
            args.output,
            storage_options=args.storage_options,
            keys=args.key,
            records=records,
            inductor_dir=folder,
        )
    print(f"wrote {out}")
    return 0


# --------------------------------------------------------------------------- argument types


def _zstd_level(text: str) -> int:
    try:
        level = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 1 <= level <= 22:
        raise argparse.ArgumentTypeError(f"{level}: zstd levels are 1..22")
    return level


def _annotation(text: str) -> tuple[str, str]:
    from .pack import _ANNOTATION_KEY

    key, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"{text!r}: expected KEY=VALUE")
    if not _ANNOTATION_KEY.match(key):
        raise argparse.ArgumentTypeError(f"{key!r}: a key is reverse-DNS, like org.example.model")
    return key, value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"not a number of seconds above 0: {text!r}")
    return value


def _json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"not JSON: {e}") from e
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("must be a JSON object")
    return value


# --------------------------------------------------------------------------- progress


class _TerminalBar:
    """A progress bar on stderr (an `atpack.pack.Progress`)."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.size = self.value = 0

    def set_size(self, size: int) -> None:
        self.size = size
        self._draw()

    def relative_update(self, inc: int = 1) -> None:
        self.value += inc
        self._draw()

    def _draw(self) -> None:
        width, total = 30, self.size
        filled = width * min(self.value, total) // max(total, 1)
        end = "\n" if self.value >= total else ""
        print(
            f"\r{self.label} [{'#' * filled}{' ' * (width - filled)}] {self.value}/{total}",
            end=end,
            file=sys.stderr,
            flush=True,
        )


def _silent() -> Any:
    from .pack import SILENT

    return SILENT


def _bar(label: str) -> Any:
    """A progress bar on stderr, only when stderr is a terminal (never in logs or pipes)."""
    from .pack import SILENT

    return _TerminalBar(label) if sys.stderr.isatty() else SILENT


def _progress(bar: Any) -> Callable[[int, int], None]:
    """`progress(done, total)`, for the calls that take one (a store's push and pull), fed to `bar`."""

    def update(done: int, total: int) -> None:
        if getattr(bar, "size", None) != total:
            bar.set_size(total)
        bar.relative_update(done - getattr(bar, "value", done))

    return update


# --------------------------------------------------------------------------- shared checks


def _check_output(url: str, storage_options: dict[str, Any] | None) -> None:
    """Refuse, before any work, an output that names an existing local folder."""
    from .storage import local_path

    path = local_path(url, storage_options)
    if path is not None and os.path.isdir(path):
        raise IsAFolderError(f"{url}: a folder; -o names the file to write")


@contextlib.contextmanager
def _one_pack(command: str, urls: list[str], storage_options: dict[str, Any] | None) -> Iterator[None]:
    """Runs a command that takes pack files: where one of `urls` is a model folder, the error
    says so in one line and names its packs (looked up only once the command failed)."""
    try:
        yield
    except (IsAFolderError, NotFoundError) as e:
        for url in urls:
            packs = _packs_in_folder(url, storage_options)
            if packs:
                names = ", ".join(p[len(url.rstrip("/")) + 1 :] for p in packs[:4]) + (" ..." if len(packs) > 4 else "")
                raise IsAFolderError(
                    f"{url}: a model folder with {len(packs)} pack(s) ({names}): {command} takes one pack file"
                ) from e
        raise


def _packs_in_folder(url: str, storage_options: dict[str, Any] | None) -> list[str]:
    """The packs of the model folder at `url`; none where `url` is no such folder."""
    from .populate import find_packs

    try:
        packs = find_packs(url, storage_options=storage_options)
    except AtpackError:
        return []
    return [] if packs == [url] else packs


@contextlib.contextmanager
def _store_must_exist(url: str, storage_options: dict[str, Any] | None) -> Iterator[None]:
    """Runs a command on the store at `url`: where it failed because there is no store there,
    the error says so. Looked up only once the command failed for want of a tag or a pack (a
    store it cannot reach, or may not read, stays the command's own error: asking again would
    only fail the same way, as slowly)."""
    try:
        yield
    except NotFoundError as e:
        if _no_store(url, storage_options):
            raise NotFoundError(f"no store at {url}") from e
        raise


def _no_store(url: str, storage_options: dict[str, Any] | None) -> bool:
    from . import storage

    try:
        return not storage.is_folder(url, storage_options)
    except Exception:  # cannot tell (no network, no credentials): the command's own error stands
        return False


_COMMANDS: dict[str, Callable[[_Commands], None]] = {
    "pack": _pack_command,
    "capture": _capture_command,
    "replay": _replay_command,
    "populate": _populate_command,
    "inspect": _inspect_command,
    "explain": _explain_command,
    "sign": _sign_command,
    "keygen": _keygen_command,
    "verify": _verify_command,
    "megacache": _megacache_command,
    "env": _env_command,
    "diff": _diff_command,
    "merge": _merge_command,
    "push": _push_command,
    "pull": _pull_command,
    "tag": _tag_command,
    "report": _report_command,
}
"""Every command, in the order the help lists them."""
