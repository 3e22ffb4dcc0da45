"""The running machine's environment, and whether an artifact is valid on it.

Fields are computed lazily, only when an artifact depends on them, and without importing torch
or Triton: versions from their package metadata and ``torch/version.py``, device facts from NVML
(`atpack.devices`). The build keys (`BUILD_KEYS`) are the exception: computing them imports
torch's or Triton's compiler, so populate leaves them to torch's and Triton's own lookups and
only an exact check computes them, cached per installation under the atpack cache folder
(validated by cheap `stat`s of the package's files and metadata).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import importlib.util
import logging
import os
import re
import sys
import sysconfig
from collections.abc import Callable, Iterable

import msgspec

from . import seam, settings
from .artifacts import Environment
from .atomic import replacing
from .folders import atpack_cache_dir

__all__ = [
    "BUILD_KEYS",
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


BUILD_KEYS = ("torch_key", "triton_key", "backend_hash")
"""The fields that identify a build exactly (a hash of torch's or Triton's sources, Triton's
backend for this GPU) and cost here what populate must not: importing torch's compiler or
Triton's, hashing their files, building Triton's host module. Torch and Triton put them in the
keys they look cache files up by (spec/FORMAT.md, §8), so an artifact of another build is never
read as this machine's: populate leaves them to that lookup, and only an exact check (a dry run)
computes them."""


@dataclasses.dataclass(frozen=True)
class Mismatch:
    """One reason an artifact is not valid here: a field whose recorded value is not this
    machine's, or that is not recorded though the artifact's kind needs it."""

    field: str
    """An `Environment` field, or ``extra.<name>`` for a validator atpack cannot check."""
    recorded: str | None
    found: str | None

    def __str__(self) -> str:
        if self.field.startswith("extra."):
            return f"{self.field}: recorded {shown(self.recorded)}, a validator this atpack cannot check"
        if self.recorded is None:
            return f"{self.field}: not recorded, and this kind is valid only where it is"
        return f"{self.field}: recorded {shown(self.recorded)}, found {shown(self.found)}"


def mismatches(
    recorded: Environment,
    local: Callable[[str], str | None],
    fields: Iterable[str],
    *,
    required: Iterable[str] = (),
    exact: bool = False,
) -> list[Mismatch]:
    """Why an artifact recorded under `recorded` is not valid here, one `Mismatch` per field of
    `fields`: a recorded value that differs, or one of `required` not recorded. The build keys
    (`BUILD_KEYS`) are compared only where `exact`."""
    required = set(required)
    reasons = []
    for field in fields:
        if field in BUILD_KEYS and not exact:
            continue
        want = getattr(recorded, field)
        if want is None:
            if field in required:
                reasons.append(Mismatch(field, None, None))
            continue
        have = local(field)
        if have != want:
            reasons.append(Mismatch(field, want, have))
    for name in sorted(recorded.extra):
        reasons.append(Mismatch(f"extra.{name}", recorded.extra[name], None))
    return reasons


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

    def snapshot(self, *, build_keys: bool = True) -> Environment:
        """Every field, as an `Environment` to record with collected artifacts. Without
        `build_keys`, a build key (`BUILD_KEYS`) is recorded only where it costs nothing here:
        known to atpack's cache of this installation, or torch's or Triton's compiler already
        imported in this process (a capture in a training process). A pack without them is as
        safe (the keys only explain, in a dry run: spec/FORMAT.md, §9), and `atpack pack` costs
        what reading and compressing the files costs."""
        fields = [f for f in FIELDS if build_keys or f not in BUILD_KEYS or self._costs_nothing(f)]
        return msgspec.convert({f: self.get(f) for f in fields}, Environment)

    def _costs_nothing(self, field: str) -> bool:
        if field in self._values:
            return True
        package = "torch" if field == "torch_key" else "triton"
        if seam.compiler_imported(package):
            return True
        return self._cached_only(package, field) is not None

    # -- fields

    def _compute(self, field: str) -> str | None:
        if field == "torch_version":  # torch.__version__, build label included ("2.11.0+cu130")
            return _module_attr("torch.version", "__version__") or _dist_version("torch")
        if field == "triton_version":  # triton.__version__, as its kernels' metadata states it
            return _module_attr("triton", "__version__") or _dist_version("triton")
        if field in ("device_name", "compute_capability"):
            device = self._probe_device()
            if not device:
                return None
            return device[0] if field == "device_name" else device[1]
        if field == "cuda_version":
            return _module_attr("torch.version", "cuda")
        if field == "hip_version":
            return _module_attr("torch.version", "hip")
        if field == "python_abi":
            return sys.implementation.cache_tag
        if field == "platform":
            return sysconfig.get_platform()
        if field == "cache_key_tag":
            return _cache_key_tag()
        if field == "torch_key":
            return self._cached("torch", "torch_key", seam.torch_key)
        if field == "triton_key":
            return self._cached("triton", "triton_key", seam.triton_key)
        if field == "backend_hash":
            cc = self.get("compute_capability")
            if cc is None:
                return None
            return self._cached("triton", f"backend_hash:{cc}", lambda: seam.backend_hash(cc))
        raise KeyError(f"unknown environment field {field!r}")

    def _probe_device(self) -> tuple[str, str] | None:
        if not self._device_probed:
            from . import devices

            index = self._device_index
            if index is None:
                index = settings.local_rank() or 0
            found = devices.device(index)
            self._device = (found.name, found.compute_capability) if found else None
            self._device_probed = True
        return self._device

    def _cached(self, package: str, name: str, compute: Callable[[], str | None]) -> str | None:
        """A value derived from an installed package, cached until the installation changes."""
        path, cache = self._install_cache(package)
        if cache is None:
            return None
        if name in cache.values:
            return cache.values[name]
        value = compute()
        if value is not None and self._use_cache:
            cache.values[name] = value
            _write_quietly(path, msgspec.json.encode(cache))
        return value

    def _cached_only(self, package: str, name: str) -> str | None:
        """A build key of atpack's cache of this installation, if there (never computed)."""
        if name == "backend_hash":
            name = f"backend_hash:{self.get('compute_capability')}"
        _, cache = self._install_cache(package)
        return cache.values.get(name) if cache is not None else None

    def _install_cache(self, package: str) -> tuple[str, _InstallCache | None]:
        """Where atpack caches what it derived from this installation of `package`, and what it holds."""
        stamp = _install_stamp(package)
        if stamp is None:
            return "", None
        path = os.path.join(atpack_cache_dir(), "installs", hashlib.sha256(stamp.encode()).hexdigest()[:32] + ".json")
        if self._use_cache:
            with contextlib.suppress(OSError, msgspec.DecodeError):
                with open(path, "rb") as f:
                    found = msgspec.json.decode(f.read(), type=_InstallCache)
                if found.stamp == stamp:
                    return path, found
        return path, _InstallCache(stamp=stamp)


def _dist_version(name: str) -> str | None:
    import importlib.metadata  # where it is needed only: importing it costs what a populate does

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


def _module_attr(module: str, attr: str) -> str | None:
    """A string constant of a module (``torch.version.cuda``, ``triton.__version__``), read from
    its source where it is not imported: importing torch or triton takes seconds."""
    if module in sys.modules:
        value = getattr(sys.modules[module], attr, None)
        return str(value) if value is not None else None
    package, _, name = module.partition(".")
    folder = _package_dir(package)
    if folder is None:
        return None
    try:
        with open(os.path.join(folder, f"{name or '__init__'}.py"), encoding="utf-8") as f:
            text = f.read(1 << 20)
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
    import importlib.metadata

    with contextlib.suppress(importlib.metadata.PackageNotFoundError, OSError):
        dist = importlib.metadata.distribution(package)
        record = dist.locate_file(f"{dist.metadata['Name'].replace('-', '_')}-{dist.version}.dist-info/RECORD")
        st = os.stat(str(record))
        parts.append(f"RECORD:{st.st_size}:{st.st_mtime_ns}")
    return "\n".join(parts)


def cuda_devices() -> list[int]:
    """The indices of the CUDA devices a process started here sees (`atpack.devices`)."""
    from . import devices

    return list(range(devices.count()))


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
