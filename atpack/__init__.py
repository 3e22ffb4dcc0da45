"""atpack: autotune results as typed, content-addressed packs.

Collect what torch and triton tuned into one pack on any fsspec URL, and populate a fresh
machine's caches from it so that its first compiled step launches tuned kernels.

``import atpack`` does not import torch or triton; only the adapters do, when called.
"""

from __future__ import annotations

from .api import load, load_cache_artifacts, save_cache_artifacts, to_megacache
from .artifacts import (
    Artifact,
    Environment,
    InductorBestConfig,
    InductorGemmTimings,
    InductorKernelPerf,
    Manifest,
    TritonAutotune,
    TritonKernel,
    UnknownArtifact,
)
from .capture import Capture, capture
from .collect import pack_caches
from .errors import (
    AtpackError,
    CacheFileError,
    FormatError,
    IntegrityError,
    LimitError,
    StorageError,
    UnsafeContentError,
)
from .merge import diff, merge
from .pack import Limits, Pack, PackInfo, PackWriter, create
from .pack import open_pack as open
from .populate import PopulateReport, populate

__version__ = "0.1.0"

__all__ = [
    "Artifact",
    "Capture",
    "PopulateReport",
    "capture",
    "diff",
    "merge",
    "load",
    "load_cache_artifacts",
    "pack_caches",
    "populate",
    "save_cache_artifacts",
    "to_megacache",
    "AtpackError",
    "CacheFileError",
    "Environment",
    "FormatError",
    "InductorBestConfig",
    "InductorGemmTimings",
    "InductorKernelPerf",
    "IntegrityError",
    "LimitError",
    "Limits",
    "Manifest",
    "Pack",
    "PackInfo",
    "PackWriter",
    "StorageError",
    "TritonAutotune",
    "TritonKernel",
    "UnknownArtifact",
    "UnsafeContentError",
    "__version__",
    "create",
    "open",
]
