"""A stand-in CUDA driver, so that Triton's and Inductor's host-side code (cache lookups,
autotuner bookkeeping) runs on a machine without a GPU. Nothing is launched."""

from __future__ import annotations

import triton
from triton.backends.compiler import GPUTarget
from triton.backends.nvidia.driver import CudaDriver


class StandInDriver(CudaDriver):  # type: ignore[misc]
    def __init__(self) -> None:  # no CUDA utilities to build or load
        pass

    @staticmethod
    def is_active() -> bool:
        return True

    def get_current_target(self) -> GPUTarget:
        return GPUTarget("cuda", 90, 32)

    def get_current_device(self) -> int:
        return 0

    def get_current_stream(self, device: int | None = None) -> int:
        return 0


def install() -> None:
    CudaDriver.is_active = staticmethod(lambda: True)
    triton.runtime.driver.set_active(StandInDriver())
