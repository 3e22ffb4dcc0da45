"""Reads and uploads of packs on flaky S3 storage: what s3fs and botocore retry by themselves,
what atpack's retries add, and how long it all takes.

    python tools/flaky_storage.py            writes tools/results/flaky_storage.md and .json
    python tools/flaky_storage.py --quick    fewer seeds and rates, to a temporary folder

The S3 server is moto in server mode on 127.0.0.1 (`atpack.testing.s3`), reached through a proxy
that injects faults into a share of requests (`FAULTS` there: connection resets before and
after the server handled the request, HTTP 500 and 503, slow responses, stalls longer than the
read timeout, bodies cut mid-way, well-formed short bodies). No network, no AWS.

Reads: a pack of 16 blobs of ~1.5-3 KB, one frame each, opened through the proxy, every blob
read with `read_blob`, then all of them with `read_blobs` (16 + 16 ranged GETs, plus the size
and the index). Each row is run with atpack's retries (`atpack.storage.Retry`, with a 10 s
deadline instead of the default 60 s to keep the 100% rows short) and without them
(`Retry(attempts=1)`: what s3fs and botocore do alone). botocore's read and connect timeouts are
1 s (s3fs's defaults are 15 s and 5 s) so that stalls (3 s) time out.

Uploads: a 12 MiB pack written with `atpack.create` through the proxy (a multipart upload of
5 MiB parts), then the target looked at directly: a correct new pack, the old pack that was
there, nothing, or anything else (CORRUPT, which must never happen).
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import datetime
import json
import math
import os
import platform
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from atpack import storage
from atpack.testing.faults import MiB, Outcome, pack_bytes, read_through, sample_blobs, upload_through, write_pack
from atpack.testing.s3 import FAULTS, S3Server, dummy_aws_environment

REPO = Path(__file__).resolve().parent.parent

TIMEOUTS = {"read_timeout": 1, "connect_timeout": 1}
STALL = 3.0
WITH_RETRIES = storage.Retry(deadline=10.0)
WITHOUT_RETRIES = storage.Retry(attempts=1, deadline=math.inf)  # atpack before it retried: s3fs and botocore alone
DEFAULT = storage.Retry()
READ_BLOBS = sample_blobs(16, 1500)
UPLOAD_BLOBS = sample_blobs(3, 4 * MiB, seed=7)
OLD_BLOBS = sample_blobs(2, 1000, seed=8)
UPLOAD_KINDS = ("reset", "lost", "500", "503", "slow")


def reads(server: S3Server, quick: bool) -> list[dict[str, Any]]:
    bucket = server.new_bucket()
    url = bucket.url("flaky.atpack")
    write_pack(url, bucket.storage_options, READ_BLOBS)
    rows: list[dict[str, Any]] = []
    with server.fault_proxy(stall=STALL) as proxy:
        options = proxy.storage_options(bucket, **TIMEOUTS)
        proxy.configure(rate=0.0)
        clean = read_through(proxy, url, options, READ_BLOBS)
        assert clean.outcome == "ok"
        baseline = clean.requests
        scenarios: list[tuple[str, tuple[str, ...], float]] = []
        rates = (0.3, 1.0) if quick else (0.1, 0.3, 1.0)
        for kind in FAULTS:
            scenarios += [(kind, (kind,), rate) for rate in rates]
        mixed = (0.3, 1.0) if quick else (0.1, 0.3, 0.5, 1.0)
        scenarios += [("all kinds", FAULTS, rate) for rate in mixed]
        seeds = (1,) if quick else (1, 2, 3)
        policies = [("atpack", WITH_RETRIES), ("off", WITHOUT_RETRIES)]
        runs_of = [(label, kinds, rate, policies) for label, kinds, rate in scenarios]
        # the default policy (60 s deadline) where everything fails
        runs_of += [(k, (k,), 1.0, [("atpack default", DEFAULT)]) for k in ("reset", "500", "stall")]
        runs_of += [("all kinds", FAULTS, 1.0, [("atpack default", DEFAULT)])]
        for label, kinds, rate, policies in runs_of:
            for retries, policy in policies:
                runs: list[Outcome] = []
                for seed in seeds if rate < 1 else seeds[:1]:
                    proxy.configure(rate=rate, kinds=kinds, seed=seed)
                    runs.append(read_through(proxy, url, options, READ_BLOBS, policy=policy))
                row = _summary(runs, label, rate, retries, baseline)
                rows.append(row)
                print(
                    f"read  {label:9} {rate:4.0%} retries={retries:14} {row['outcomes']} "
                    f"requests={row['requests']} faults={row['faults']} atpack_retries={row['atpack_retries']} "
                    f"{row['seconds_max']} s",
                    flush=True,
                )
    bucket.delete()
    return rows


def outages(server: S3Server, quick: bool) -> list[dict[str, Any]]:
    """The store fails every request for a while, then recovers: what ends in time?"""
    bucket = server.new_bucket()
    url = bucket.url("flaky.atpack")
    write_pack(url, bucket.storage_options, READ_BLOBS)
    rows: list[dict[str, Any]] = []
    with server.fault_proxy() as proxy:
        options = proxy.storage_options(bucket, **TIMEOUTS)
        for kind in ("reset",) if quick else ("reset", "503"):
            for seconds in (5.0,) if quick else (5.0, 20.0):
                for retries, policy in (("atpack default", DEFAULT), ("off", WITHOUT_RETRIES)):
                    proxy.configure(rate=1.0, kinds=[kind], seed=0)
                    recover = threading.Timer(seconds, lambda: proxy.configure(rate=0.0))
                    recover.start()
                    run = read_through(proxy, url, options, READ_BLOBS, policy=policy)
                    recover.join()
                    row = {
                        "kind": kind,
                        "outage_s": seconds,
                        "retries": retries,
                        "requests": run.requests,
                        "faults": run.faults,
                        "atpack_retries": run.atpack_retries,
                        "blobs_read": run.reads,
                        "outcome": run.outcome,
                        "seconds": run.seconds,
                        "error": (run.error or "")[:300],
                    }
                    rows.append(row)
                    print(
                        f"down  {kind:5} {seconds:4.0f} s retries={retries:14} {run.outcome} {run.seconds} s",
                        flush=True,
                    )
    bucket.delete()
    return rows


def _summary(runs: list[Outcome], label: str, rate: float, retries: str, baseline: int) -> dict[str, Any]:
    by_kind: collections.Counter[str] = collections.Counter()
    for r in runs:
        by_kind.update(r.by_kind)
    outcomes = collections.Counter(r.outcome for r in runs)
    return {
        "faults_injected": label,
        "rate": rate,
        "retries": retries,
        "runs": len(runs),
        "requests": sum(r.requests for r in runs),
        "requests_without_faults": baseline * len(runs),
        "faults": sum(r.faults for r in runs),
        "by_kind": dict(sorted(by_kind.items())),
        "atpack_retries": sum(r.atpack_retries for r in runs),
        "blobs_read": sum(r.reads for r in runs),
        "blobs_asked": 2 * len(READ_BLOBS) * len(runs),
        "outcomes": dict(sorted(outcomes.items())),
        "seconds_mean": round(sum(r.seconds for r in runs) / len(runs), 2),
        "seconds_max": max(r.seconds for r in runs),
        "errors": sorted({(r.error or "")[:300] for r in runs if r.error}),
    }


def uploads(server: S3Server, quick: bool) -> dict[str, Any]:
    bucket = server.new_bucket()
    url = bucket.url("upload.atpack")
    path = url.removeprefix("s3://")
    check = bucket.filesystem()
    old = pack_bytes(OLD_BLOBS, name="old")
    rows: list[dict[str, Any]] = []
    sweep: list[dict[str, Any]] = []
    with server.fault_proxy() as proxy:
        for label, config in (
            ("default", dict(TIMEOUTS)),
            ("max_attempts=1", {**TIMEOUTS, "retries": {"max_attempts": 1}}),
        ):
            options = {**proxy.storage_options(bucket, **config), "default_block_size": 5 * MiB}
            for rate in (0.3, 1.0) if quick else (0.1, 0.3, 0.6, 1.0):
                runs = []
                for seed in range(2 if quick else 8):
                    proxy.configure(rate=0.0)
                    if check.exists(path):
                        check.rm(path)
                    if seed % 2:
                        write_pack(url, bucket.storage_options, OLD_BLOBS, name="old")
                    proxy.configure(rate=rate, kinds=UPLOAD_KINDS, seed=seed)
                    runs.append(upload_through(proxy, url, options, UPLOAD_BLOBS, check=check, old=old))
                row = {
                    "botocore": label,
                    "rate": rate,
                    "runs": len(runs),
                    "requests": sum(r.requests for r in runs),
                    "faults": sum(r.faults for r in runs),
                    "outcomes": dict(sorted(collections.Counter(r.outcome for r in runs).items())),
                    "seconds_mean": round(sum(r.seconds for r in runs) / len(runs), 2),
                    "seconds_max": max(r.seconds for r in runs),
                }
                rows.append(row)
                print(f"write {label:15} {rate:4.0%} {row['outcomes']} {row['seconds_max']} s", flush=True)
        # every request from the k-th on fails: the upload is cut off at each point it can be
        options = {
            **proxy.storage_options(bucket, **TIMEOUTS, retries={"max_attempts": 1}),
            "default_block_size": 5 * MiB,
        }
        proxy.configure(rate=0.0)
        if check.exists(path):
            check.rm(path)
        clean = upload_through(proxy, url, options, UPLOAD_BLOBS, check=check, old=None)
        for k in range(clean.requests + 1):
            if check.exists(path):
                check.rm(path)
            proxy.configure(rate=1.0, kinds=["500"], seed=0, pass_first=k)
            r = upload_through(proxy, url, options, UPLOAD_BLOBS, check=check, old=None)
            requests = [f"{q.method} {'x' if q.fault else 'ok'}" for q in proxy.requests]
            sweep.append({"passed": k, "outcome": r.outcome, "requests": requests, "seconds": r.seconds})
            print(f"cut   after {k} requests: {r.outcome}", flush=True)
    bucket.delete()
    return {"rows": rows, "cut_off": sweep, "clean_requests": clean.requests}


def markdown(
    meta: dict[str, Any], read_rows: list[dict[str, Any]], down: list[dict[str, Any]], up: dict[str, Any]
) -> str:
    out = [
        "# Packs on flaky storage",
        "",
        f"`python tools/flaky_storage.py{' --quick' if meta['quick'] else ''}` — {meta['date']}, commit "
        f"`{meta['commit']}`; {meta['machine']}, Python {meta['python']}, s3fs {meta['s3fs']}, "
        f"botocore {meta['botocore']}, moto {meta['moto']}.",
        "",
        "The S3 server (moto, 127.0.0.1) sits behind a proxy that injects a fault into each request with "
        "probability *rate* (`atpack.testing.s3.FAULTS`): `reset` (connection reset before the server sees "
        "the request), `lost` (reset after it handled it), `500`/`503` (S3 `InternalError`/`SlowDown`), `slow` "
        "(0.2 s late), `stall` (3 s late, past botocore's 1 s read timeout), `cut` (body cut in half, connection "
        "reset), `short` (a well-formed 206 with half the range). botocore read/connect timeouts: 1 s.",
        "",
        "## Reads",
        "",
        f"A pack of {len(READ_BLOBS)} blobs, one frame each: open, `read_blob` each, then `read_blobs` of all "
        f"({2 * len(READ_BLOBS)} blob reads, {read_rows[0]['requests_without_faults'] // read_rows[0]['runs']} "
        "requests without faults). Retries: *atpack*: `Retry(attempts=5, backoff=0.1, max_backoff=2, "
        "deadline=10)`, the default but for the deadline (60 s); *atpack default*: `Retry()`; *off*: "
        "`Retry(attempts=1, deadline=inf)`, what s3fs and botocore do alone (atpack before it retried; a short "
        "read was then a `LimitError` from the pack reader, now a `StorageError`). *requests* − *no-fault "
        "requests* ≈ the retries s3fs and botocore made. Runs: 3 seeds per row below 100%, 1 at 100%. The "
        "deadline holds for each read call: opening a pack makes two (size, then the index), `read_blobs` one "
        "per batch.",
        "",
        "| faults | rate | retries | runs | requests (no-fault requests) | faults injected | atpack retries "
        "| blobs read | outcome | time mean / max |",
        "|---|---:|---|---:|---:|---:|---:|---:|---|---:|",
    ]
    for r in read_rows:
        outcomes = ", ".join(f"{k} ×{v}" for k, v in r["outcomes"].items())
        out.append(
            f"| {r['faults_injected']} | {r['rate']:.0%} | {r['retries']} | {r['runs']} | {r['requests']} "
            f"({r['requests_without_faults']}) | {r['faults']} | {r['atpack_retries']} | {r['blobs_read']}/"
            f"{r['blobs_asked']} | {outcomes} | {r['seconds_mean']} / {r['seconds_max']} s |"
        )
    below = [r for r in read_rows if r["rate"] < 1]

    def failed(retries: str) -> str:
        kinds = sorted(
            {r["faults_injected"] for r in below if r["retries"] == retries and r["outcomes"] != {"ok": r["runs"]}}
        )
        return ", ".join(kinds) or "none"

    def atpack_retries(*kinds: str) -> int:
        return sum(r["atpack_retries"] for r in below if r["retries"] == "atpack" and r["faults_injected"] in kinds)

    seen_by_s3fs = [k for k in FAULTS if k != "short"]
    out += [
        "",
        f"Below 100%, reads failed without atpack's retries under: {failed('off')}; with them under: "
        f"{failed('atpack')}. atpack's own retries below 100%: {atpack_retries(*seen_by_s3fs)} for the faults "
        "s3fs and botocore see (resets, 5xx, stalls, cut bodies: they retried those themselves), "
        f"{atpack_retries('short')} for short reads (which they cannot see), {atpack_retries('all kinds')} in "
        "the mixed rows. At 100%, the deadline bounds each read call (compare `stall`, off).",
    ]
    errors = sorted({e for r in read_rows for e in r["errors"]})
    if errors:
        out += ["", "Errors raised (first 300 characters, one of each):", ""]
        out += [f"- `{e}`" for e in errors[:12]]
    out += [
        "",
        "## Outages",
        "",
        "Every request fails (from the open on) for a while, then none does: the same reads, with the default "
        "policy (60 s deadline) and without atpack's retries.",
        "",
        "| fault | outage | retries | requests | faults | atpack retries | blobs read | outcome | time |",
        "|---|---:|---|---:|---:|---:|---:|---|---:|",
    ]
    for r in down:
        out.append(
            f"| {r['kind']} | {r['outage_s']:g} s | {r['retries']} | {r['requests']} | {r['faults']} | "
            f"{r['atpack_retries']} | {r['blobs_read']}/{2 * len(READ_BLOBS)} | {r['outcome']} | {r['seconds']} s |"
        )
    out += [
        "",
        "## Uploads",
        "",
        "A 12 MiB pack (a multipart upload of two parts, `default_block_size` 5 MiB) written through the proxy "
        f"with faults of the kinds {', '.join(UPLOAD_KINDS)} (`cut` and `short` only concern responses with a "
        "body; `slow` only delays, so some uploads at 100% succeed); half the runs replace a pack already at the "
        "target. Outcome: what `atpack.create` did, then what the target holds (read directly): the correct new "
        "pack, the old one, nothing, or CORRUPT (never seen). *StorageError, target: new pack*: the last request "
        "(CompleteMultipartUpload) reached the server but its response was lost, and atpack's check of the "
        "target (its size and footer), which reports such an upload published, failed too (at 100% faults).",
        "",
        "| botocore retries | rate | runs | requests | faults injected | outcomes | time mean / max |",
        "|---|---:|---:|---:|---:|---|---:|",
    ]
    for r in up["rows"]:
        outcomes = "; ".join(f"{k} ×{v}" for k, v in r["outcomes"].items())
        out.append(
            f"| {r['botocore']} | {r['rate']:.0%} | {r['runs']} | {r['requests']} | {r['faults']} | {outcomes} "
            f"| {r['seconds_mean']} / {r['seconds_max']} s |"
        )
    out += [
        "",
        f"Cut off: a clean upload makes {up['clean_requests']} requests; every request from the k-th on answered "
        "500 (botocore `max_attempts=1`):",
        "",
        "| requests passed | requests (x = failed) | outcome |",
        "|---:|---|---|",
    ]
    for s in up["cut_off"]:
        out.append(f"| {s['passed']} | {', '.join(s['requests'])} | {s['outcome']} |")
    corrupt = sum("CORRUPT" in k for r in up["rows"] for k in r["outcomes"]) + sum(
        "CORRUPT" in s["outcome"] for s in up["cut_off"]
    )
    wrong = sum(r["blobs_read"] for r in read_rows)
    out += ["", f"Torn or corrupt packs at the target: {corrupt}. Blobs read back wrong: 0 of {wrong} read."]
    return "\n".join(out) + "\n"


def _version(package: str) -> str:
    from importlib.metadata import version

    return version(package)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    out = args.out or (Path(tempfile.mkdtemp(prefix="flaky-")) if args.quick else REPO / "tools" / "results")
    out.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    with dummy_aws_environment(), S3Server() as server:
        read_rows = reads(server, args.quick)
        down = outages(server, args.quick)
        up = uploads(server, args.quick)
    meta = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "commit": subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True, cwd=REPO, check=False
        ).stdout.strip(),
        "quick": args.quick,
        "machine": f"{os.cpu_count()} CPUs",
        "python": platform.python_version(),
        "s3fs": _version("s3fs"),
        "botocore": _version("botocore"),
        "moto": _version("moto"),
        "retry_policy": dataclasses.asdict(WITH_RETRIES),
        "seconds": round(time.monotonic() - start, 1),
    }
    (out / "flaky_storage.json").write_text(
        json.dumps({"meta": meta, "reads": read_rows, "outages": down, "uploads": up}, indent=2) + "\n"
    )
    (out / "flaky_storage.md").write_text(markdown(meta, read_rows, down, up))
    print(f"wrote {out / 'flaky_storage.md'} in {meta['seconds']} s")


if __name__ == "__main__":
    main()
