"""Packs on flaky storage: the S3 test server behind a proxy that answers a fixed share of
requests with a fault (connection resets, HTTP 500 and 503, slow and stalled responses, cut
and short bodies: see `atpack.testing.s3.FAULTS`).

Reads retry (s3fs and botocore retry much themselves; atpack adds retries of what still fails,
of short reads, and a deadline) and either return the right bytes or raise `StorageError`
within the deadline. Uploads under faults publish a correct pack or nothing: never a torn one.
`tools/flaky_storage.py` measures the same scenarios over more rates and fault kinds.
"""

from __future__ import annotations

import concurrent.futures
import errno
import http.client
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import atpack
from atpack import storage
from atpack.populate import populate
from atpack.testing.faults import (
    MiB,
    counting_retries,
    pack_bytes,
    read_through,
    sample_blobs,
    upload_through,
    write_pack,
)
from atpack.testing.s3 import FAULTS, FaultInjectingProxy, SilentServer, dummy_aws_environment

READ_KINDS = FAULTS  # every kind; stalls outlast the read timeout below, so they time out
TIMEOUTS = {"read_timeout": 1, "connect_timeout": 1}  # botocore's (s3fs's defaults: 15 s and 5 s)
STALL = 2.0
BLOBS = sample_blobs(16, 1500)  # 16 frames: 16 ranged reads one by one, 16 in the batch


@pytest.fixture(scope="module")
def proxy(s3_server: Any) -> Iterator[FaultInjectingProxy]:
    with s3_server.fault_proxy(stall=STALL) as proxy:
        yield proxy


@pytest.fixture
def pack_url(s3: Any, proxy: FaultInjectingProxy) -> str:
    proxy.configure(rate=0.0, kinds=FAULTS, seed=0, pass_first=0, stall=STALL)
    url = s3.url("flaky.atpack")
    write_pack(url, s3.storage_options, BLOBS)  # straight to the server, no faults
    return url


# --------------------------------------------------------------------------- the retry logic, on a fake filesystem


class FakeFs:
    """A synchronous filesystem holding one file, whose next reads fail as `script` says:
    an exception to raise, or a number of bytes to return instead of all of them."""

    def __init__(self, data: bytes, script: list[Any] | None = None, delay: float = 0.0) -> None:
        self.data = data
        self.script = list(script or [])
        self.calls = 0
        self.delay = delay

    def size(self, path: str) -> int:
        return len(self.data)

    def _next(self, data: bytes) -> bytes:
        self.calls += 1
        time.sleep(self.delay)
        if self.script:
            step = self.script.pop(0)
            if isinstance(step, BaseException):
                raise step
            return data[:step]
        return data

    def cat_file(self, path: str, start: int, end: int) -> bytes:
        return self._next(self.data[start:end])

    def cat_ranges(self, paths: list[str], starts: list[int], ends: list[int], on_error: str) -> list[Any]:
        out: list[Any] = []
        for start, end in zip(starts, ends):
            try:
                out.append(self.cat_file(paths[0], start, end))
            except Exception as e:
                out.append(e)
        return out


def fake_source(fs: FakeFs, **policy: Any) -> Any:
    return storage._FsspecSource(fs, "p", "fake://p", storage.Retry(**{"backoff": 0.001, **policy}))


DATA = bytes(range(256)) * 4


def test_a_failed_read_is_retried() -> None:
    fs = FakeFs(DATA, [ConnectionResetError("reset"), TimeoutError("slow")])
    source = fake_source(fs)
    assert source.read(10, 100) == DATA[10:110]
    assert fs.calls == 3 and source.retries == 2


def test_a_short_read_is_retried() -> None:
    fs = FakeFs(DATA, [50, 0])
    source = fake_source(fs)
    assert source.read(10, 100) == DATA[10:110]
    assert source.retries == 2


def test_a_read_past_the_end_of_the_file_is_not_a_short_read() -> None:
    fs = FakeFs(DATA)
    assert fake_source(fs).read(len(DATA) - 10, 100) == DATA[-10:]
    assert fs.calls == 1


def test_a_read_that_stays_short_is_a_storage_error_naming_the_bytes() -> None:
    fs = FakeFs(DATA, [50] * 10)
    with pytest.raises(
        atpack.StorageError, match=r"fake://p: reading 100 bytes at 10: got 50 of 100 bytes.*3 attempts"
    ):
        fake_source(fs, attempts=3).read(10, 100)
    assert fs.calls == 3


def test_a_missing_file_is_not_retried() -> None:
    fs = FakeFs(DATA, [FileNotFoundError("gone")] * 3)
    with pytest.raises(atpack.StorageError, match="FileNotFoundError"):
        fake_source(fs).read(0, 10)
    assert fs.calls == 1


def _refused_credentials() -> PermissionError:
    """What s3fs raises for an S3 error answer: a `PermissionError` caused by botocore's `ClientError`."""
    from botocore.exceptions import ClientError
    from s3fs.errors import translate_boto_error

    answer = {"Error": {"Code": "InvalidAccessKeyId", "Message": "not in our records"}}
    error = translate_boto_error(ClientError(answer, "GetObject"))
    assert isinstance(error, PermissionError)
    return error


def _no_credentials() -> Exception:
    from botocore.exceptions import NoCredentialsError

    return NoCredentialsError()


@pytest.mark.parametrize(
    ("error", "says"),
    [
        (_no_credentials, "no credentials found: give them as storage options"),
        (_refused_credentials, "the store does not know the access key (InvalidAccessKeyId)"),
    ],
)
def test_what_no_retry_mends_is_tried_once(error: Any, says: str) -> None:
    for read in ("read", "read_many"):
        fs = FakeFs(DATA, [error()] * 3)
        source = fake_source(fs)
        with pytest.raises(atpack.StorageError) as raised:
            source.read(0, 10) if read == "read" else source.read_many([(0, 10), (20, 10)])
        assert fs.calls == (1 if read == "read" else 2) and source.retries == 0, read  # one attempt
        assert says in str(raised.value) and "attempt" not in str(raised.value)


class HangingFs(FakeFs):
    """Fails as `script` says, then hangs until `release` is set."""

    def __init__(self, data: bytes, script: list[Any]) -> None:
        super().__init__(data, script)
        self.release = threading.Event()

    def _next(self, data: bytes) -> bytes:
        if not self.script:
            self.calls += 1
            self.release.wait(30)
            return data
        return super()._next(data)


def test_a_try_the_deadline_cuts_short_does_not_hide_why_the_earlier_ones_failed() -> None:
    fs = HangingFs(DATA, [ConnectionRefusedError(errno.ECONNREFUSED, "Connect call failed")])
    try:
        with pytest.raises(atpack.StorageError) as error:
            fake_source(fs, deadline=0.5).read(0, 10)
    finally:
        fs.release.set()
    assert fs.calls == 2
    assert re.fullmatch(
        r"fake://p: reading 10 bytes at 0: connection refused: no server listens at the store's address "
        r"\(gave up after 2 attempts in 0\.\d s: the 0\.5 s deadline reached\)",
        str(error.value),
    ), error.value
    fs = HangingFs(DATA, [])  # no try said why: a timeout it is
    try:
        with pytest.raises(
            atpack.StorageError, match=r"^fake://p: reading 10 bytes at 0: timed out \(gave up after 1 "
        ):
            fake_source(fs, deadline=0.5).read(0, 10)
    finally:
        fs.release.set()


def test_the_backoff_doubles() -> None:
    fs = FakeFs(DATA, [OSError("x")] * 4)
    start = time.monotonic()
    fake_source(fs, attempts=5, backoff=0.1, max_backoff=0.2).read(0, 10)
    # waits drawn from [0.05, 0.1], [0.1, 0.2], then [0.1, 0.2] twice (the cap)
    assert 0.35 <= time.monotonic() - start < 1.0


def test_the_deadline_ends_the_retries_on_a_synchronous_filesystem() -> None:
    fs = FakeFs(DATA, [OSError("x")] * 100, delay=0.2)
    start = time.monotonic()
    with pytest.raises(atpack.StorageError, match="1 s deadline reached"):
        fake_source(fs, attempts=100, backoff=0.05, deadline=1.0).read(0, 10)
    assert time.monotonic() - start < 1.3


def test_read_many_retries_only_the_ranges_that_failed() -> None:
    ranges = [(0, 100), (100, 100), (200, 100), (900, 200)]  # the last one runs past the end
    fs = FakeFs(DATA, [100, OSError("x"), 10, 200])  # whole, failed, short, whole
    source = fake_source(fs)
    assert source.read_many(ranges) == [DATA[o : o + n] for o, n in ranges]
    assert fs.calls == 4 + 2 and source.retries == 1


# --------------------------------------------------------------------------- the proxy itself


def test_the_proxy_injects_the_share_of_faults_it_is_asked_for(s3: Any, proxy: FaultInjectingProxy) -> None:
    proxy.configure(rate=0.3, kinds=["500", "503"], seed=3)
    proxy.reset()
    statuses = []
    connection = http.client.HTTPConnection(*proxy.address, timeout=10)
    for i in range(300):
        connection.request("GET", f"/{s3.name}/nothing-{i}")
        response = connection.getresponse()
        response.read()
        statuses.append(response.status)
    connection.close()
    stats = proxy.stats()
    assert stats["requests"] == 300
    assert 0.25 < stats["faults"] / 300 < 0.35
    assert statuses.count(500) == stats["by_kind"]["500"] and statuses.count(503) == stats["by_kind"]["503"]
    assert statuses.count(403) + statuses.count(404) == 300 - stats["faults"]  # the server answered the others


def test_without_faults_reads_are_not_retried(pack_url: str, s3: Any, proxy: FaultInjectingProxy) -> None:
    outcome = read_through(proxy, pack_url, proxy.storage_options(s3, **TIMEOUTS), BLOBS)
    assert outcome.outcome == "ok" and outcome.reads == 2 * len(BLOBS)
    assert outcome.faults == 0 and outcome.atpack_retries == 0


# --------------------------------------------------------------------------- reads


@pytest.mark.parametrize(("rate", "seed"), [(0.1, 1), (0.3, 1), (0.3, 2)])
def test_reads_under_faults_return_the_right_bytes(
    pack_url: str, s3: Any, proxy: FaultInjectingProxy, rate: float, seed: int
) -> None:
    proxy.configure(rate=rate, kinds=READ_KINDS, seed=seed)
    outcome = read_through(proxy, pack_url, proxy.storage_options(s3, **TIMEOUTS), BLOBS)

    assert outcome.outcome == "ok", outcome
    assert outcome.reads == 2 * len(BLOBS)
    assert outcome.faults > 0
    assert outcome.seconds < 30


def test_short_reads_are_retried_by_atpack(pack_url: str, s3: Any, proxy: FaultInjectingProxy) -> None:
    # a well-formed response with fewer bytes than asked: neither botocore nor s3fs notice
    proxy.configure(rate=0.3, kinds=["short"], seed=5)
    policy = storage.Retry(attempts=10)  # only atpack retries these: 10 in a row fail once in 170,000 reads
    outcome = read_through(proxy, pack_url, proxy.storage_options(s3, **TIMEOUTS), BLOBS, policy=policy)

    assert outcome.outcome == "ok", outcome
    assert outcome.by_kind["short"] > 0
    assert outcome.atpack_retries >= 1


def test_without_atpack_retries_a_short_read_is_an_error_not_wrong_bytes(
    pack_url: str, s3: Any, proxy: FaultInjectingProxy
) -> None:
    proxy.configure(rate=1.0, kinds=["short"], seed=5, pass_first=2)  # the size and the index pass
    outcome = read_through(
        proxy, pack_url, proxy.storage_options(s3, **TIMEOUTS), BLOBS, policy=storage.Retry(attempts=1)
    )
    assert outcome.outcome == "StorageError"
    assert "got" in (outcome.error or "") and "bytes" in (outcome.error or "")


@pytest.mark.parametrize("kind", ["reset", "500", "503", "stall", "cut", "short"])
def test_a_store_that_always_fails_is_a_storage_error_within_the_deadline(
    pack_url: str, s3: Any, proxy: FaultInjectingProxy, kind: str
) -> None:
    deadline = 1.5
    proxy.configure(rate=1.0, kinds=[kind], seed=0, stall=30, pass_first=2)  # open works, every read fails
    options = proxy.storage_options(s3)  # s3fs's own timeouts (15 s): only atpack's deadline ends a stall
    start = time.monotonic()
    outcome = read_through(proxy, pack_url, options, BLOBS, policy=storage.Retry(attempts=100, deadline=deadline))
    elapsed = time.monotonic() - start

    assert outcome.outcome == "StorageError", outcome
    assert outcome.reads == 0
    assert pack_url in (outcome.error or "")
    assert elapsed < deadline + 1.5, outcome


def test_opening_through_a_store_that_always_fails_is_a_storage_error_within_the_deadline(
    pack_url: str, s3: Any, proxy: FaultInjectingProxy
) -> None:
    proxy.configure(rate=1.0, kinds=["reset", "503"], seed=0)
    start = time.monotonic()
    with pytest.raises(atpack.StorageError, match=pack_url):
        atpack.open(pack_url, storage_options=proxy.storage_options(s3), retry=atpack.Retry(attempts=100, deadline=2.0))
    assert time.monotonic() - start < 3.5


def test_populate_and_load_read_with_the_retry_policy_they_are_given(
    pack_url: str, s3: Any, proxy: FaultInjectingProxy, tmp_path: Path
) -> None:
    proxy.configure(rate=1.0, kinds=["503"], seed=0, methods=["HEAD"])  # the pack's size: read with the policy
    options = proxy.storage_options(s3, **TIMEOUTS, retries={"max_attempts": 1})  # atpack's retries alone
    folders = {"inductor_dir": str(tmp_path / "i"), "triton_dir": str(tmp_path / "t")}
    for call in (populate, atpack.load_cache_artifacts):
        start = time.monotonic()
        with pytest.raises(atpack.StorageError, match=r"gave up after 2 attempts"):
            call(pack_url, storage_options=options, retry=atpack.Retry(attempts=2, backoff=0.01), **folders)
        assert time.monotonic() - start < 10
    assert not (tmp_path / "i").exists() and not (tmp_path / "t").exists()


def test_a_missing_pack_is_not_retried(s3: Any, proxy: FaultInjectingProxy) -> None:
    proxy.configure(rate=0.0)
    proxy.reset()
    with (
        counting_retries() as retries,
        pytest.raises(atpack.NotFoundError, match=r"^no pack at s3://.*/missing\.atpack: no such file$"),
    ):
        atpack.open(s3.url("missing.atpack"), storage_options=proxy.storage_options(s3))
    # s3fs asks for the object, then whether it is a folder; nobody asks again
    assert retries.count == 0 and [r.method for r in proxy.requests] == ["HEAD", "GET"]


# --------------------------------------------------------------------------- uploads

UPLOAD_BLOBS = sample_blobs(3, 4 * MiB, seed=7)  # 12 MiB: a multipart upload (of two parts, as s3fs buffers)
OLD_BLOBS = sample_blobs(2, 1000, seed=8)
PART = {"default_block_size": 5 * MiB}


@pytest.mark.parametrize("rate", [0.3, 0.6])
def test_uploads_under_faults_publish_a_correct_pack_or_nothing(
    s3: Any, proxy: FaultInjectingProxy, rate: float
) -> None:
    url = s3.url("upload.atpack")
    path = url.removeprefix("s3://")
    check = s3.filesystem()
    old_bytes = pack_bytes(OLD_BLOBS, name="old")
    outcomes = []
    for seed in range(4):
        existing = seed % 2 == 1  # a pack at the target already, or nothing
        proxy.configure(rate=0.0)
        if check.exists(path):
            check.rm(path)
        if existing:
            write_pack(url, s3.storage_options, OLD_BLOBS, name="old")
        proxy.configure(rate=rate, kinds=["reset", "lost", "500", "503", "slow"], seed=seed)
        # botocore does not retry (s3fs still retries connection errors): some uploads fail
        options = {**proxy.storage_options(s3, retries={"max_attempts": 1}, **TIMEOUTS), **PART}
        outcome = upload_through(proxy, url, options, UPLOAD_BLOBS, check=check, old=old_bytes)
        outcomes.append(outcome)
        assert outcome.outcome in (
            "published, target: new pack",
            f"StorageError, target: {'old pack' if existing else 'nothing'}",
        ), outcome
    assert sum(o.faults for o in outcomes) > 0


def test_an_upload_cut_off_at_any_request_publishes_a_correct_pack_or_nothing(
    s3: Any, proxy: FaultInjectingProxy
) -> None:
    """Every request from the k-th on fails (for each k up to the number a clean upload makes):
    the upload stops after k requests, at every point it can stop."""
    url = s3.url("cut.atpack")
    proxy.configure(rate=0.0)
    options = {**proxy.storage_options(s3, retries={"max_attempts": 1}, **TIMEOUTS), **PART}
    clean = upload_through(proxy, url, options, UPLOAD_BLOBS, check=s3.filesystem(), old=None)
    assert clean.outcome == "published, target: new pack"
    seen = set()
    for k in range(clean.requests):
        if s3.filesystem().exists(url.removeprefix("s3://")):
            s3.filesystem().rm(url.removeprefix("s3://"))
        proxy.configure(rate=1.0, kinds=["500"], seed=0, pass_first=k)
        outcome = upload_through(proxy, url, options, UPLOAD_BLOBS, check=s3.filesystem(), old=None)
        seen.add(outcome.outcome)
        assert outcome.outcome in ("StorageError, target: nothing", "published, target: new pack"), (k, outcome)
    assert "StorageError, target: nothing" in seen


def test_an_upload_whose_last_response_is_lost_is_published(s3: Any, proxy: FaultInjectingProxy) -> None:
    """The store completes the upload, then the connection drops before its answer, at every
    try: the pack is there whole, and the writer says so rather than reporting a failure."""
    url = s3.url("lost.atpack")
    proxy.configure(rate=0.0)
    options = {**proxy.storage_options(s3, retries={"max_attempts": 1}, **TIMEOUTS), **PART}
    clean = upload_through(proxy, url, options, UPLOAD_BLOBS, check=s3.filesystem(), old=None)
    assert clean.outcome == "published, target: new pack"
    s3.filesystem().rm(url.removeprefix("s3://"))
    proxy.configure(rate=1.0, kinds=["lost"], seed=0, pass_first=clean.requests - 1, methods=["POST"])
    outcome = upload_through(proxy, url, options, UPLOAD_BLOBS, check=s3.filesystem(), old=None)
    assert outcome.faults >= 1 and [r.method for r in proxy.requests if r.fault] == ["POST"] * outcome.faults
    assert outcome.outcome == "published, target: new pack", outcome


# --------------------------------------------------------------------------- a server that never answers

DEADLINE = 3  # ATPACK_TIMEOUT for the commands below (s3fs alone waits 15 s a read, and retries)


def _hanging_commands(base: str, pack: Path, tmp: Path) -> list[tuple[str, ...]]:
    """Every command that reaches a store, pointed at `base` (a server that never answers)."""
    url, remote = f"{base}/x.atpack", f"{base}/store"
    folders = ("--inductor-dir", str(tmp / "inductor"), "--triton-dir", str(tmp / "triton"))
    return [
        ("inspect", url),
        ("inspect", f"{base}/my-model"),
        ("populate", url, *folders),
        ("verify", url),
        ("push", str(pack), remote, "-t", "v1"),
        ("pull", remote, "v1", "--local", str(tmp / "local"), "-o", str(tmp / "out.atpack")),
        ("tag", remote),
        ("tag", remote, "v2", "v1"),
    ]


def _timed_cli(args: tuple[str, ...], env: dict[str, str], cwd: Path) -> tuple[int, str, float]:
    """`atpack ARGS` in a process of its own: its exit code, its stderr, and how long it ran."""
    start = time.monotonic()
    run = subprocess.run([sys.executable, "-m", "atpack", *args], env=env, cwd=cwd, capture_output=True, text=True)
    return run.returncode, run.stderr, time.monotonic() - start


@pytest.mark.parametrize("scheme", ["s3", "http"])
def test_every_command_against_a_server_that_never_answers_fails_in_one_line_within_the_deadline(
    scheme: str, tmp_path: Path
) -> None:
    pack = tmp_path / "local.atpack"
    write_pack(str(pack), {}, sample_blobs(3, 1500))
    with SilentServer() as silent, dummy_aws_environment():
        env = {**os.environ, "ATPACK_TIMEOUT": str(DEADLINE), "AWS_ENDPOINT_URL": silent.url}
        base = "s3://bucket" if scheme == "s3" else silent.url
        commands = _hanging_commands(base, pack, tmp_path)
        if scheme == "s3":
            commands.append(("merge", str(pack), str(pack), "-o", f"{base}/merged.atpack"))  # an upload
        with concurrent.futures.ThreadPoolExecutor(3) as pool:  # three at a time: a small machine
            results = list(pool.map(lambda args: _timed_cli(args, env, tmp_path), commands))
        assert silent.connections >= len(commands)  # each reached the server, and got no answer
    for args, (returncode, stderr, seconds) in zip(commands, results):
        what = f"atpack {' '.join(args)}: exit {returncode} after {seconds:.1f} s\n{stderr}"
        assert returncode == 1 and seconds < 20, what  # 3 s, and Python's start on a busy machine
        assert stderr.startswith("atpack: error: ") and stderr.count("\n") == 1, what
        assert "timed out" in stderr and f"the {DEADLINE} s deadline" in stderr, what
        assert any(arg in stderr for arg in args if arg.startswith(base)), what  # names the URL it waited for


def test_the_timeout_option_sets_the_deadline_over_the_environment(tmp_path: Path) -> None:
    with SilentServer() as silent:
        env = {**os.environ, "ATPACK_TIMEOUT": "300"}
        returncode, stderr, seconds = _timed_cli(("inspect", f"{silent.url}/x.atpack", "--timeout", "2"), env, tmp_path)
    assert returncode == 1 and seconds < 15, stderr
    assert stderr.count("\n") == 1 and "timed out" in stderr and "the 2 s deadline" in stderr, stderr


def test_the_deadline_bounds_a_library_call_too(monkeypatch: pytest.MonkeyPatch) -> None:
    from atpack.store import Store

    with SilentServer() as silent:
        monkeypatch.setenv("ATPACK_TIMEOUT", "1.5")
        start = time.monotonic()
        with pytest.raises(atpack.StorageError, match=r"x\.atpack: .*timed out.*the 1\.5 s deadline"):
            atpack.open(f"{silent.url}/x.atpack")
        with pytest.raises(atpack.StorageError, match=r"listing tags: timed out.*the 1 s deadline"):
            Store(f"{silent.url}/store", retry=storage.Retry(deadline=1.0)).tags()  # a parameter wins
        assert time.monotonic() - start < 1.5 + 1.0 + 2.0


@pytest.mark.parametrize("value", ["soon", "0", "-1", "nan"])
def test_a_timeout_that_is_not_a_number_of_seconds_is_a_one_line_error(
    value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ATPACK_TIMEOUT", value)
    with pytest.raises(atpack.AtpackError, match=f"ATPACK_TIMEOUT={value!r}: not a number of seconds") as error:
        atpack.open("http://127.0.0.1:9/x.atpack")
    assert "\n" not in str(error.value)
