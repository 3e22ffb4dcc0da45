"""The GPUs of this machine, as CUDA numbers them, without initialising CUDA.

Facts come from NVML (`libnvidia-ml.so.1`, the library `nvidia-smi` uses), which creates no CUDA
context: a process that populates caches and then forks CUDA workers stays safe, and no driver
initialisation (hundreds of milliseconds) is paid. CUDA's numbering is applied by hand, as torch
does it (`torch.cuda._get_nvml_device_index`): ``CUDA_VISIBLE_DEVICES`` lists NVML indices or
UUID prefixes, in order; NVML enumerates by PCI bus, which is CUDA's order on a node of one GPU
model, or with ``CUDA_DEVICE_ORDER=PCI_BUS_ID``. Where that does not hold (a node of mixed GPUs
in CUDA's default order) or a device is a MIG slice, the numbering is not guessed: the device is
asked of CUDA's driver API in a child process, which leaves this one untouched.

Where torch has already initialised CUDA in this process, torch is asked.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import os
import sys
from typing import Any

__all__ = ["Device", "count", "device"]

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Device:
    name: str
    """As CUDA names it (``NVIDIA H100 80GB HBM3``): what torch puts in its cache keys."""
    compute_capability: str
    """``major.minor``, e.g. ``9.0``."""


def count() -> int:
    """How many CUDA devices a process started here sees (0 without a driver or a GPU)."""
    torch_mod: Any = sys.modules.get("torch")
    if torch_mod is not None and torch_mod.cuda.is_initialized():
        return int(torch_mod.cuda.device_count())
    return len(_visible()[0])


def device(index: int) -> Device | None:
    """CUDA device `index` of a process started here, or None where there is none."""
    torch_mod: Any = sys.modules.get("torch")
    if torch_mod is not None and torch_mod.cuda.is_initialized():
        props = torch_mod.cuda.get_device_properties(index)
        return Device(str(props.name), f"{props.major}.{props.minor}")
    visible, certain = _visible()
    if not 0 <= index < len(visible):
        return None
    return visible[index] if certain else _from_driver(index)


@functools.lru_cache(maxsize=1)
def _visible() -> tuple[tuple[Device, ...], bool]:
    """The devices CUDA would number 0, 1, ..., by NVML's order and ``CUDA_VISIBLE_DEVICES``, and
    whether that order is certainly CUDA's: every GPU of the node one model (CUDA orders fastest
    first, which cannot reorder equals) or ``CUDA_DEVICE_ORDER=PCI_BUS_ID``, and no MIG slice."""
    nvml = _Nvml.open()
    if nvml is None:
        return (), True
    try:
        every = nvml.devices()
    finally:
        nvml.close()
    selected = tuple(d for d, _ in _select(every, os.environ.get("CUDA_VISIBLE_DEVICES")))
    one_model = len({d for d, _ in every}) <= 1
    certain = (one_model or os.environ.get("CUDA_DEVICE_ORDER") == "PCI_BUS_ID") and _MIG not in selected
    return selected, certain


_MIG = Device("MIG slice", "")


def _select(every: list[tuple[Device, str]], setting: str | None) -> list[tuple[Device, str]]:
    """The devices (with their UUIDs) ``CUDA_VISIBLE_DEVICES`` leaves, in its order. As CUDA
    reads it: an entry it cannot resolve ends the list, and a repeated device empties it."""
    if setting is None:
        return every
    chosen: list[tuple[Device, str]] = []
    for entry in setting.split(","):
        entry = entry.strip()
        if entry.isdigit():
            found = [every[int(entry)]] if int(entry) < len(every) else []
        elif entry.startswith("GPU-"):
            found = [d for d in every if d[1].startswith(entry)]
        else:  # a MIG slice is known to CUDA only; a negative or unreadable entry ends CUDA's list
            found = [(_MIG, entry)] if entry.startswith("MIG-") else []
        if len(found) != 1:
            break
        if found[0] in chosen:
            return []
        chosen.append(found[0])
    return chosen


_ASK_DRIVER = """
import ctypes, json, sys
lib = ctypes.CDLL("libcuda.so.1")
dev, major, minor, name = ctypes.c_int(), ctypes.c_int(), ctypes.c_int(), ctypes.create_string_buffer(256)
ok = (lib.cuInit(0) == 0 and lib.cuDeviceGet(ctypes.byref(dev), int(sys.argv[1])) == 0
      and lib.cuDeviceGetName(name, 256, dev) == 0
      and lib.cuDeviceGetAttribute(ctypes.byref(major), 75, dev) == 0
      and lib.cuDeviceGetAttribute(ctypes.byref(minor), 76, dev) == 0)
print(json.dumps([name.value.decode(errors="replace"), f"{major.value}.{minor.value}"] if ok else None))
"""


def _from_driver(index: int) -> Device | None:
    """Device `index` as CUDA's driver API numbers it, asked in a child process."""
    import subprocess

    try:
        out = subprocess.run(
            [sys.executable, "-c", _ASK_DRIVER, str(index)], capture_output=True, text=True, timeout=60, check=True
        ).stdout
        found = json.loads(out)
    except (OSError, subprocess.SubprocessError, ValueError) as e:
        log.debug("no answer from CUDA's driver about device %d: %s", index, e)
        return None
    return Device(found[0], found[1]) if found else None


class _Nvml:
    """The few NVML calls atpack needs."""

    def __init__(self, lib: Any) -> None:
        self._lib = lib

    @classmethod
    def open(cls) -> _Nvml | None:
        import ctypes

        try:
            lib = ctypes.CDLL("libnvidia-ml.so.1")
        except OSError:
            return None
        if lib.nvmlInit_v2() != 0:
            return None
        return cls(lib)

    def close(self) -> None:
        self._lib.nvmlShutdown()

    def devices(self) -> list[tuple[Device, str]]:
        """Every device with its UUID, in NVML's order (the first it cannot read ends the list)."""
        import ctypes

        lib, n = self._lib, ctypes.c_uint()
        if lib.nvmlDeviceGetCount_v2(ctypes.byref(n)) != 0:
            return []
        found = []
        for i in range(n.value):
            handle = ctypes.c_void_p()
            name, uuid = ctypes.create_string_buffer(96), ctypes.create_string_buffer(96)
            major, minor = ctypes.c_int(), ctypes.c_int()
            if (
                lib.nvmlDeviceGetHandleByIndex_v2(i, ctypes.byref(handle)) != 0
                or lib.nvmlDeviceGetName(handle, name, 96) != 0
                or lib.nvmlDeviceGetUUID(handle, uuid, 96) != 0
                or lib.nvmlDeviceGetCudaComputeCapability(handle, ctypes.byref(major), ctypes.byref(minor)) != 0
            ):
                break
            device = Device(name.value.decode(errors="replace"), f"{major.value}.{minor.value}")
            found.append((device, uuid.value.decode(errors="replace")))
        return found
