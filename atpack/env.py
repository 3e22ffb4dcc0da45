"""The running machine's environment, and whether an artifact is valid on it.

Fields are computed lazily, only when an artifact depends on them. `torch_key()` and
`triton_key()` hash every source file of their package (seconds), so they are cached per
installation under the atpack cache folder and the cache is validated by cheap `stat`s of
each package's files and metadata; an installation change invalidates it.
Device facts come from the CUDA driver (through ctypes, no torch import) and are never cached.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import hashlib
import importlib.metadata
import importlib.util
import logging
import os
import re
import sys
import sysconfig
from collections.abc import Callable, Iterable
from typing import Any

import msgspec

from . import settings
from .artifacts import Environment
from .atomic import replacing
from .folders import atpack_cache_dir

__all__ = [
    "FIELDS",
    "LocalEnvironment",
    "Mismatch",
    "cuda_devices",
    "environment_from_json",
    "mismatches",
    "shown",
]

log = logging.getLogger(__name__)

FIELDS: tuple[str, ...] = tuple(f for f in Environment.__struct_fields__ if f != "extra")


@dataclasses.dataclass(frozen=True)
class Mismatch:
    """One reason an artifact is not valid here: a field whose recorded value is not this machine's."""

    field: str
    """An `Environment` field, ``extra.<name>`` for a validator atpack cannot check, or ``*`` for
    an environment that records none of the fields its kind depends on."""
    recorded: str | None
    found: str | None

    def __str__(self) -> str:
        if self.field == "*":
            return f"its environment records none of the fields it depends on ({self.recorded})"
        if self.field.startswith("extra."):
            return f"{self.field}: recorded {shown(self.recorded)}, a validator this atpack cannot check"
        return f"{self.field}: recorded {shown(self.recorded)}, found {shown(self.found)}"


def mismatches(recorded: Environment, local: Callable[[str], str | None], fields: Iterable[str]) -> list[Mismatch]:
    """Why an artifact recorded under `recorded` is not valid here, one `Mismatch` per field.
    Unrecorded fields are not checked, but an environment that records none of `fields` vouches
    for nothing. A version is only informative where its package's key (a hash of the build) is
    recorded: the key decides."""
    fields = list(fields)
    if fields and all(getattr(recorded, field) is None for field in fields):
        return [Mismatch("*", ", ".join(fields), None)]
    reasons = []
    for field in fields:
        want = getattr(recorded, field)
        key = _INFORMATIVE.get(field)
        if want is None or (key in fields and getattr(recorded, key) is not None):
            continue
        have = local(field)
        if have != want:
            reasons.append(Mismatch(field, want, have))
    for name in sorted(recorded.extra):
        reasons.append(Mismatch(f"extra.{name}", recorded.extra[name], None))
    return reasons


_INFORMATIVE = {"torch_version": "torch_key", "triton_version": "triton_key"}
"""Version fields and the key that identifies the same build more exactly."""


def shown(value: str | None) -> str:
    """A recorded or found value as a reason shows it: quoted, long ones cut."""
    if value is None:
        return "none"
    return repr(value if len(value) <= 40 else value[:37] + "...")


class _InstallCache(msgspec.Struct):
    stamp: str
    values: dict[str, str] = {}


class LocalEnvironment:
    """The environment of this process, computed field by field on first use."""

    def __init__(self, *, device_index: int | None = None, use_cache: bool = True) -> None:
        self._device_index = device_index
        self._use_cache = use_cache
        self._values: dict[str, str | None] = {}
        self._device: tuple[str, str] | None = None
        self._device_probed = False

    def get(self, field: str) -> str | None:
        """One field's value here (None: not available on this machine)."""
        if field not in self._values:
            self._values[field] = self._compute(field)
        return self._values[field]

    def snapshot(self) -> Environment:
        """Every field, as an `Environment` to record with collected artifacts."""
        return msgspec.convert({f: self.get(f) for f in FIELDS}, Environment)

    # -- fields

    def _compute(self, field: str) -> str | None:
        if field == "torch_version":  # torch.__version__, build label included ("2.11.0+cu130")
            return _torch_version_attr("__version__") or _dist_version("torch")
        if field == "triton_version":
            return _dist_version("triton")
        if field in ("device_name", "compute_capability"):
            device = self._probe_device()
            if not device:
                return None
            return device[0] if field == "device_name" else device[1]
        if field == "cuda_version":
            return _torch_version_attr("cuda")
        if field == "hip_version":
            return _torch_version_attr("hip")
        if field == "python_abi":
            return sys.implementation.cache_tag
        if field == "platform":
            return sysconfig.get_platform()
        if field == "cache_key_tag":
            return _cache_key_tag()
        if field == "torch_key":
            return self._cached("torch", "torch_key", _torch_key)
        if field == "triton_key":
            return self._cached("triton", "triton_key", _triton_key)
        if field == "backend_hash":
            cc = self.get("compute_capability")
            if cc is None:
                return None
            return self._cached("triton", f"backend_hash:{cc}", _backend_hash)
        raise KeyError(f"unknown environment field {field!r}")

    def _probe_device(self) -> tuple[str, str] | None:
        if not self._device_probed:
            index = self._device_index
            if index is None:
                index = settings.local_rank() or 0
            self._device = _cuda_device(index)
            self._device_probed = True
        return self._device

    def _cached(self, package: str, name: str, compute: Callable[[], str | None]) -> str | None:
        """A value derived from an installed package, cached until the installation changes."""
        stamp = _install_stamp(package)
        if stamp is None:
            return None
        path = os.path.join(atpack_cache_dir(), "installs", hashlib.sha256(stamp.encode()).hexdigest()[:32] + ".json")
        cache = _InstallCache(stamp=stamp)
        if self._use_cache:
            with contextlib.suppress(OSError, msgspec.DecodeError):
                with open(path, "rb") as f:
                    found = msgspec.json.decode(f.read(), type=_InstallCache)
                if found.stamp == stamp:
                    cache = found
                    if name in cache.values:
                        return cache.values[name]
        value = compute()
        if value is not None and self._use_cache:
            cache.values[name] = value
            _write_quietly(path, msgspec.json.encode(cache))
        return value


def _dist_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _package_dir(name: str) -> str | None:
    with contextlib.suppress(ImportError, ValueError):
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.origin:
            return os.path.dirname(spec.origin)
    return None


def _torch_version_attr(attr: str) -> str | None:
    """`torch.version.cuda` / `.hip` / `.__version__`, read from torch/version.py without importing torch."""
    if "torch.version" in sys.modules:
        value = getattr(sys.modules["torch.version"], attr, None)
        return str(value) if value is not None else None
    folder = _package_dir("torch")
    if folder is None:
        return None
    try:
        with open(os.path.join(folder, "version.py"), encoding="utf-8") as f:
            text = f.read()
    except OSError:
        return None
    match = re.search(rf"^{attr}\s*(?::[^=]*)?=\s*'([^']*)'", text, re.MULTILINE)
    return match.group(1) if match else None


def _cache_key_tag() -> str:
    config = sys.modules.get("torch.compiler.config")
    if config is not None:
        return str(config.cache_key_tag)
    return os.environ.get("TORCH_COMPILE_CACHE_KEY_TAG", "")


def _install_stamp(package: str) -> str | None:
    """Identifies one installation of `package`: its path, version and the stat of its
    top-level files and metadata. Changes when the package is reinstalled or upgraded."""
    folder = _package_dir(package)
    if folder is None:
        return None
    parts = [sys.executable, folder, _dist_version(package) or "?"]
    with contextlib.suppress(OSError):
        for entry in sorted(os.scandir(folder), key=lambda e: e.name):
            st = entry.stat(follow_symlinks=False)
            parts.append(f"{entry.name}:{st.st_size}:{st.st_mtime_ns}")
    with contextlib.suppress(importlib.metadata.PackageNotFoundError, OSError):
        dist = importlib.metadata.distribution(package)
        record = dist.locate_file(f"{dist.metadata['Name'].replace('-', '_')}-{dist.version}.dist-info/RECORD")
        st = os.stat(str(record))
        parts.append(f"RECORD:{st.st_size}:{st.st_mtime_ns}")
    return "\n".join(parts)


def _torch_key() -> str | None:
    try:
        from torch._inductor.codecache import torch_key
    except ImportError:
        return None
    log.info("computing torch_key() (hashes torch's sources; cached afterwards)")
    return str(torch_key().hex())


def _triton_key() -> str | None:
    try:
        from triton.runtime.cache import triton_key
    except ImportError:
        try:
            from triton.compiler.compiler import triton_key
        except ImportError:
            return None
    return str(triton_key())


def _backend_hash() -> str | None:
    try:
        from triton.compiler.compiler import make_backend
        from triton.runtime import driver

        return str(make_backend(driver.active.get_current_target()).hash())
    except Exception as e:
        log.debug("no triton backend hash: %s", e)
        return None


def cuda_devices() -> list[int]:
    """The indices of the CUDA devices this process sees (as torch numbers them: after
    ``CUDA_VISIBLE_DEVICES``), from the driver; empty without a driver or a device."""
    torch_mod: Any = sys.modules.get("torch")
    if torch_mod is not None and torch_mod.cuda.is_initialized():
        return list(range(torch_mod.cuda.device_count()))
    lib = _libcuda()
    count = ctypes.c_int()
    if lib is None or lib.cuInit(0) != 0 or lib.cuDeviceGetCount(ctypes.byref(count)) != 0:
        return []
    return list(range(count.value))


def _libcuda() -> Any:
    for name in ("libcuda.so.1", "libcuda.so", "nvcuda.dll"):
        try:
            return ctypes.CDLL(name)
        except OSError:
            continue
    return None


def _cuda_device(index: int) -> tuple[str, str] | None:
    """(name, "major.minor") of CUDA device `index` from the driver API, or None."""
    torch_mod: Any = sys.modules.get("torch")
    if torch_mod is not None and torch_mod.cuda.is_initialized():
        props = torch_mod.cuda.get_device_properties(index)
        return str(props.name), f"{props.major}.{props.minor}"
    lib = _libcuda()
    if lib is None:
        return None
    count, dev, major, minor = ctypes.c_int(), ctypes.c_int(), ctypes.c_int(), ctypes.c_int()
    buf = ctypes.create_string_buffer(256)
    if lib.cuInit(0) != 0 or lib.cuDeviceGetCount(ctypes.byref(count)) != 0 or count.value == 0:
        return None
    index = min(index, count.value - 1)
    if (
        lib.cuDeviceGet(ctypes.byref(dev), index) != 0
        or lib.cuDeviceGetName(buf, 256, dev) != 0
        or lib.cuDeviceGetAttribute(ctypes.byref(major), 75, dev) != 0
        or lib.cuDeviceGetAttribute(ctypes.byref(minor), 76, dev) != 0
    ):
        return None
    return buf.value.decode(errors="replace"), f"{major.value}.{minor.value}"


def _write_quietly(path: str, data: bytes) -> None:
    """Best effort: a read-only home must not break populate."""
    try:
        with replacing(path, durable=False) as f:
            f.write(data)
    except OSError as e:
        log.debug("cannot cache %s: %s", path, e)


def environment_from_json(data: bytes | str) -> Environment:
    """An `Environment` from its JSON form (e.g. a file written by ``atpack env --json``)."""
    return msgspec.json.decode(data, type=Environment)
