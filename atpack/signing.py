"""Ed25519 signatures over a pack's content digest.

A signature signs ``b"atpack-signature-v1\\n" + digest`` (the pack's content digest: its
artifacts and digested annotations, which transitively cover every blob). It is stored in the
pack as the annotation ``io.atpack.signature.<key id>`` (base64), which is not part of the
digest, so signing rewrites the file but keeps the pack's identity; any change to the content
changes the digest and breaks the signature. A key id is the first 16 hex digits of the SHA-256
of the raw public key. Keys are PEM files (PKCS#8 private, SubjectPublicKeyInfo public).

Needs the `cryptography` package (``pip install atpack[sign]``), imported only here.
"""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Iterable
from typing import Any

from .errors import AtpackError, IntegrityError, SignatureError
from .pack import DEFAULT_LEVEL, Pack, create, open_pack

__all__ = [
    "SIGNATURE_PREFIX",
    "SignatureError",
    "generate_key",
    "key_id",
    "public_key_id",
    "sign",
    "signer_ids",
    "verify_signature",
]

SIGNATURE_PREFIX = "io.atpack.signature."
_CONTEXT = b"atpack-signature-v1\n"


def _crypto() -> Any:
    try:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ed25519
    except ImportError as e:
        raise AtpackError("signatures need the cryptography package: pip install 'atpack[sign]'") from e
    return serialization, ed25519


def generate_key(private_path: str | os.PathLike[str], public_path: str | os.PathLike[str]) -> str:
    """Write a new Ed25519 key pair (the private key readable by its owner only); returns its id.
    Neither file may exist, not even as a symlink (`FileExistsError`): a link planted at either
    name would have the key written wherever it points."""
    serialization, ed25519 = _crypto()
    private = ed25519.Ed25519PrivateKey.generate()
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    _create(private_path, pem, 0o600)
    try:
        _create(public_path, public, 0o644)
    except BaseException:
        os.unlink(private_path)  # no private key without its public one
        raise
    return key_id(private.public_key())


def _create(path: str | os.PathLike[str], data: bytes, mode: int) -> None:
    """A new file holding `data`: O_EXCL refuses an existing name, a symlink's included."""
    fd = os.open(os.fspath(path), os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def key_id(public_key: Any) -> str:
    serialization, _ = _crypto()
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def public_key_id(path: str | os.PathLike[str]) -> str:
    """The id of the public key in the PEM file at `path`."""
    return key_id(_load_public(path))


def signer_ids(pack: Pack) -> list[str]:
    """The ids of the keys whose signatures the pack stores (verified or not), sorted."""
    return sorted(k[len(SIGNATURE_PREFIX) :] for k in pack.manifest.annotations if k.startswith(SIGNATURE_PREFIX))


def _load_private(path: str | os.PathLike[str]) -> Any:
    serialization, ed25519 = _crypto()
    try:
        with open(path, "rb") as f:
            key = serialization.load_pem_private_key(f.read(), password=None)
    except (OSError, ValueError, TypeError) as e:
        raise AtpackError(f"{os.fspath(path)}: not an Ed25519 private key in PEM ({e})") from e
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise AtpackError(f"{os.fspath(path)}: not an Ed25519 key")
    return key


def _load_public(path: str | os.PathLike[str]) -> Any:
    serialization, ed25519 = _crypto()
    try:
        with open(path, "rb") as f:
            key = serialization.load_pem_public_key(f.read())
    except (OSError, ValueError, TypeError) as e:
        raise AtpackError(f"{os.fspath(path)}: not an Ed25519 public key in PEM ({e})") from e
    if not isinstance(key, ed25519.Ed25519PublicKey):
        raise AtpackError(f"{os.fspath(path)}: not an Ed25519 key")
    return key


def sign(
    url: str | os.PathLike[str],
    key: str | os.PathLike[str],
    *,
    out: str | os.PathLike[str] | None = None,
    storage_options: dict[str, Any] | None = None,
    level: int = DEFAULT_LEVEL,
) -> str:
    """Sign the pack at `url` with the private key file `key`, writing the signed pack to `out`
    (by default, over the pack, atomically). Returns the key id."""
    private = _load_private(key)
    kid = key_id(private.public_key())
    with open_pack(url, storage_options=storage_options) as pack:
        signature = base64.b64encode(private.sign(_CONTEXT + pack.digest.encode())).decode()
        annotations = dict(pack.manifest.annotations)
        annotations[SIGNATURE_PREFIX + kid] = signature
        _rewrite(pack, out if out is not None else url, annotations, storage_options, level)
    return kid


def verify_signature(pack: Pack, trusted: Iterable[str | os.PathLike[str]]) -> str:
    """The id of a trusted key whose signature of `pack` verifies; else `SignatureError`."""
    keys = {key_id(k): k for k in (_load_public(p) for p in trusted)}
    if not keys:
        raise AtpackError("no trusted key given")
    signed = {
        k[len(SIGNATURE_PREFIX) :]: v for k, v in pack.manifest.annotations.items() if k.startswith(SIGNATURE_PREFIX)
    }
    if not signed:
        raise SignatureError(f"{pack.name}: not signed")
    message = _CONTEXT + pack.digest.encode()
    for kid, key in keys.items():
        if kid not in signed:
            continue
        try:
            key.verify(base64.b64decode(signed[kid], validate=True), message)
        except Exception as e:
            raise SignatureError(
                f"{pack.name}: the signature of key {kid} does not verify: the pack changed after signing"
            ) from e
        return kid
    raise SignatureError(f"{pack.name}: signed by {', '.join(sorted(signed))}, none of them a trusted key")


def _rewrite(
    pack: Pack,
    out: str | os.PathLike[str],
    annotations: dict[str, str],
    storage_options: dict[str, Any] | None,
    level: int,
) -> None:
    digested = set(pack.manifest.digested_annotations)
    artifacts = list(pack.artifacts)
    contents = pack  # read everything before the target (possibly the same file) is replaced
    with create(out, storage_options=storage_options, level=level) as writer:
        writer.copy_from(contents, artifacts)
        for k, v in annotations.items():
            writer.annotate(k, v, digested=k in digested)
    if writer.info is not None and writer.info.digest != pack.digest:
        raise IntegrityError(f"{pack.name}: signing changed the pack's digest")
