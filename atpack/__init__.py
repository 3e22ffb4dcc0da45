"""atpack: autotune results as typed, content-addressed packs.

Collect what torch and triton tuned into one pack on any fsspec URL, and populate a fresh
machine's caches from it so that its first compiled step launches tuned kernels.

``import atpack`` imports neither torch nor triton, nor the rest of atpack: each name is
imported on first use (torch loads `atpack.autoload` at every ``import torch``, which must cost
nothing).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .errors import (
    AtpackError,
    BlobNotFoundError,
    CacheFileError,
    EnvironmentMismatchError,
    FileChangedMeanwhileError,
    FileCreatedMeanwhileError,
    FormatError,
    IntegrityError,
    IsAFolderError,
    LimitError,
    MergeConflictError,
    NotFoundError,
    SettingError,
    SignatureError,
    StorageError,
    UnsafeContentError,
)

if TYPE_CHECKING:
    from .api import load_cache_artifacts, save_cache_artifacts, to_megacache
    from .artifacts import (
        Artifact,
        Environment,
        InductorBestConfig,
        InductorGemmTimings,
        InductorKernelPerf,
        InductorLocalValues,
        Manifest,
        TritonAutotune,
        TritonKernel,
        UnknownArtifact,
    )
    from .merging import diff, merge
    from .pack import Limits, Pack, PackInfo, PackWriter, create
    from .pack import open_pack as open
    from .populate import PopulateReport
    from .recording import Capture, capture
    from .report import write_report
    from .seam import uninstall
    from .signing import generate_key, sign, verify_signature
    from .storage import Retry
    from .store import Store

__version__ = "0.1.0"
"""The version of atpack: the one place it is written (the package metadata reads it from here)."""

_LAZY = {
    # save and load: the one way each
    "save_cache_artifacts": ".api",
    "load_cache_artifacts": ".api",
    "capture": ".recording",
    "Capture": ".recording",
    "PopulateReport": ".populate",
    # packs
    "open": ".pack",
    "create": ".pack",
    "Pack": ".pack",
    "PackInfo": ".pack",
    "PackWriter": ".pack",
    "Limits": ".pack",
    "merge": ".merging",
    "diff": ".merging",
    "to_megacache": ".api",
    # stores, signatures, reports
    "Store": ".store",
    "Retry": ".storage",
    "sign": ".signing",
    "verify_signature": ".signing",
    "generate_key": ".signing",
    "write_report": ".report",
    # torch's functions back, as they were
    "uninstall": ".seam",
    # the data model
    "Artifact": ".artifacts",
    "Environment": ".artifacts",
    "InductorBestConfig": ".artifacts",
    "InductorGemmTimings": ".artifacts",
    "InductorKernelPerf": ".artifacts",
    "InductorLocalValues": ".artifacts",
    "Manifest": ".artifacts",
    "TritonAutotune": ".artifacts",
    "TritonKernel": ".artifacts",
    "UnknownArtifact": ".artifacts",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'atpack' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), "open_pack" if name == "open" else name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = [
    "save_cache_artifacts",
    "load_cache_artifacts",
    "capture",
    "Capture",
    "PopulateReport",
    "open",
    "create",
    "Pack",
    "PackInfo",
    "PackWriter",
    "Limits",
    "merge",
    "diff",
    "to_megacache",
    "Store",
    "Retry",
    "sign",
    "verify_signature",
    "generate_key",
    "write_report",
    "uninstall",
    "Artifact",
    "Environment",
    "InductorBestConfig",
    "InductorGemmTimings",
    "InductorKernelPerf",
    "InductorLocalValues",
    "Manifest",
    "TritonAutotune",
    "TritonKernel",
    "UnknownArtifact",
    "AtpackError",
    "BlobNotFoundError",
    "CacheFileError",
    "EnvironmentMismatchError",
    "FileChangedMeanwhileError",
    "FileCreatedMeanwhileError",
    "FormatError",
    "IntegrityError",
    "IsAFolderError",
    "LimitError",
    "MergeConflictError",
    "NotFoundError",
    "SettingError",
    "SignatureError",
    "StorageError",
    "UnsafeContentError",
    "__version__",
]
