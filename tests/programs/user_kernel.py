"""A user kernel tuned with `@triton.autotune` and Triton's disk cache; and how the programs that
run it (or compile a kernel) hear whether Triton's cache answered."""

from typing import Any

import triton
import triton.language as tl

CONFIGS = [
    triton.Config({"BLOCK": block}, num_warps=warps, num_stages=stages)
    for block in (128, 256, 512, 1024)
    for warps in (2, 4)
    for stages in (2, 3)
]


@triton.autotune(configs=CONFIGS, key=["n", "mode"], cache_results=True)
@triton.jit
def scale_add(x_ptr, y_ptr, out_ptr, n, mode, BLOCK: tl.constexpr):
    offsets = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offsets < n
    x = tl.load(x_ptr + offsets, mask=mask)
    y = tl.load(y_ptr + offsets, mask=mask)
    tl.store(out_ptr + offsets, x * mode + y, mask=mask)


def listen(slot: Any, hits: list[bool]) -> None:
    """Append each event's ``cache_hit`` to `hits` from Triton's listener `slot`
    (``triton.knobs.compilation``, ``.autotuning``), calling whoever listened before (atpack's)."""
    before = slot.listener

    def listener(**event: Any) -> None:
        hits.append(event["cache_hit"])
        if before is not None:
            before(**event)

    slot.listener = listener


def autotune_hits(hits: list[bool]) -> None:
    """Append whether each ``@triton.autotune`` tuning was answered by the disk cache: from
    Triton's autotune listener (3.8+), else from its disk cache lookup (3.4 to 3.7)."""
    if hasattr(triton.knobs.autotuning, "listener"):
        listen(triton.knobs.autotuning, hits)
        return
    from triton.runtime.autotuner import Autotuner

    check_disk_cache = Autotuner.check_disk_cache

    def checked(self: Any, *args: Any, **kwargs: Any) -> Any:
        hit = check_disk_cache(self, *args, **kwargs)
        hits.append(hit)
        return hit

    Autotuner.check_disk_cache = checked
