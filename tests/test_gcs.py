"""Packs and stores on Google Cloud Storage, through gcsfs, against a GCS emulator
(`gcp-storage-emulator` from PyPI, serving the GCS JSON API on 127.0.0.1, started here).

gcsfs is pointed at the emulator with ``endpoint_url`` and ``token="anon"``. One setting is
needed for an emulator: gcsfs's experimental zonal/hierarchical-namespace support (on by
default, ``GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT``) first asks each bucket's storage layout over
gRPC and TLS, which an emulator of the JSON API does not serve: every call then waits for that
probe's 60 s timeout. Against real GCS the probe answers. Here gcsfs's plain `GCSFileSystem`
serves ``gs://``.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fsspec
import pytest

import atpack
from atpack.store import Store
from atpack.testing.faults import pack_bytes, sample_blobs, write_pack
from atpack.testing.s3 import FaultInjectingProxy

BUCKET = "atpack-test"
BLOBS = sample_blobs(12, 3000, seed=4)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def emulator() -> Iterator[str]:
    """The emulator's URL, a bucket `BUCKET` in it; gcsfs's plain filesystem behind gs://."""
    port = _free_port()
    saved = os.environ.get("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT")
    command = ["gcp_storage_emulator", "start", "--host", "127.0.0.1", "--port", str(port), "--in-memory"]
    server = subprocess.Popen(
        [sys.executable, "-m", *command, "--default-bucket", BUCKET, "--quiet"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                break
            assert server.poll() is None and time.monotonic() < deadline, "the GCS emulator did not start"
            time.sleep(0.1)
        os.environ["GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT"] = "false"  # read when gcsfs is imported
        from gcsfs.core import GCSFileSystem

        for protocol in ("gs", "gcs"):
            fsspec.register_implementation(protocol, GCSFileSystem, clobber=True)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=10)
        if saved is None:
            os.environ.pop("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", None)
        else:
            os.environ["GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT"] = saved


@pytest.fixture
def gcs(emulator: str, request: pytest.FixtureRequest) -> tuple[str, dict[str, Any]]:
    """A fresh folder URL in the bucket and the storage options that reach the emulator."""
    options = {"token": "anon", "endpoint_url": emulator, "project": "test", "skip_instance_cache": True}
    return f"gs://{BUCKET}/{request.node.name}", options


def _files(options: dict[str, Any]) -> Any:
    """A gcsfs filesystem of its own (no listing cache shared with what is tested)."""
    return fsspec.filesystem("gs", **options)


def test_a_pack_published_on_gcs_reads_back_by_ranged_reads(gcs: tuple[str, dict[str, Any]]) -> None:
    folder, options = gcs
    url = f"{folder}/p.atpack"
    blobs = {**BLOBS, **sample_blobs(1, 4 << 20, seed=5)}  # and one of 4 MiB
    write_pack(url, options, blobs)
    assert _files(options).cat_file(url) == pack_bytes(blobs)  # the bytes a local write makes
    emulator = options["endpoint_url"].removeprefix("http://").split(":")
    with FaultInjectingProxy((emulator[0], int(emulator[1]))) as proxy:  # no faults: it counts
        counted = {**options, "endpoint_url": proxy.endpoint_url}
        with atpack.open(url, storage_options=counted) as pack:
            small = next(iter(BLOBS))
            assert pack.read_blob(small) == BLOBS[small]  # its frame, by a ranged read
            assert proxy.stats()["bytes_sent"] < 256 << 10 < 4 << 20 < pack.size  # the index, that frame
            downloads = [r for r in proxy.requests if r.method == "GET" and "alt=media" in r.path]
            assert len(downloads) == 2 and all(r.range for r in downloads)  # the tail, the frame; both ranged
            assert dict(pack.read_blobs(list(blobs))) == blobs  # all of them, in one batch of ranges
            pack.verify()


def test_nothing_is_on_gcs_until_the_block_ends_and_a_failing_block_publishes_nothing(
    gcs: tuple[str, dict[str, Any]],
) -> None:
    folder, options = gcs
    url = f"{folder}/p.atpack"
    files = _files(options)
    with atpack.create(url, storage_options=options, level=1) as writer:
        write_pack(f"{folder}/other.atpack", options, BLOBS)  # another upload meanwhile
        writer.add_environment(atpack.Environment(triton_version="3.4.0"))
        files.invalidate_cache()
        assert not files.exists(url)
    files.invalidate_cache()
    published = files.cat_file(url)

    class Boom(Exception):
        pass

    with pytest.raises(Boom), atpack.create(url, storage_options=options) as writer:
        writer.add_environment(atpack.Environment(triton_version="3.9.0"))
        writer.finish()
        raise Boom
    files.invalidate_cache()
    assert files.cat_file(url) == published  # the pack that was there, untouched
    assert sorted(p.rsplit("/", 1)[-1] for p in files.ls(folder, detail=False)) == ["other.atpack", "p.atpack"]


def test_a_store_on_gcs_pushes_pulls_and_tags(gcs: tuple[str, dict[str, Any]], tmp_path: Path) -> None:
    folder, options = gcs
    pack = tmp_path / "p.atpack"
    write_pack(str(pack), {}, BLOBS)
    remote = Store(f"{folder}/store", storage_options=options)
    first = remote.push(pack, tags=["v1"])
    assert first.blobs_sent == first.blobs == len(BLOBS)
    assert remote.push(pack).blobs_sent == 0  # every blob is there already
    assert remote.tags() == ["v1"]
    assert remote.tag("v2", "v1") == first.digest
    assert remote.resolve_many(remote.tags()) == {"v1": first.digest, "v2": first.digest}
    local = Store(tmp_path / "node")
    pulled = remote.pull("v2", tmp_path / "pulled.atpack", local=local)
    assert pulled.blobs_fetched == len(BLOBS)
    assert atpack.open(tmp_path / "pulled.atpack").digest == first.digest
    again = remote.pull("v1", tmp_path / "again.atpack", local=local)
    assert again.blobs_fetched == 0  # the node has every blob


def test_the_commands_reach_gcs(gcs: tuple[str, dict[str, Any]], tmp_path: Path) -> None:
    folder, options = gcs
    pack = tmp_path / "p.atpack"
    write_pack(str(pack), {}, BLOBS)
    env = {**os.environ, "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT": "false"}
    storage = ["--storage-options", json.dumps(options)]

    def atpack_cli(*args: str) -> str:
        run = subprocess.run(
            [sys.executable, "-m", "atpack", *args, *storage], capture_output=True, text=True, env=env, timeout=120
        )
        assert run.returncode == 0, f"atpack {' '.join(args)}\n{run.stderr}"
        return run.stdout

    assert "pushed" in atpack_cli("push", str(pack), f"{folder}/store", "-t", "v1")
    assert atpack_cli("tag", f"{folder}/store").startswith("v1\tsha256:")
    atpack_cli("pull", f"{folder}/store", "v1", "-o", f"{folder}/pulled.atpack", "--local", str(tmp_path / "node"))
    assert atpack_cli("verify", f"{folder}/pulled.atpack").startswith("ok: ")
    assert "kernel_0" in atpack_cli("inspect", f"{folder}/pulled.atpack", "-v")
