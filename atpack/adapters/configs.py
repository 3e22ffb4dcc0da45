"""The configs torch's Inductor and Triton can emit: names, types, ranges.

torch hands a cached config to the kernel as it is (Inductor rebuilds a coordinate-descent result
from whatever names and values its ``.best_config`` holds; Triton does the same with an
``.autotune.json``), so a tuning result is data only while it stays among the configs torch or
Triton could have tuned. Populate refuses any other, trusted or not: the worst a data artifact can
then do is pick a slower config among those.

Inductor's names are its own (block sizes, warps, stages and a few backend options); a user's
``@triton.autotune`` kernel names its own meta-parameters, so there the launch options are held to
Triton's ranges, and no name may be one of Triton's compile options: Triton's JIT takes every
keyword that is not a parameter of the kernel as an option of its compiler (``ptx_options`` reach
ptxas's command line, ``extern_libs`` name libraries to link, ``ir_override`` a file of IR), so a
config that names one would make the pack choose how the kernel is built, not only how it runs.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

__all__ = ["inductor_config_problem", "triton_config_problem"]

MAX_WARPS = 32
"""1,024 threads a block: the most any GPU Triton targets runs (a 64-wide wavefront: 16)."""
MAX_STAGES = 8
"""Inductor's own configs pipeline at most 6 stages and coordinate descent moves them by one;
past 8 no Hopper or Blackwell kernel keeps its tiles in shared memory."""
MAX_CTAS = 16
"""A thread block cluster holds at most 16 blocks (Hopper, Blackwell)."""
MAX_REGISTERS = 255
"""Registers a thread may use on every NVIDIA GPU since Kepler (``maxnreg``)."""

# Inductor's TRITON_MAX_BLOCK (runtime hints; X: ROCm's 8,192; R0_/R1_: multi-kernel's x16);
# R: the reduction block before torch 2.6 named it R0_; _N: a combo kernel's sub-kernel
_BLOCK = re.compile(r"(X|Y|Z|R0_|R1_|R)BLOCK(?:_[0-9]{1,2})?")
_BLOCK_MAX = {"X": 8192, "Y": 1024, "Z": 1024, "R0_": 65536, "R1_": 32768, "R": 65536}
# coordinate descent's other fields (matmul tiles, split reductions, a mix-order reduction's
# pipelining) and ROCm's options: name -> (the values allowed, a power of two only)
_OTHER: dict[str, tuple[range, bool]] = {
    "BLOCK_M": (range(1, 1025), True),
    "BLOCK_N": (range(1, 1025), True),
    "BLOCK_K": (range(1, 1025), True),
    "RSPLIT": (range(1, 65), True),  # TRITON_MAX_RSPLIT
    "NUM_STAGES": (range(1, MAX_STAGES + 1), False),
    "waves_per_eu": (range(0, 9), False),
    "matrix_instr_nonkdim": (range(0, 33, 16), False),
    "kpack": (range(1, 3), False),
}


def inductor_config_problem(kwargs: Iterable[tuple[str, Any]], num_warps: Any, num_stages: Any) -> str:
    """Why Inductor never emits this config ("" where it could): a name it does not tune, a
    value that is not an integer in its range, a block size that is not a power of two."""
    for name, value in kwargs:
        block = _BLOCK.fullmatch(name)
        if block:
            problem = _integer_problem(name, value, range(1, _BLOCK_MAX[block.group(1)] + 1), power_of_two=True)
        elif name in _OTHER:
            problem = _integer_problem(name, value, *_OTHER[name])
        else:
            problem = f"{_shown(name)}, which Inductor never tunes (it would reach the kernel as an argument)"
        if problem:
            return problem
    return _launch_problem(num_warps, num_stages)


# Every field of the compile options of Triton's backends (CUDAOptions, HIPOptions) in Triton 3.4
# to 3.9, and the keywords of JITFunction.run itself; tests/test_trust_configs.py holds the list to
# the installed Triton's. The AMD backend's three tuning options are allowed, in _OTHER's ranges.
TRITON_OPTIONS = frozenset(
    (
        "allow_flush_denorm", "allowed_dot_input_precisions", "arch", "backend_name", "cluster_dims", "clc",
        "debug", "default_dot_input_precision", "deprecated_fp8_dot_operand_dtypes", "deprecated_fp8_dtypes",
        "enable_fp_fusion", "enable_reflect_ftz", "extern_libs", "fpsan_homomorphic_casts", "instrumentation_mode",
        "ir_override", "kpack", "launch_cooperative_grid", "launch_pdl", "llvm_fn_attrs", "matrix_instr_nonkdim",
        "max_num_imprecise_acc_default", "maxnreg", "min_shared_mem", "num_buffers_warp_spec", "num_consumer_groups",
        "num_ctas", "num_stages", "num_warps", "ptx_options", "ptx_version", "sanitize_overflow", "sched4reg",
        "schedule_hint", "supported_fp8_dtypes", "warp_size", "waves_per_eu", "wgp_cu_mode",
        "grid", "warmup",
    )
)  # fmt: skip
_TUNED_OPTIONS = ("waves_per_eu", "matrix_instr_nonkdim", "kpack")


def triton_config_problem(
    num_warps: Any, num_stages: Any, num_ctas: Any = 1, maxnreg: Any = None, kwargs: Iterable[tuple[str, Any]] = ()
) -> str:
    """Why Triton never runs a config with these launch options and meta-parameters ("" where
    it could). A user's meta-parameters are the user's own names, but none of Triton's compile
    options; the pack's schema holds their values to JSON scalars."""
    for name, value in kwargs:
        if name in _TUNED_OPTIONS:
            if problem := _integer_problem(name, value, *_OTHER[name]):
                return problem
        elif name in TRITON_OPTIONS:
            return f"{_shown(name)}, an option of Triton's compiler, not a parameter of the kernel"
    return (
        _launch_problem(num_warps, num_stages)
        or _integer_problem("num_ctas", num_ctas, range(1, MAX_CTAS + 1), power_of_two=True)
        or ("" if maxnreg is None else _integer_problem("maxnreg", maxnreg, range(1, MAX_REGISTERS + 1)))
    )


def _launch_problem(num_warps: Any, num_stages: Any) -> str:
    return _integer_problem("num_warps", num_warps, range(1, MAX_WARPS + 1), power_of_two=True) or _integer_problem(
        "num_stages", num_stages, range(0, MAX_STAGES + 1)
    )


def _integer_problem(name: str, value: Any, allowed: range, power_of_two: bool = False) -> str:
    if type(value) is not int:
        return f"{_shown(name)} is {_shown(value)}, not an integer"
    if value not in allowed:
        return f"{_shown(name)} is {value}, outside {allowed.start}..{allowed[-1]}"
    if power_of_two and value & (value - 1):
        return f"{_shown(name)} is {value}, not a power of two"
    return ""


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
