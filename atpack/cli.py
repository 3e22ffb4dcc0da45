"""The `atpack` command: a thin shell over the library.

Exit codes: 0 success; 1 an atpack error (bad pack, storage, cache folder), printed as one
line; 2 bad usage. Tracebacks only with ``--debug`` or ``ATPACK_DEBUG=1``.
"""

from __future__ import annotations

import argparse
import collections
import json
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

import msgspec

from .errors import AtpackError

__all__ = ["main"]

log = logging.getLogger("atpack")

EXAMPLES = """\
examples:
  atpack pack -o s3://bucket/packs/llama-h100.atpack      collect this machine's caches
  atpack populate s3://bucket/packs/llama-h100.atpack     warm this machine's caches
  atpack populate pack.atpack --dry-run                   show what would be written
  atpack inspect pack.atpack --json                       what a pack holds, for scripts
  atpack verify pack.atpack                               check every byte
"""


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    debug = args.debug or os.environ.get("ATPACK_DEBUG", "") not in ("", "0")
    logging.basicConfig(
        level=logging.DEBUG if debug else (logging.INFO if args.verbose else logging.WARNING),
        format="atpack: %(levelname)s: %(message)s",
    )
    try:
        return int(args.run(args) or 0)
    except AtpackError as e:
        if debug:
            raise
        print(f"atpack: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", help="show tracebacks (also ATPACK_DEBUG=1)")
    common.add_argument("-v", "--verbose", action="store_true", help="more detail")
    storage = argparse.ArgumentParser(add_help=False)
    storage.add_argument(
        "--storage-options",
        metavar="JSON",
        type=_json_object,
        default=None,
        help="fsspec storage_options, passed through unchanged (e.g. '{\"anon\": true}')",
    )
    parser = argparse.ArgumentParser(
        prog="atpack",
        description="Autotune results as packs: collect, inspect, verify, populate.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[common],
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "pack",
        parents=[common, storage],
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
    p.add_argument("--binaries-only", action="store_true", help="kernels: metadata and binary only (no IR, no source)")
    p.add_argument(
        "--environment", metavar="FILE", help="JSON environment the caches were made in (default: this machine's)"
    )
    p.add_argument(
        "--annotate", metavar="KEY=VALUE", action="append", default=[], help="add an annotation (reverse-DNS key)"
    )
    p.add_argument("--level", type=int, default=9, help="zstd level, 1..22 (default 9)")
    p.set_defaults(run=_pack)

    p = sub.add_parser(
        "populate",
        parents=[common, storage],
        help="write a pack's artifacts into this machine's caches",
        description="Write every artifact valid on this machine into the cache folders; explain the rest.",
    )
    p.add_argument("url", metavar="URL")
    p.add_argument("--inductor-dir", metavar="DIR", help="Inductor cache folder (default: the one torch uses)")
    p.add_argument("--triton-dir", metavar="DIR", help="Triton cache folder (default: the one triton uses)")
    p.add_argument("--dry-run", action="store_true", help="show what would be written; write nothing")
    p.add_argument(
        "--ignore-environment", action="store_true", help="write artifacts made elsewhere too (you know better)"
    )
    p.add_argument(
        "--trust-pickles",
        action="store_true",
        help="also load what runs code when loaded: pickled Megacache entries, Triton's host modules",
    )
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(run=_populate)

    p = sub.add_parser(
        "inspect",
        parents=[common, storage],
        help="show what a pack holds",
        description="Show a pack's environments and artifacts (reads only its index).",
    )
    p.add_argument("url", metavar="URL")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(run=_inspect)

    p = sub.add_parser(
        "verify",
        parents=[common, storage],
        help="check every digest of a pack",
        description="Read every byte of a pack and check every checksum and digest.",
    )
    p.add_argument("url", metavar="URL")
    p.set_defaults(run=_verify)

    p = sub.add_parser(
        "megacache",
        parents=[common, storage],
        help="write a pack's Megacache entries as a torch blob",
        description="Write the Megacache entries of a pack as a blob torch.compiler.load_cache_artifacts reads.",
    )
    p.add_argument("url", metavar="URL")
    p.add_argument("-o", "--output", required=True, metavar="FILE", help="where to write the blob")
    p.set_defaults(run=_megacache)

    p = sub.add_parser(
        "env",
        parents=[common],
        help="show this machine's environment",
        description="The environment fields artifacts are checked against here.",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output (usable with pack --environment)")
    p.set_defaults(run=_env)
    return parser


def _json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"not JSON: {e}") from e
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("must be a JSON object")
    return value


# --------------------------------------------------------------------------- commands


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
    annotations = {}
    for item in args.annotate:
        key, sep, value = item.partition("=")
        if not sep:
            raise AtpackError(f"--annotate {item!r}: expected KEY=VALUE")
        annotations[key] = value
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
            binaries_only=args.binaries_only,
            annotations=annotations,
            storage_options=args.storage_options,
            level=args.level,
        )
    except ValueError as e:
        raise AtpackError(str(e)) from e
    print(report.format())
    return 0


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
    )
    if args.json:
        print(json.dumps(msgspec.to_builtins(report), indent=2))
    else:
        print(report.format(verbose=args.verbose))
    return 0 if report.ok else 1


def _inspect(args: argparse.Namespace) -> int:
    from .pack import open_pack

    with open_pack(args.url, storage_options=args.storage_options) as pack:
        if args.json:
            print(json.dumps(_inspect_data(pack), indent=2))
        else:
            print(_inspect_text(pack, verbose=args.verbose))
    return 0


def _inspect_data(pack: Any) -> dict[str, Any]:
    from .artifacts import UnknownArtifact, artifact_digest

    def body(a: Any) -> Any:
        return msgspec.json.decode(a.raw) if isinstance(a, UnknownArtifact) else msgspec.to_builtins(a)

    return {
        "url": pack.name,
        "size": pack.size,
        "format": list(pack.format_version),
        "digest": pack.digest,
        "annotations": pack.manifest.annotations,
        "environments": {d: msgspec.to_builtins(e) for d, e in pack.manifest.environments.items()},
        "artifacts": [
            {
                "kind": a.kind,
                "env": a.env,
                "key": a.key,
                "digest": artifact_digest(a),
                "summary": a.summary(),
                "artifact": body(a),
            }
            for a in pack.artifacts
        ],
    }


def _inspect_text(pack: Any, *, verbose: bool) -> str:
    m = pack.manifest
    lines = [
        f"{pack.name}: atpack format {pack.format_version[0]}.{pack.format_version[1]}, {pack.size:,} bytes",
        f"digest {pack.digest}",
    ]
    lines += [f"annotation {k} = {v}" for k, v in sorted(m.annotations.items())]
    by_env: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    for a in pack.artifacts:
        by_env[a.env][a.kind] += 1
    for digest, env in m.environments.items():
        where = ", ".join(
            f"{f} {getattr(env, f)}"
            for f in ("device_name", "torch_version", "triton_version", "cuda_version", "python_abi")
            if getattr(env, f) is not None
        )
        lines.append(f"environment {digest[7:19]}: {where or 'unrecorded'}")
        lines += [f"  {n:6d}  {kind}" for kind, n in sorted(by_env[digest].items())]
    if verbose:
        lines.append(f"{'KIND':24s} {'ENV':12s} SUMMARY")
        lines += [f"{a.kind:24s} {a.env[7:19]:12s} {a.summary()}" for a in pack.artifacts]
    return "\n".join(lines)


def _verify(args: argparse.Namespace) -> int:
    from .pack import open_pack

    with open_pack(args.url, storage_options=args.storage_options) as pack:
        pack.verify()
        print(f"ok: {pack.name}: {len(pack.artifacts)} artifacts, {pack.blob_count} blobs, every digest matches")
    return 0


def _megacache(args: argparse.Namespace) -> int:
    from .api import to_megacache

    blob = to_megacache(args.url, storage_options=args.storage_options)
    try:
        with open(args.output, "wb") as f:
            f.write(blob)
    except OSError as e:
        raise AtpackError(f"{args.output}: {e.strerror or e}") from e
    print(f"wrote {args.output} ({len(blob):,} bytes)")
    return 0


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
