"""A real S3-protocol server for tests: moto in server mode on 127.0.0.1, behind a
byte-counting TCP proxy, so a test can assert how many bytes the server sent.

moto is imported when a server starts, not with this module: ``pip install 'moto[server]'``
(the repository's ``test`` dependency group has it). `S3Server.filesystem` needs s3fs
(``atpack[s3]``), `S3Server.client` boto3 (moto brings it).

No AWS account, credentials or network are involved: `dummy_aws_environment` gives
botocore dummy credentials and keeps it away from config files, instance metadata and
HTTP proxies; everything listens on 127.0.0.1 only.

    with dummy_aws_environment(), S3Server() as server:
        bucket = server.new_bucket()
        fs = bucket.filesystem()
        ...
        bucket.reset_counters()
        ...
        print(bucket.bytes_sent)

`SilentServer` accepts TCP connections on 127.0.0.1 and never answers: an endpoint that hangs.
`DenyingServer` answers every request with an S3 403 error: a store that refuses the credentials.

`FaultInjectingProxy` is an HTTP proxy in front of the same server that answers a fixed share of
requests with a fault (connection resets, HTTP 500 and 503, slow or stalled responses, cut or
short bodies), for the flaky-storage tests:

    with server.fault_proxy(rate=0.3, seed=1) as proxy:
        options = proxy.storage_options(bucket)
        ...
        print(proxy.stats())
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import functools
import http.client
import http.server
import itertools
import logging
import os
import random
import socket
import struct
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

__all__ = [
    "FAULTS",
    "ByteCountingProxy",
    "DenyingServer",
    "FaultInjectingProxy",
    "Request",
    "S3Bucket",
    "S3Server",
    "SilentServer",
    "dummy_aws_environment",
]

REGION = "us-east-1"
KEY = "testing-key-id"
SECRET = "testing-secret"

_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": KEY,
    "AWS_SECRET_ACCESS_KEY": SECRET,
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    "NO_PROXY": "127.0.0.1,localhost",
    "no_proxy": "127.0.0.1,localhost",
}
_AWS_ENV_REMOVED = (
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "http_proxy",
    "https_proxy",
    "all_proxy",
)


@contextlib.contextmanager
def dummy_aws_environment() -> Iterator[None]:
    """Dummy credentials and no AWS config, metadata service or proxy, restored on exit."""
    saved = {name: os.environ.get(name) for name in (*_AWS_ENV, *_AWS_ENV_REMOVED)}
    os.environ.update(_AWS_ENV)
    for name in _AWS_ENV_REMOVED:
        os.environ.pop(name, None)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


class ByteCountingProxy:
    """Forwards TCP connections from a port on 127.0.0.1 to `upstream`, counting the bytes
    each way. Bytes are counted before they are forwarded, so once a client has received a
    response, every byte of it is already counted."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self._upstream = upstream
        self._lock = threading.Lock()
        self._sent = 0  # server -> client
        self._received = 0  # client -> server
        self._sockets: set[socket.socket] = set()
        self._closed = False
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.address: tuple[str, int] = self._listener.getsockname()[:2]
        self._thread = threading.Thread(target=self._accept_loop, name="s3-proxy-accept", daemon=True)
        self._thread.start()

    @property
    def bytes_sent(self) -> int:
        """Bytes the server sent to clients since the last reset."""
        with self._lock:
            return self._sent

    @property
    def bytes_received(self) -> int:
        """Bytes clients sent to the server since the last reset."""
        with self._lock:
            return self._received

    def reset(self) -> None:
        with self._lock:
            self._sent = self._received = 0

    def close(self) -> None:
        self._closed = True
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked in accept()
        self._listener.close()
        with self._lock:
            sockets, self._sockets = list(self._sockets), set()
        for s in sockets:
            with contextlib.suppress(OSError):
                s.close()
        self._thread.join(timeout=5)

    def _accept_loop(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self._upstream)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets.update((client, server))
            done = threading.Barrier(2, action=functools.partial(self._forget, client, server))
            for src, dst, downstream in ((server, client, True), (client, server, False)):
                threading.Thread(target=self._pump, args=(src, dst, downstream, done), daemon=True).start()

    def _forget(self, *sockets: socket.socket) -> None:
        with self._lock:
            self._sockets.difference_update(sockets)
        for s in sockets:
            with contextlib.suppress(OSError):
                s.close()

    def _pump(self, src: socket.socket, dst: socket.socket, downstream: bool, done: threading.Barrier) -> None:
        try:
            while True:
                data = src.recv(1 << 16)
                if not data:
                    break
                with self._lock:
                    if downstream:
                        self._sent += len(data)
                    else:
                        self._received += len(data)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                dst.shutdown(socket.SHUT_WR)
            with contextlib.suppress(threading.BrokenBarrierError):
                done.wait()


class SilentServer:
    """Accepts every TCP connection on 127.0.0.1 and never sends a byte (nor closes one) until
    closed: a server that hangs. `connections` counts what it accepted."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.address: tuple[str, int] = self._listener.getsockname()[:2]
        self.url = "http://{}:{}".format(*self.address)
        self._held: list[socket.socket] = []
        self._closed = False
        self._thread = threading.Thread(target=self._accept_loop, name="silent-server", daemon=True)
        self._thread.start()

    @property
    def connections(self) -> int:
        return len(self._held)

    def _accept_loop(self) -> None:
        while not self._closed:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            self._held.append(conn)

    def close(self) -> None:
        self._closed = True
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        for conn in self._held:
            with contextlib.suppress(OSError):
                conn.close()
        self._thread.join(timeout=5)

    def __enter__(self) -> SilentServer:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


_DENIALS = {
    "InvalidAccessKeyId": "The AWS Access Key Id you provided does not exist in our records.",
    "SignatureDoesNotMatch": "The request signature we calculated does not match the signature you provided.",
    "AccessDenied": "Access Denied",
}


class DenyingServer:
    """Answers every request on 127.0.0.1 with HTTP 403 and the S3 error `code` (a store that
    refuses these credentials: ``InvalidAccessKeyId``, ``SignatureDoesNotMatch``,
    ``AccessDenied``); a HEAD gets the status alone, as S3 sends it. `requests` counts what it
    answered."""

    def __init__(self, code: str) -> None:
        owner = self
        self.requests = 0
        lock = threading.Lock()
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Error><Code>{code}</Code><Message>{_DENIALS[code]}</Message><RequestId>deny</RequestId></Error>"
        ).encode()

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with lock:
                    owner.requests += 1
                self.send_response(403)
                self.send_header("Content-Type", "application/xml")
                self.send_header("Content-Length", "0" if self.command == "HEAD" else str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            do_HEAD = do_PUT = do_POST = do_DELETE = do_GET

        self._server = _QuietServer(("127.0.0.1", 0), Handler)
        self.url = "http://{}:{}".format(*self._server.server_address[:2])
        self._thread = threading.Thread(target=self._server.serve_forever, name="denying-server", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> DenyingServer:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


# --------------------------------------------------------------------------- faults

FAULTS = ("reset", "lost", "500", "503", "slow", "stall", "cut", "short")
"""What `FaultInjectingProxy` can do to a request:

reset   the connection is reset (RST) before the request reaches the server
lost    the server handles the request, then the connection is reset before its response
500     an S3 `InternalError` response (the server never sees the request)
503     an S3 `SlowDown` response (the server never sees the request)
slow    the response is held back `delay` seconds, then sent whole
stall   the response is held back `stall` seconds (longer than a client should wait), then sent
cut     the response's headers promise the whole body, half of it is sent, then the connection is reset
short   a ranged GET is answered with the first half of the range, headers (Content-Length,
        Content-Range) consistent with that: a well-formed response with fewer bytes than asked

`cut` and `short` apply to GET requests only; any other request given one gets `reset` instead.
"""

_HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade"}
_S3_ERRORS = {
    500: ("InternalError", "We encountered an internal error. Please try again."),
    503: ("SlowDown", "Please reduce your request rate."),
}


@dataclasses.dataclass(frozen=True)
class Request:
    """One request as the proxy saw it, and what it did to it."""

    method: str
    path: str
    range: str | None
    fault: str | None
    at: float


class FaultInjectingProxy:
    """An HTTP/1.1 proxy on 127.0.0.1 in front of `upstream` that injects a fault into a fixed
    share of requests: each request, independently, gets a fault with probability `rate`
    (drawn from a generator seeded with `seed`), of a kind drawn evenly from `kinds` (see
    `FAULTS`); the first `pass_first` requests pass untouched, and with `methods` only requests
    of those HTTP methods get faults (each `configure` call sets it, all methods by default).
    `configure` changes these at any time; `requests` lists what was done, `stats()` counts it
    (bytes of request and response bodies included)."""

    def __init__(
        self,
        upstream: tuple[str, int],
        *,
        rate: float = 0.0,
        kinds: Sequence[str] = FAULTS,
        seed: int = 0,
        delay: float = 0.2,
        stall: float = 5.0,
        pass_first: int = 0,
    ) -> None:
        self._upstream = upstream
        self._lock = threading.Lock()
        self.requests: list[Request] = []
        self._body_bytes = [0, 0]  # received from clients, sent to them
        self.configure(rate=rate, kinds=kinds, seed=seed, delay=delay, stall=stall, pass_first=pass_first)
        proxy = self

        class Handler(_FaultHandler):
            owner = proxy

        self._server = _QuietServer(("127.0.0.1", 0), Handler)
        self.address: tuple[str, int] = self._server.server_address[:2]  # type: ignore[assignment]
        self.endpoint_url = "http://{}:{}".format(*self.address)
        self._thread = threading.Thread(target=self._server.serve_forever, name="s3-fault-proxy", daemon=True)
        self._thread.start()

    def configure(
        self,
        *,
        rate: float | None = None,
        kinds: Sequence[str] | None = None,
        seed: int | None = None,
        delay: float | None = None,
        stall: float | None = None,
        pass_first: int | None = None,
        methods: Sequence[str] | None = None,
    ) -> None:
        with self._lock:
            self._methods = tuple(methods) if methods else None
            if pass_first is not None:
                self._pass_left = pass_first
            if rate is not None:
                if not 0 <= rate <= 1:
                    raise ValueError(f"rate {rate} is not in [0, 1]")
                self.rate = rate
            if kinds is not None:
                unknown = set(kinds) - set(FAULTS)
                if unknown or not kinds:
                    raise ValueError(f"unknown fault kinds {sorted(unknown)}; known: {FAULTS}")
                self.kinds = tuple(kinds)
            if seed is not None:
                self._rng = random.Random(seed)
            if delay is not None:
                self.delay = delay
            if stall is not None:
                self.stall = stall

    def storage_options(self, bucket: S3Bucket, **config: Any) -> dict[str, Any]:
        """`bucket`'s s3fs options with this proxy as the endpoint; `config` goes to botocore's
        Config (say, ``retries={"max_attempts": 1}``, ``read_timeout=1``)."""
        options = {**bucket.storage_options, "client_kwargs": {**bucket.storage_options["client_kwargs"]}}
        options["client_kwargs"]["endpoint_url"] = self.endpoint_url
        if config:
            options["config_kwargs"] = config
        return options

    def reset(self) -> None:
        """Forget the requests seen so far."""
        with self._lock:
            self.requests = []
            self._body_bytes = [0, 0]

    def stats(self) -> dict[str, Any]:
        """Requests seen, faults injected (in all and by kind), and bytes of request and response
        bodies since the last reset."""
        with self._lock:
            requests = list(self.requests)
            received, sent = self._body_bytes
        faults = collections.Counter(r.fault for r in requests if r.fault)
        return {
            "requests": len(requests),
            "faults": sum(faults.values()),
            "by_kind": dict(sorted(faults.items())),
            "bytes_received": received,
            "bytes_sent": sent,
        }

    def _count(self, received: int, sent: int) -> None:
        with self._lock:
            self._body_bytes[0] += received
            self._body_bytes[1] += sent

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> FaultInjectingProxy:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _decide(self, method: str, path: str, range_: str | None) -> str | None:
        with self._lock:
            if self._pass_left > 0:
                self._pass_left -= 1
                fault = None
            else:
                fault = self._rng.choice(self.kinds) if self._rng.random() < self.rate else None
            if self._methods is not None and method not in self._methods:
                fault = None
            if fault in ("cut", "short") and method != "GET":
                fault = "reset"
            self.requests.append(Request(method, path, range_, fault, time.monotonic()))
            return fault


class _QuietServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that went away (it timed out, or gave up): nothing to report


class _FaultHandler(http.server.BaseHTTPRequestHandler):
    """Forwards each request to the proxy's upstream on a connection of its own, unless the
    proxy decides on a fault."""

    owner: FaultInjectingProxy
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        super().setup()
        # headers and body go out in separate writes: without this, Nagle's algorithm and the
        # client's delayed ACK hold each body back 40 ms
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._upstream: http.client.HTTPConnection | None = None

    def finish(self) -> None:
        with contextlib.suppress(Exception):
            super().finish()
        if self._upstream is not None:
            self._upstream.close()

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._handle()

    do_HEAD = do_PUT = do_POST = do_DELETE = do_GET

    def _handle(self) -> None:
        body = self._read_body()
        fault = self.owner._decide(self.command, self.path, self.headers.get("Range"))
        if fault == "reset":
            return self._reset()
        if fault in ("500", "503"):
            return self._error(int(fault))
        if fault == "slow":
            time.sleep(self.owner.delay)
        elif fault == "stall":
            time.sleep(self.owner.stall)
        try:
            status, reason, headers, payload = self._forward(body)
        except OSError:
            return self._reset()
        if fault == "lost":
            return self._reset()
        promised = len(payload)
        if fault == "short" and status == 206 and len(payload) > 1:
            payload = payload[: len(payload) // 2]
            promised = len(payload)
            headers = [(k, _shorter_range(v, len(payload)) if k.lower() == "content-range" else v) for k, v in headers]
        elif fault == "cut" and len(payload) > 1:
            payload = payload[: len(payload) // 2]
        self.send_response(status, reason)
        for key, value in headers:
            if key.lower() not in _HOP_BY_HOP and key.lower() != "content-length":
                self.send_header(key, value)
        if self.command == "HEAD":
            length = next((v for k, v in headers if k.lower() == "content-length"), "0")
            self.send_header("Content-Length", length)
        else:
            self.send_header("Content-Length", str(promised))
        self.end_headers()
        self.owner._count(len(body), 0 if self.command == "HEAD" else len(payload))  # before the client has it
        if self.command != "HEAD":
            self.wfile.write(payload)
        if fault == "cut":
            self.wfile.flush()
            self._reset()

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _forward(self, body: bytes) -> tuple[int, str, list[tuple[str, str]], bytes]:
        if self._upstream is None:
            self._upstream = http.client.HTTPConnection(*self.owner._upstream, timeout=60)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
        if body or self.command in ("PUT", "POST"):
            headers["Content-Length"] = str(len(body))
        try:
            self._upstream.request(self.command, self.path, body=body, headers=headers)
            response = self._upstream.getresponse()
            payload = response.read()
        except (OSError, http.client.HTTPException):
            self._upstream.close()
            self._upstream = None
            raise OSError("upstream failed") from None
        return response.status, response.reason, response.getheaders(), payload

    def _error(self, status: int) -> None:
        code, message = _S3_ERRORS[status]
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Error><Code>{code}</Code><Message>{message}</Message><RequestId>fault-proxy</RequestId></Error>"
        ).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", "0" if self.command == "HEAD" else str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _reset(self) -> None:
        """Reset the connection: SO_LINGER 0 makes close() send RST instead of FIN."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        # close the socket now (rfile holds a reference to it); wfile writes to the socket
        # directly, and the server still flushes it after this request
        with contextlib.suppress(OSError):
            self.rfile.close()
        with contextlib.suppress(OSError):
            self.connection.close()


def _shorter_range(content_range: str, length: int) -> str:
    """``bytes a-b/n`` cut to `length` bytes."""
    try:
        unit, spec = content_range.split(" ", 1)
        span, total = spec.split("/", 1)
        start = int(span.split("-", 1)[0])
    except ValueError:
        return content_range
    return f"{unit} {start}-{start + length - 1}/{total}"


MOTO_MISSING = "an S3 test server needs moto's server: pip install 'moto[server]'"
"""What starting an `S3Server` without moto (or without its server's packages) raises."""


@contextlib.contextmanager
def _needs_moto() -> Iterator[None]:
    """Imports of moto in it fail with a one-line hint to install it (moto, or flask and
    werkzeug, which its server needs: ``moto[server]``)."""
    try:
        yield
    except ImportError as e:
        raise ImportError(f"{MOTO_MISSING} ({e})", name=e.name) from e


class S3Server:
    """moto's S3 in server mode on 127.0.0.1, reached through a `ByteCountingProxy`.

    Use inside `dummy_aws_environment()`. Every bucket it creates is new and empty."""

    def __init__(self) -> None:
        with _needs_moto():
            from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self._moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self._moto.start()
        host, port = self._moto.get_host_and_port()
        self.direct_endpoint_url = f"http://{host}:{port}"  # bypasses the proxy: not counted
        self.upstream = (host, port)
        self._proxy = ByteCountingProxy((host, port))
        self.endpoint_url = "http://{}:{}".format(*self._proxy.address)
        self._buckets = itertools.count()
        self._ident = f"{os.getpid()}-{id(self):x}"

    # -- what clients need

    @property
    def storage_options(self) -> dict[str, Any]:
        """s3fs options for this server: dummy credentials, this endpoint, no caching
        (every call makes a new filesystem instance, files read with no read-ahead)."""
        return {
            "key": KEY,
            "secret": SECRET,
            "client_kwargs": {"endpoint_url": self.endpoint_url, "region_name": REGION},
            "default_cache_type": "none",
            "skip_instance_cache": True,
            "use_listings_cache": False,
        }

    def filesystem(self) -> Any:
        """A new s3fs filesystem for this server, sharing no cache with any other."""
        import s3fs

        return s3fs.S3FileSystem(**self.storage_options)

    def client(self) -> Any:
        """A boto3 S3 client for this server (through the proxy: its traffic is counted)."""
        import boto3  # type: ignore[import-untyped]

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=REGION,
            aws_access_key_id=KEY,
            aws_secret_access_key=SECRET,
        )

    def fault_proxy(self, **faults: Any) -> FaultInjectingProxy:
        """A new `FaultInjectingProxy` in front of this server (see its arguments)."""
        return FaultInjectingProxy(self.upstream, **faults)

    def new_bucket(self) -> S3Bucket:
        name = f"atpack-{self._ident}-{next(self._buckets)}"
        self.client().create_bucket(Bucket=name)
        return S3Bucket(self, name)

    # -- counting

    @property
    def bytes_sent(self) -> int:
        """Bytes the server sent (responses, headers included) since the last reset."""
        return self._proxy.bytes_sent

    @property
    def bytes_received(self) -> int:
        """Bytes the server received (requests, headers included) since the last reset."""
        return self._proxy.bytes_received

    def reset_counters(self) -> None:
        self._proxy.reset()

    # -- lifetime

    def stop(self) -> None:
        self._proxy.close()
        self._moto.stop()

    def __enter__(self) -> S3Server:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


class S3Bucket:
    """One fresh bucket on an `S3Server`, with everything a test needs to reach it."""

    def __init__(self, server: S3Server, name: str) -> None:
        self.server = server
        self.name = name
        self.endpoint_url = server.endpoint_url
        self.storage_options = server.storage_options

    def url(self, key: str) -> str:
        return f"s3://{self.name}/{key}"

    def filesystem(self) -> Any:
        return self.server.filesystem()

    def client(self) -> Any:
        return self.server.client()

    def keys(self) -> list[str]:
        """Every object key in the bucket (a listing, page by page; no cache)."""
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=self.name)
        return [o["Key"] for page in pages for o in page.get("Contents", [])]

    def put_directly(self, objects: dict[str, bytes]) -> None:
        """Store `objects` (key: bytes) in the bucket through moto's backend, not HTTP: thousands
        a second, to fill a large store (nothing is counted)."""
        with _needs_moto():
            from moto.core.models import DEFAULT_ACCOUNT_ID
            from moto.s3.models import s3_backends

        backend = s3_backends[DEFAULT_ACCOUNT_ID]["global"]
        for key, data in objects.items():
            backend.put_object(self.name, key, data)

    def multipart_uploads(self) -> list[str]:
        """Keys of the multipart uploads begun in the bucket and neither completed nor aborted."""
        listing = self.client().list_multipart_uploads(Bucket=self.name)
        return [u["Key"] for u in listing.get("Uploads", [])]

    def delete(self) -> None:
        """Abort its uploads, delete its objects, then the bucket itself."""
        client = self.client()
        for upload in client.list_multipart_uploads(Bucket=self.name).get("Uploads", []):
            client.abort_multipart_upload(Bucket=self.name, Key=upload["Key"], UploadId=upload["UploadId"])
        keys = self.keys()
        for start in range(0, len(keys), 1000):  # DeleteObjects takes up to 1,000 keys
            batch = [{"Key": key} for key in keys[start : start + 1000]]
            client.delete_objects(Bucket=self.name, Delete={"Objects": batch, "Quiet": True})
        client.delete_bucket(Bucket=self.name)

    @property
    def bytes_sent(self) -> int:
        return self.server.bytes_sent

    @property
    def bytes_received(self) -> int:
        return self.server.bytes_received

    def reset_counters(self) -> None:
        self.server.reset_counters()

    def __repr__(self) -> str:
        return f"<S3Bucket {self.name} at {self.endpoint_url}>"
