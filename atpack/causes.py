"""Why a call to a store failed, in atpack's words, and whether trying again can help.

A filesystem hands up the error that ended a request wrapped in its own layers (s3fs, then
botocore, then aiohttp, then the socket's `OSError`), each worded its own way, and its retries
can end in an error that says less than the first one. `cause_of` walks the whole chain
(``__cause__``, ``__context__``, botocore's ``kwargs["error"]``, aiohttp's ``os_error``) and names
the first link it recognises: missing or refused credentials, a failed DNS lookup, a refused
connection, an unreachable network, a reset, a TLS failure, a timeout. Classes are recognised by
name, so nothing here imports botocore or aiohttp (``import atpack`` stays light, and works
without s3fs).
"""

from __future__ import annotations

import dataclasses
import errno
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit

__all__ = ["PERMANENT", "Cause", "cause_of"]

PERMANENT = (
    FileNotFoundError,
    FileExistsError,
    PermissionError,
    IsADirectoryError,
    NotADirectoryError,
    ValueError,
    TypeError,
    NotImplementedError,
)
"""Errors that a retry does not mend, whatever they wrap."""


@dataclasses.dataclass(frozen=True)
class Cause:
    """What went wrong: `text`, one line; `permanent` when another attempt cannot mend it;
    `telling` False for a bare timeout (a deadline cut an attempt short: it says nothing of why)."""

    text: str
    permanent: bool = False
    telling: bool = True

    def __str__(self) -> str:
        return self.text


CREDENTIALS_HINT = (
    'give them as storage options (--storage-options \'{"key": ..., "secret": ...}\'), '
    "in AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or in an AWS profile; "
    "'{\"anon\": true}' reads a public bucket without them"
)

_REFUSED_BY_STORE = {  # S3 error codes that the same request, sent again, gets again
    "InvalidAccessKeyId": "the store does not know the access key (InvalidAccessKeyId): check the credentials",
    "SignatureDoesNotMatch": "the secret key does not match the access key (SignatureDoesNotMatch): "
    "check the credentials",
    "ExpiredToken": "the credentials have expired (ExpiredToken): renew them",
    "TokenRefreshRequired": "the credentials have expired (TokenRefreshRequired): renew them",
    "InvalidToken": "the session token is not valid (InvalidToken): check the credentials",
    "RequestTimeTooSkewed": "this machine's clock is too far off for the store to accept its requests "
    "(RequestTimeTooSkewed)",
    "AccessDenied": "access denied (AccessDenied): these credentials may not do this",
    "AllAccessDisabled": "access denied (AllAccessDisabled): the store refuses all access",
    "AccountProblem": "access denied (AccountProblem): the account cannot be used",
}


def cause_of(error: BaseException) -> Cause:
    """What `error`, raised by a filesystem, says went wrong. A builtin error that says it all
    (a missing file, a bad argument) is itself; else the first link of its chain that a rule
    recognises, outermost first (a bare timeout only if nothing tells more); else its own type
    and message, permanent if it is one of `PERMANENT`."""
    itself = Cause(f"{type(error).__name__}: {error}", permanent=isinstance(error, PERMANENT))
    if itself.permanent and not isinstance(error, PermissionError):  # the store's error code says more
        return itself
    chain = list(_chain(error))
    where = _where(chain)
    bare: Cause | None = None
    for link in chain:
        for rule in _RULES:
            cause = rule(link, where)
            if cause is not None and cause.telling:
                return cause
            bare = bare or cause
    return bare or itself


def _chain(error: BaseException) -> Iterator[BaseException]:
    """`error` and every error it wraps, outermost first, each once."""
    todo: list[object] = [error]
    seen: list[BaseException] = []
    while todo and len(seen) < 32:
        link = todo.pop(0)
        if not isinstance(link, BaseException) or any(link is s for s in seen):
            continue
        seen.append(link)
        yield link
        kwargs = getattr(link, "kwargs", None)
        inner = kwargs.get("error") if isinstance(kwargs, dict) else None  # botocore's connection errors
        todo += [link.__cause__, link.__context__, inner, getattr(link, "os_error", None)]  # aiohttp's


def _where(chain: list[BaseException]) -> str:
    """The host (and port) the chain names: aiohttp's connection errors carry them, botocore's the URL."""
    for link in chain:
        host, port = getattr(link, "host", None), getattr(link, "port", None)
        if isinstance(host, str) and host:
            return f"{host}:{port}" if isinstance(port, int) else host
        kwargs = getattr(link, "kwargs", None)
        url = kwargs.get("endpoint_url") if isinstance(kwargs, dict) else None
        if isinstance(url, str) and urlsplit(url).netloc:
            return urlsplit(url).netloc
    return ""


def _named(error: BaseException, *names: str) -> bool:
    return any(cls.__name__ in names for cls in type(error).__mro__)


def _credentials(e: BaseException, where: str) -> Cause | None:
    if _named(e, "NoCredentialsError"):
        return Cause(f"no credentials found: {CREDENTIALS_HINT}", permanent=True)
    if _named(e, "PartialCredentialsError"):
        hint = f"a key without its secret, or the reverse: {CREDENTIALS_HINT}"
        return Cause(f"incomplete credentials ({hint})", permanent=True)
    return None


def _refused_by_store(e: BaseException, where: str) -> Cause | None:
    """The store answered that these credentials may not do this (an S3 error code, or HTTP 401/403)."""
    response = getattr(e, "response", None)
    details = response.get("Error") if isinstance(response, dict) else None
    code = str(details.get("Code", "")) if isinstance(details, dict) else ""
    if code in _REFUSED_BY_STORE:
        return Cause(_REFUSED_BY_STORE[code], permanent=True)
    status = getattr(e, "status", None) or getattr(e, "code", None)  # aiohttp's, gcsfs's
    if code in ("401", "403") or (status in (401, 403) and isinstance(status, int)):
        return Cause(f"access denied (HTTP {code or status}): the store refused these credentials", permanent=True)
    return None


def _dns(e: BaseException, where: str) -> Cause | None:
    import socket  # here: a local pack's command never pays for it

    if not (isinstance(e, socket.gaierror) or _named(e, "ClientConnectorDNSError")):
        return None
    host = where.rsplit(":", 1)[0] if where.count(":") == 1 else where
    no_such_name = {getattr(socket, name) for name in ("EAI_NONAME", "EAI_NODATA") if hasattr(socket, name)}
    unknown = getattr(e, "errno", None) in no_such_name  # aiohttp's error carries the lookup's
    what = "no such name" if unknown else "the DNS lookup failed"
    return Cause(f"cannot resolve host {host or 'of the store'}: {what}", permanent=unknown)


def _connection(e: BaseException, where: str) -> Cause | None:
    """A connection that could not be made, or broke: worth another try (a server restarting)."""
    at = where or "the store's address"
    number = getattr(e, "errno", None)
    if isinstance(e, ConnectionRefusedError) or number == errno.ECONNREFUSED:
        return Cause(f"connection refused: no server listens at {at}")
    if number in (errno.ENETUNREACH, errno.EHOSTUNREACH):
        return Cause(f"{'network' if number == errno.ENETUNREACH else 'host'} unreachable: cannot reach {at}")
    if isinstance(e, ConnectionResetError) or number == errno.ECONNRESET:
        return Cause(f"connection reset by {at}")
    if isinstance(e, (ConnectionAbortedError, BrokenPipeError)) or _named(e, "SSLEOFError"):
        return Cause(f"connection to {at} broken")
    if _named(e, "ServerDisconnectedError", "ConnectionClosedError"):
        return Cause(f"connection closed by {at} before it answered")
    return None


def _tls(e: BaseException, where: str) -> Cause | None:
    at = where or "the store"
    if _named(e, "SSLCertVerificationError", "ClientConnectorCertificateError"):
        return Cause(f"the TLS certificate of {at} is not trusted", permanent=True)
    if _named(e, "SSLError", "ClientConnectorSSLError", "ClientSSLError"):  # mostly https:// to a plain http port
        return Cause(f"the TLS handshake with {at} failed (is it an https endpoint?)", permanent=True)
    return None


def _timeout(e: BaseException, where: str) -> Cause | None:
    at = where or "the store"
    if _named(e, "ConnectTimeoutError", "ConnectionTimeoutError"):  # botocore's, aiohttp's
        return Cause(f"timed out connecting to {at}")
    if _named(e, "ReadTimeoutError", "SocketTimeoutError", "ServerTimeoutError"):
        return Cause(f"timed out waiting for {at} to answer")
    if isinstance(e, TimeoutError):  # fsspec's FSTimeoutError and asyncio's say nothing
        return Cause(f"timed out ({e})") if str(e) else Cause("timed out", telling=False)
    return None


_RULES: tuple[Callable[[BaseException, str], Cause | None], ...] = (
    _credentials,
    _refused_by_store,
    _dns,
    _connection,
    _tls,
    _timeout,
)
"""Tried on each link of a chain in this order, outermost link first."""
