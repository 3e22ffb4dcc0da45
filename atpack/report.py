"""A picture of a pack: one self-contained HTML page (no network, no external files).

It shows the environments a pack covers, the kernels it carries, the config chosen for each
tuned kernel with the spread of its candidates' timings, and what tuning cost when the pack was
made, which a warm start from the pack does not pay again.
"""

from __future__ import annotations

import html
import importlib.resources
import json
import os
from typing import Any

from .artifacts import (
    Environment,
    InductorBestConfig,
    InductorGemmTimings,
    InductorKernelPerf,
    MegacacheEntry,
    TritonAutotune,
    TritonHostModule,
    TritonKernel,
)
from .pack import Pack, open_pack
from .store import publish

__all__ = ["render", "write_report"]


def write_report(
    url: str | os.PathLike[str], out: str | os.PathLike[str], *, storage_options: dict[str, Any] | None = None
) -> str:
    """Write the HTML report of the pack at `url` to `out` (published atomically)."""
    with open_pack(url, storage_options=storage_options) as pack:
        page = render(pack)
    with publish(out, storage_options) as f:
        f.write(page.encode())
    return os.fspath(out)


def render(pack: Pack) -> str:
    """The report of `pack` as an HTML page."""
    payload = json.dumps(_data(pack)).replace("</", "<\\/")
    title = html.escape(f"atpack report: {os.path.basename(pack.name)}")
    page = importlib.resources.files("atpack").joinpath("report.html").read_text(encoding="utf-8")
    return page.replace("{{TITLE}}", title).replace("{{DATA}}", payload)


def _data(pack: Pack) -> dict[str, Any]:
    kinds: dict[str, int] = {}
    gemms: list[dict[str, Any]] = []
    autotunes: list[dict[str, Any]] = []
    configs: list[dict[str, Any]] = []
    kernels: list[dict[str, Any]] = []
    tuning_ms = 0.0
    candidates = 0
    for a in pack.artifacts:
        kinds[a.kind] = kinds.get(a.kind, 0) + 1
        if isinstance(a, InductorGemmTimings):
            for e in a.entries:
                candidates += len(e.timings)
                fastest = min(e.timings, key=lambda t: float("inf") if t.ms is None else t.ms)
                times = [t.ms for t in e.timings if t.ms is not None]
                gemms.append({"op": e.op, "inputs": e.inputs, "best": fastest.choice, "times": times})
        elif isinstance(a, TritonAutotune):
            candidates += len(a.configs_timings)
            chosen = a.best()
            label = " ".join(f"{k}={v}" for k, v in chosen.kwargs) + f" warps={chosen.num_warps}" if chosen else "-"
            medians = [ct.timings[0] for ct in a.configs_timings if ct.timings and ct.timings[0] is not None]
            autotunes.append({"fn": a.fn_name, "key": list(a.tuning_key), "times": medians, "best": label})
        elif isinstance(a, InductorBestConfig):
            if isinstance(a.time_taken_ms, (int, float)):
                tuning_ms += a.time_taken_ms
            configs.append({"path": a.path, "config": a.summary().split(" ", 1)[-1]})
        elif isinstance(a, TritonKernel):
            size = sum(f.size for f in a.files)
            kernels.append({"name": a.name, "key": a.cache_key, "files": len(a.files), "bytes": size})
        elif isinstance(a, InductorKernelPerf):
            candidates += 1
    return {
        "name": pack.name,
        "size": pack.size,
        "digest": pack.digest,
        "annotations": pack.manifest.annotations,
        "environments": [_environment(d, e) for d, e in pack.manifest.environments.items()],
        "kinds": kinds,
        "gemms": gemms,
        "autotunes": autotunes,
        "configs": configs,
        "kernels": kernels,
        "trusted_only": sum(
            1 for a in pack.artifacts if isinstance(a, (MegacacheEntry, TritonHostModule)) and a.runs_code
        ),
        "savings": {"tuning_ms_recorded": tuning_ms, "candidates_benchmarked": candidates},
    }


def _environment(digest: str, env: Environment) -> dict[str, Any]:
    fields = {f: getattr(env, f) for f in env.__struct_fields__}
    return {"digest": digest[7:19], **{k: v for k, v in fields.items() if v not in (None, {}, "")}}
