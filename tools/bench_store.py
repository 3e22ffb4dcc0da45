"""Push and pull of one pack into stores of 10, 1,000 and 10,000 packs: what they cost.

    python tools/bench_store.py            writes tools/results/bench_store.md and .json
    python tools/bench_store.py --quick    fewer runs, stores of 10 and 1,000 packs, to a temporary folder

Stores: a local folder, and S3 (moto in server mode on 127.0.0.1, `atpack.testing.s3`) reached
through the test proxy, which counts requests and body bytes. Each store holds N small packs
(`atpack.testing.faults.store_objects`: 5 blobs of their own each, a record each, a tag every 10
packs: 6.1 N objects, 5 N of them under ``blobs/``), put straight into moto's backend or written
as files.

Each run pushes a new pack (50 blobs of 4 KiB, none in any store) into every store with a tag,
then pulls that tag into an empty node-local store: runs interleaved, the order of the stores
turned each run. Medians of the runs.

Looking blobs up, the choice behind `Store.missing`: for 1 and 200 blobs of a store of 10 and of
10,000 packs, on S3, (a) one request per blob, concurrently (what `Store.missing` does), (b)
one listing per ``blobs/<2 hex>/`` shard the blobs fall in, concurrently, (c) one listing of
all of ``blobs/`` (what atpack did before; up to 1,000 packs: moto scans the bucket per page).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import functools
import json
import os
import platform
import random
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import fsspec.asyn

from atpack.store import Store
from atpack.testing.faults import sample_blobs, store_objects, write_pack
from atpack.testing.s3 import FaultInjectingProxy, S3Server, dummy_aws_environment

REPO = Path(__file__).resolve().parent.parent

PACK_BLOBS = 50
BLOB_SIZE = 4096


def fill_local(root: Path, objects: dict[str, bytes]) -> None:
    for path, data in objects.items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)


def measured(proxy: FaultInjectingProxy | None, fn: Callable[[], Any]) -> dict[str, Any]:
    """Time `fn()`, and the requests and bytes the proxy saw meanwhile."""
    if proxy is not None:
        proxy.reset()
    start = time.perf_counter()
    fn()
    row: dict[str, Any] = {"seconds": time.perf_counter() - start}
    if proxy is not None:
        stats = proxy.stats()
        row |= {
            "requests": stats["requests"],
            "bytes_sent": stats["bytes_sent"],
            "bytes_received": stats["bytes_received"],
        }
    return row


def push_pull(
    stores: dict[tuple[str, int], Store], proxy: FaultInjectingProxy, sizes: list[int], runs: int, work: Path
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for run in range(runs):
        pack = work / f"new-{run}.atpack"
        write_pack(str(pack), {}, sample_blobs(PACK_BLOBS, BLOB_SIZE, seed=1000 + run))
        order = sizes[run % len(sizes) :] + sizes[: run % len(sizes)]
        for kind in ("local", "s3"):
            for packs in order:
                remote = stores[(kind, packs)]
                counted = proxy if kind == "s3" else None
                tag = f"bench-{run}"
                push = measured(counted, functools.partial(remote.push, pack, tags=[tag]))
                node = Store(work / f"node-{kind}-{packs}-{run}")
                out = work / f"pulled-{kind}-{packs}-{run}.atpack"
                pull = measured(counted, functools.partial(remote.pull, tag, out, local=node))
                for op, row in (("push", push), ("pull", pull)):
                    rows.append({"store": kind, "packs": packs, "op": op, "run": run, **row})
                print(
                    f"run {run} {kind:5s} {packs:6,d} packs: push {push['seconds']:.3f} s, pull {pull['seconds']:.3f} s"
                )
    return rows


def list_shards(fs: Any, root: str, digests: list[str]) -> set[str]:
    """Strategy (b): list each shard the digests fall in, concurrently."""
    shards = sorted({f"{root}/blobs/{d[7:9]}" for d in digests})

    async def listings() -> list[Any]:
        return await asyncio.gather(*(fs._ls(s, detail=False) for s in shards), return_exceptions=True)

    found = fsspec.asyn.sync(fs.loop, listings)
    names = {p.rsplit("/", 1)[-1] for listing in found if not isinstance(listing, BaseException) for p in listing}
    return {d for d in digests if d[7:] in names}


def list_all(fs: Any, root: str, digests: list[str]) -> set[str]:
    """Strategy (c): list all of blobs/ (atpack before)."""
    names = {p.rsplit("/", 1)[-1] for p in fs.find(f"{root}/blobs")}
    return {d for d in digests if d[7:] in names}


def lookups(
    stores: dict[tuple[str, int], Store], proxy: FaultInjectingProxy, sizes: list[int], runs: int
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for run in range(runs):
        for packs in sizes:
            remote = stores[("s3", packs)]
            fs, root = remote._fs, remote._root
            held = sorted(p.rsplit("/", 1)[-1] for p in store_objects(packs, seed=packs) if p.startswith("blobs/"))
            rng = random.Random(run)
            for count in (1, 200):
                # half the blobs in the store, the others not (a push of a pack that shares some)
                present = ["sha256:" + h for h in rng.sample(held, min(count - count // 2, len(held)))]
                digests = present + ["sha256:" + rng.randbytes(32).hex() for _ in range(count - len(present))]
                strategies: list[tuple[str, Callable[[], Any]]] = [
                    ("one request per blob", functools.partial(remote.missing, digests)),
                    ("list the shards", functools.partial(list_shards, fs, root, digests)),
                ]
                if packs <= 1000:  # moto scans the bucket for each page of a listing: 50 pages of 61,000 keys
                    strategies.append(("list blobs/ (before)", functools.partial(list_all, fs, root, digests)))
                for name, fn in strategies:
                    row = measured(proxy, fn)
                    rows.append({"strategy": name, "packs": packs, "blobs": count, "run": run, **row})
                    print(f"run {run} {packs:6,d} packs, {count:3d} blobs, {name}: {row['requests']} requests", end="")
                    print(f", {row['seconds']:.3f} s")
    return rows


def median_table(rows: list[dict[str, Any]], keys: tuple[str, ...]) -> list[dict[str, Any]]:
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(tuple(row[k] for k in keys), []).append(row)
    out = []
    for key, group in groups.items():
        summary = dict(zip(keys, key))
        summary["runs"] = len(group)
        for field in ("seconds", "requests", "bytes_sent", "bytes_received"):
            if field in group[0]:
                summary[field] = statistics.median(r[field] for r in group)
        out.append(summary)
    return out


def report(push_pull_rows: list[dict[str, Any]], lookup_rows: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    table = median_table(push_pull_rows, ("store", "op", "packs"))
    sizes = sorted({r["packs"] for r in table})
    lines = [
        "# A store that scales: push and pull of one pack into stores of many packs",
        "",
        f"`python tools/bench_store.py` — {meta['when']}, commit `{meta['commit']}`; {meta['machine']}.",
        "",
        "Each store holds N packs (5 blobs of their own each, a record each, a tag every 10 packs: "
        f"{', '.join(f'{n * 5:,}' for n in sizes)} objects under `blobs/`). Each run pushes a new pack "
        f"({PACK_BLOBS} blobs of {BLOB_SIZE:,} bytes, none in the store) with a tag, then pulls the tag into an "
        "empty node-local store. S3: moto on 127.0.0.1 behind the test proxy, which counts requests and body "
        f"bytes. Medians of {max(r['runs'] for r in table)} interleaved runs.",
        "",
        "| store | op | packs in the store | requests | bytes to the client | bytes to the store | time | "
        f"time / time at {sizes[0]:,} packs |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in sorted(table, key=lambda r: (r["store"], r["op"], r["packs"])):
        base = next(r for r in table if (r["store"], r["op"], r["packs"]) == (row["store"], row["op"], sizes[0]))
        cells = [row["store"], row["op"], f"{row['packs']:,}"]
        if "requests" in row:
            cells += [f"{row['requests']:.0f}", f"{row['bytes_sent']:,.0f}", f"{row['bytes_received']:,.0f}"]
        else:
            cells += ["-", "-", "-"]
        cells += [f"{row['seconds'] * 1000:.0f} ms", f"{row['seconds'] / base['seconds']:.2f}x"]
        lines.append("| " + " | ".join(cells) + " |")
    worst = max(
        r["seconds"]
        / next(b for b in table if (b["store"], b["op"], b["packs"]) == (r["store"], r["op"], sizes[0]))["seconds"]
        for r in table
    )
    same_requests = all(
        r["requests"]
        == next(b for b in table if (b["store"], b["op"], b["packs"]) == (r["store"], r["op"], sizes[0]))["requests"]
        for r in table
        if "requests" in r
    )
    lines += [
        "",
        f"Largest time ratio to the smallest store: {worst:.2f}x (acceptance: within 1.5x); "
        f"requests the same at every store size: {'yes' if same_requests else 'NO'}.",
        "",
        "## Looking blobs up (S3)",
        "",
        "Half the blobs asked for are in the store, half are not. *one request per blob*: a 1-byte ranged GET "
        "each, concurrently (`Store.missing`); *list the shards*: one listing per `blobs/<2 hex>/` prefix the "
        "blobs fall in, concurrently; *list blobs/ (before)*: one listing of all of `blobs/`, page by page.",
        "",
        "| strategy | packs in the store | blobs looked up | requests | bytes to the client | time |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for row in sorted(
        median_table(lookup_rows, ("strategy", "packs", "blobs")), key=lambda r: (r["blobs"], r["packs"], r["strategy"])
    ):
        lines.append(
            f"| {row['strategy']} | {row['packs']:,} | {row['blobs']} | {row['requests']:.0f} | "
            f"{row['bytes_sent']:,.0f} | {row['seconds'] * 1000:.0f} ms |"
        )
    lines += [
        "",
        "A request per blob costs the same whatever the store holds; a shard listing grows with the store "
        "(each shard holds 1/256 of its blobs, and S3 bills a listing as 12.5 GETs) and a listing of "
        "`blobs/` with all of it. On moto each page of a listing also scans the whole bucket, so the listing of "
        "`blobs/` is not run at 10,000 packs (50 pages of 1,000 keys, each scanning 61,000).",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--quick", action="store_true", help="2 runs, stores of 10 and 1,000 packs, to a temporary folder"
    )
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    sizes = [10, 1000] if args.quick else [10, 1000, 10_000]
    runs = 2 if args.quick else args.runs
    out = Path(tempfile.mkdtemp()) if args.quick else REPO / "tools" / "results"
    with tempfile.TemporaryDirectory() as tmp, dummy_aws_environment(), S3Server() as server:
        work = Path(tmp)
        with server.fault_proxy() as proxy:
            stores: dict[tuple[str, int], Store] = {}
            for packs in sizes:
                objects = store_objects(packs, seed=packs)
                fill_local(work / f"store-{packs}", objects)
                bucket = server.new_bucket()
                bucket.put_directly({f"store/{path}": data for path, data in objects.items()})
                stores[("local", packs)] = Store(work / f"store-{packs}")
                stores[("s3", packs)] = Store(bucket.url("store"), storage_options=proxy.storage_options(bucket))
                print(f"filled stores of {packs:,} packs ({len(objects):,} objects)")
            for remote in stores.values():
                remote.tags()  # each S3 store has a filesystem of its own: make its client before timing
            lookup_rows = lookups(stores, proxy, sizes, 2)
            rows = push_pull(stores, proxy, sizes, runs, work)
    commit = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=REPO, capture_output=True, text=True)
    import botocore
    import moto
    import s3fs

    meta = {
        "when": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "commit": commit.stdout.strip(),
        "machine": f"{os.cpu_count()} CPUs, Python {platform.python_version()}, s3fs {s3fs.__version__}, "
        f"botocore {botocore.__version__}, moto {moto.__version__}",
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench_store.json").write_text(
        json.dumps({"meta": meta, "push_pull": rows, "lookups": lookup_rows}, indent=1) + "\n"
    )
    (out / "bench_store.md").write_text(report(rows, lookup_rows, meta))
    print(f"wrote {out / 'bench_store.md'}")


if __name__ == "__main__":
    main()
