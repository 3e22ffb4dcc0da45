"""Write the golden packs of spec/vectors/ and their expected decoded content.

    python tools/gen_vectors.py NAME...   (re)write these vectors
    python tools/gen_vectors.py --all     write every vector that does not exist yet

Vectors are added, never regenerated, for a released format version: the tests read them
with the current reader, so they pin what old packs look like.
"""

from __future__ import annotations

import json
import sys
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

import atpack
from atpack.artifacts import Environment, InductorBestConfig, KernelFile, UnknownArtifact, artifact_digest
from atpack.collect import pack_caches
from atpack.digest import canonical, digest_bytes
from atpack.env import environment_from_json

REPO = Path(__file__).resolve().parent.parent
VECTORS = REPO / "spec" / "vectors"
SAMPLE = REPO / "tests" / "data" / "h100-torch2.11-triton3.6-mlp.tar.xz"
SAMPLE_ENV = REPO / "tests" / "data" / "h100-torch2.11-triton3.6-mlp.environment.json"

ENV = Environment(torch_version="2.13.0+cpu", triton_version="3.9.0", python_abi="cpython-311", cache_key_tag="")


def empty(path: Path) -> None:
    with atpack.create(path):
        pass


def minimal(path: Path) -> None:
    with atpack.create(path) as w:
        env = w.add_environment(ENV)
        w.add(
            InductorBestConfig(
                env=env,
                path="za/" + "c8" * 32 + ".best_config",
                kwargs=(("XBLOCK", 1), ("R0_BLOCK", 1024)),
                num_warps=16,
                num_stages=1,
                configs_hash="90493d414c18e93c43979df14d3e613ae27188bb4813f6b59e6e856ee4549f58",
                found_by_coordesc=True,
                time_taken_ms=1747,
                triton_cache_hash=None,
            )
        )
        w.annotate("org.atpack.vector", "minimal", digested=True)
        w.annotate("org.atpack.note", "not part of the digest")


def h100_subset(path: Path) -> None:
    """Every kind, from the real H100 sample: all results, and kernels as metadata + cubin."""
    with tempfile.TemporaryDirectory() as tmp, tarfile.open(SAMPLE) as tar:
        tar.extractall(tmp, filter="data")
        root = Path(tmp) / "mlp"
        smallest = (
            "LV4CHHQRXBNWTL5AQJMFVXMIBAQRAEAQIDGCNQSJNVH4NLZ6QWKQ",
            "SAPIPEKHNDDKTGN2TYKUN7E7RT3LHMM3NXPGYUY7P7MS4OSFK2DA",
        )
        keep = sorted(p for p in (root / "triton").iterdir() if p.name in smallest or any(p.glob("*.autotune.json")))
        for folder in (root / "triton").iterdir():
            if folder not in keep:
                for f in folder.iterdir():
                    f.unlink()
                folder.rmdir()
        pack_caches(
            path,
            inductor_dir=str(root / "inductor"),
            triton_dir=str(root / "triton"),
            with_ir=False,
            environment=environment_from_json(SAMPLE_ENV.read_bytes()),
        )


def unknown_kind(path: Path) -> None:
    """A kind from the future: kept on rewrite, skipped on populate."""
    with atpack.create(path) as w:
        env = w.add_environment(ENV)
        blob = w.add_blob(b"a future payload\n" * 8, hint=".bin")
        raw = canonical({"env": env, "kind": "example.future/1", "payload": blob, "note": "from format 1.1"})
        w.add(UnknownArtifact("example.future/1", env, raw))
        w.add(
            InductorBestConfig(
                env=env, path="ab/" + "0" * 64 + ".best_config", kwargs=(("XBLOCK", 64),), num_warps=4, num_stages=1
            )
        )


def megacache_and_host(path: Path) -> None:
    """Megacache entries (data and pickle, never unpickled here) and a Triton host module."""
    from atpack.adapters import megacache
    from atpack.artifacts import TritonHostModule

    blob = megacache.write_blob(
        [
            ("autotune", "ab/" + "1" * 64 + ".best_config", b'{"XBLOCK": 64, "num_warps": 4, "num_stages": 1}'),
            ("inductor", "fabcdefghijklmnopqrstuvwxyz234567abcdefghijklmnopqrst", b"\x80\x04\x95 not a real graph"),
            ("autotune", "ab/" + "1" * 64 + ".best_config", b'{"XBLOCK": 128, "num_warps": 8, "num_stages": 1}'),
        ]
    )
    with atpack.create(path) as w:
        env = w.add_environment(ENV)
        for artifact in megacache.collect(blob, env, lambda data, hint: w.add_blob(data, hint=hint)):
            w.add(artifact)
        so = w.add_blob(b"\x7fELF stand-in for a host module", hint=".so")
        w.add(
            TritonHostModule(
                env=env,
                cache_key="MUG6NYIBXDZY6VPFHG374SMWU2D52553OLGYQS545QDYZNM3RQIA",
                files=(KernelFile("cuda_utils.cpython-312-x86_64-linux-gnu.so", so, 32),),
            )
        )


def local_values(path: Path) -> None:
    """Format 1.1: one local cache file, its GEMM timings and its other values."""
    from atpack.artifacts import (
        ChoiceTiming,
        GemmEntry,
        GemmSystem,
        InductorGemmTimings,
        InductorLocalValues,
        LocalValue,
    )

    system = GemmSystem(hash="3f" * 32, device_name="NVIDIA H100 80GB HBM3", triton="3.6.0", cuda="13.0")
    with atpack.create(path) as w:
        env = w.add_environment(ENV)
        timings = (ChoiceTiming("triton_mm_7", 0.0123), ChoiceTiming("extern_mm", None))
        w.add(
            InductorGemmTimings(
                env=env,
                system=system,
                entries=(GemmEntry(op="mm", inputs="[[64, 64], [64, 64]]", precision="highest", timings=timings),),
            )
        )
        values = (LocalValue("mm-time-key", 0.0123), LocalValue("should-pad-key", True), LocalValue("fusion", 0.5))
        w.add(InductorLocalValues(env=env, system=system, values=values))


def lookup_keys(path: Path) -> None:
    """Format 1.2: the components of two cache keys a capture recorded, for atpack explain."""
    from atpack.artifacts import KeyComponent, LookupKey

    graph = (
        KeyComponent("gm", "x3bpuowzkfcgj5cy7pbqjkrv7s4ilzwdb2qfqtnndyp2cfpdbwiq", "<lambda>()"),
        KeyComponent("inductor_config[max_autotune]", "dyqmg3oryx3zkzbxtmybdbp4tkxxzrklpb3isq3kn7sikmg6lzqq", "False"),
    )
    kernel = (KeyComponent("configs", "2b0c6e1fcbd2f5a8", "24 configs"),)
    folder = "HM6OIERX2XHRKYQWRNPNBUW4JW3R5OKWCXEUP2NIDPDSOP7MPRKQ"
    with atpack.create(path) as w:
        env = w.add_environment(ENV)
        for cache, lookup, name, parts in (
            ("fx_graph", "fh2dpdwh3ovqxmikxhlqlsqbkzftpb5xdk7pfq7u5bbcrs5mnakyl", "", graph),
            ("triton_autotune", f"{folder}/add_kernel", "add_kernel", kernel),
        ):
            blob = w.add_blob(msgspec.json.encode(parts), hint=f"lookup.{cache}")
            w.add(LookupKey(env=env, cache=cache, lookup=lookup, name=name, components=blob, count=len(parts)))


BUILDERS: dict[str, Callable[[Path], None]] = {
    "empty": empty,
    "minimal": minimal,
    "h100-subset": h100_subset,
    "unknown-kind": unknown_kind,
    "megacache-and-host": megacache_and_host,
    "local-values": local_values,
    "lookup-keys": lookup_keys,
}


def expected(path: Path) -> dict[str, Any]:
    """What a reader must decode from the pack at `path`."""
    with atpack.open(path) as pack:
        return {
            "format": list(pack.format_version),
            "digest": pack.digest,
            "size": pack.size,
            "annotations": pack.manifest.annotations,
            "digested_annotations": list(pack.manifest.digested_annotations),
            "environments": {d: msgspec.to_builtins(e) for d, e in pack.manifest.environments.items()},
            "artifacts": [
                {
                    "digest": artifact_digest(a),
                    "kind": a.kind,
                    "body": json.loads(a.raw if isinstance(a, UnknownArtifact) else canonical(a)),
                }
                for a in pack.artifacts
            ],
            "blobs": {
                d: {"size": len(data), "sha256": digest_bytes(data)} for d, data in pack.read_blobs(sorted(pack._blobs))
            },
        }


def main(argv: list[str]) -> int:
    names = [n for n in BUILDERS if not (VECTORS / f"{n}.atpack").exists()] if argv == ["--all"] else argv
    VECTORS.mkdir(parents=True, exist_ok=True)
    for name in names:
        if name not in BUILDERS:
            print(f"unknown vector {name!r}; known: {', '.join(BUILDERS)}", file=sys.stderr)
            return 2
        target = VECTORS / f"{name}.atpack"
        BUILDERS[name](target)
        (VECTORS / f"{name}.json").write_text(json.dumps(expected(target), indent=1, sort_keys=True) + "\n")
        print(f"wrote {target} ({target.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
