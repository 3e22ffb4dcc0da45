"""A real S3-protocol server for tests: moto in server mode on 127.0.0.1, behind a
byte-counting TCP proxy, so a test can assert how many bytes the server sent.

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
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import socket
import threading
from collections.abc import Iterator
from typing import Any

__all__ = ["ByteCountingProxy", "S3Bucket", "S3Server", "dummy_aws_environment"]

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
            done = threading.Barrier(2, action=lambda c=client, s=server: self._forget(c, s))
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


class S3Server:
    """moto's S3 in server mode on 127.0.0.1, reached through a `ByteCountingProxy`.

    Use inside `dummy_aws_environment()`. Every bucket it creates is new and empty."""

    def __init__(self) -> None:
        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self._moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self._moto.start()
        host, port = self._moto.get_host_and_port()
        self.direct_endpoint_url = f"http://{host}:{port}"  # bypasses the proxy: not counted
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
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=REGION,
            aws_access_key_id=KEY,
            aws_secret_access_key=SECRET,
        )

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
        """Every object key in the bucket (one listing, no cache)."""
        listing = self.client().list_objects_v2(Bucket=self.name)
        return [o["Key"] for o in listing.get("Contents", [])]

    def multipart_uploads(self) -> list[str]:
        """Keys of the multipart uploads begun in the bucket and neither completed nor aborted."""
        listing = self.client().list_multipart_uploads(Bucket=self.name)
        return [u["Key"] for u in listing.get("Uploads", [])]

    def delete(self) -> None:
        """Abort its uploads, delete its objects, then the bucket itself."""
        client = self.client()
        for upload in client.list_multipart_uploads(Bucket=self.name).get("Uploads", []):
            client.abort_multipart_upload(Bucket=self.name, Key=upload["Key"], UploadId=upload["UploadId"])
        for key in self.keys():
            client.delete_object(Bucket=self.name, Key=key)
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
