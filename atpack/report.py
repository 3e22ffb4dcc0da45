"""A picture of a pack: as text and as data (what ``atpack inspect`` prints, from the pack's
index alone), and as one self-contained HTML page (no network, no external files, no script).

The page shows who signed the pack, the environments it covers, the kernels it carries, the
config chosen for each tuned kernel with its candidates' timings, and what tuning cost when the
pack was made, which a warm start from the pack does not pay again. Everything is rendered here,
as HTML tables and SVG charts (each point's value in its tooltip), so the page reads the same in
a browser with JavaScript off, in a mail client and in a code review; the data behind it is
embedded as JSON (``<script type="application/json" id="data">``) for tools.
"""

from __future__ import annotations

import collections
import html
import importlib.resources
import json
import math
import os
import re
import statistics
from collections.abc import Sequence
from typing import Any

import msgspec

from . import adapters, kinds  # noqa: F401  (adapters: registers the built-in kinds)
from .artifacts import Artifact, Environment, UnknownArtifact, artifact_digest
from .explaining import explain, key_components
from .lookups import Record
from .pack import Pack, open_pack
from .signing import SIGNATURE_PREFIX
from .storage import publish
from .text import printable

__all__ = ["contents", "describe", "render", "write_report"]


def write_report(
    url: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    storage_options: dict[str, Any] | None = None,
    keys: Sequence[str | os.PathLike[str]] = (),
    records: Sequence[Record] = (),
    inductor_dir: str | None = None,
) -> str:
    """Write the HTML report of the pack at `url` to `out` (published atomically). With `keys`
    (public key files), the pack's signatures are checked against them; otherwise they are
    listed as not verified. With `records` (`atpack.lookups`), it shows their lookups explained
    by the pack."""
    with open_pack(url, storage_options=storage_options) as pack:
        page = render(pack, keys=keys, name=os.fspath(url), records=records, inductor_dir=inductor_dir)
    with publish(out, storage_options) as f:
        f.write(page.encode())
    return os.fspath(out)


def render(
    pack: Pack,
    *,
    keys: Sequence[str | os.PathLike[str]] = (),
    name: str | None = None,
    records: Sequence[Record] = (),
    inductor_dir: str | None = None,
) -> str:
    """The report of `pack` as an HTML page, which calls the pack `name` (by default, its
    resolved path or URL); with `records`, their lookups explained by the pack."""
    data = _data(pack, keys)
    data["name"] = name or pack.name
    if records:
        environments, components = pack.manifest.environments, key_components(pack)
        found = explain(records, pack.artifacts, environments, components, pack=data["name"], inductor_dir=inductor_dir)
        data["lookups"] = found.to_json()
    payload = json.dumps(data).replace("</", "<\\/")
    title = html.escape(f"atpack report: {os.path.basename(data['name'])}")
    page = importlib.resources.files("atpack").joinpath("report.html").read_text(encoding="utf-8")
    parts = {"TITLE": title, "BODY": _body(data), "DATA": payload}
    # one pass: what a part holds (a pack's annotations, its names) is never read as a placeholder
    return _PLACEHOLDER.sub(lambda m: parts[m[1]], page)


_PLACEHOLDER = re.compile(r"\{\{(TITLE|BODY|DATA)\}\}")


# --------------------------------------------------------------------------- text and data


def describe(pack: Pack, *, verbose: bool = False) -> str:
    """What `pack` holds, as text (``atpack inspect``): its format, size, digest and annotations,
    then each environment with how many artifacts of each kind it has and the kernels it carries
    most; `verbose` adds a line for each artifact."""
    m = pack.manifest
    lines = [
        f"{pack.name}: atpack format {pack.format_version[0]}.{pack.format_version[1]}, {pack.size:,} bytes",
        f"digest {pack.digest}",
    ]
    lines += [f"annotation {k} = {v}" for k, v in sorted(m.annotations.items())]
    by_env: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    shown: dict[str, kinds.Shown] = collections.defaultdict(kinds.Shown)
    for a in pack.artifacts:
        by_env[a.env][a.kind] += 1
        kinds.of(a).show(a, shown[a.env])
    kernels = {env: collections.Counter(k["name"] for k in s.kernels) for env, s in shown.items()}
    for digest, env in m.environments.items():
        where = ", ".join(
            f"{f} {getattr(env, f)}"
            for f in ("device_name", "torch_version", "triton_version", "cuda_version", "python_abi")
            if getattr(env, f) is not None
        )
        lines.append(f"environment {digest[7:19]}: {where or 'unrecorded'}")
        lines += [f"  {n:6d}  {kind}" for kind, n in sorted(by_env[digest].items())]
        if kernels.get(digest):
            top = ", ".join(f"{name} x{n}" for name, n in kernels[digest].most_common(6))
            more = len(kernels[digest]) - 6
            lines.append(f"          kernels: {top}" + (f" and {more} more" if more > 0 else ""))
    if verbose:
        lines.append(f"{'KIND':24s} {'ENV':12s} SUMMARY")
        lines += [f"{a.kind:24s} {a.env[7:19]:12s} {a.summary()}" for a in pack.artifacts]
    return "\n".join(printable(line) for line in lines)  # each line, so a value cannot add one


def contents(pack: Pack) -> dict[str, Any]:
    """What `pack` holds, as data for JSON (``atpack inspect --json``): its URL, size, format,
    digest, annotations and environments, and every artifact in full, with its digest and the
    one-line summary `describe` shows (an artifact of a kind this atpack does not know, as
    stored)."""

    def body(a: Artifact | UnknownArtifact) -> Any:
        return msgspec.json.decode(a.raw) if isinstance(a, UnknownArtifact) else msgspec.to_builtins(a)

    return {
        "url": pack.name,
        "size": pack.size,
        "format": list(pack.format_version),
        "digest": pack.digest,
        "annotations": pack.manifest.annotations,
        "environments": {d: msgspec.to_builtins(e) for d, e in pack.manifest.environments.items()},
        "artifacts": [
            {
                "kind": a.kind,
                "env": a.env,
                "key": a.key,
                "digest": artifact_digest(a),
                "summary": a.summary(),
                "artifact": body(a),
            }
            for a in pack.artifacts
        ],
    }


# --------------------------------------------------------------------------- the data


def _data(pack: Pack, keys: Sequence[str | os.PathLike[str]]) -> dict[str, Any]:
    counts: collections.Counter[str] = collections.Counter()
    shown = kinds.Shown()
    for a in pack.artifacts:
        counts[a.kind] += 1
        kinds.of(a).show(a, shown)
    return {
        "name": pack.name,
        "size": pack.size,
        "digest": pack.digest,
        "artifacts": len(pack.artifacts),
        "annotations": {k: v for k, v in pack.manifest.annotations.items() if not k.startswith(SIGNATURE_PREFIX)},
        "signatures": _signatures(pack, keys),
        "environments": [_environment(d, e) for d, e in pack.manifest.environments.items()],
        "kinds": dict(sorted(counts.items())),
        "gemms": shown.gemms,
        "autotunes": shown.autotunes,
        "configs": shown.configs,
        "kernels": shown.kernels,
        "trusted_only": sum(1 for a in pack.artifacts if isinstance(a, Artifact) and a.runs_code),
        "savings": {"tuning_ms_recorded": shown.tuning_ms, "candidates_benchmarked": shown.candidates},
    }


def _signatures(pack: Pack, keys: Sequence[str | os.PathLike[str]]) -> list[dict[str, str]]:
    """Each key that signed the pack: verified (by one of `keys`), failed, or not verified."""
    if not any(k.startswith(SIGNATURE_PREFIX) for k in pack.manifest.annotations):
        return []
    from .signing import SignatureError, public_key_id, signer_ids, verify_signature

    given = {public_key_id(path): os.path.basename(os.fspath(path)) for path in keys}
    out = []
    for kid in signer_ids(pack):
        if kid not in given:
            why = "no key given (atpack report --key PUBLIC.pem checks it)" if not keys else "not one of the keys given"
            out.append({"key": kid, "status": "unverified", "detail": f"not verified: {why}"})
            continue
        try:
            verify_signature(pack, [path for path in keys if public_key_id(path) == kid])
        except SignatureError as e:
            out.append({"key": kid, "status": "invalid", "detail": f"does NOT verify: {str(e).split(': ', 1)[-1]}"})
        else:
            out.append({"key": kid, "status": "verified", "detail": f"verified with {given[kid]}"})
    return out


def _environment(digest: str, env: Environment) -> dict[str, Any]:
    fields = {f: getattr(env, f) for f in env.__struct_fields__}
    return {"digest": digest[7:19], **{k: v for k, v in fields.items() if v not in (None, {}, "")}}


# --------------------------------------------------------------------------- the page


def _body(d: dict[str, Any]) -> str:
    parts = [_header(d), _environments(d), _holdings(d)]
    if d["gemms"]:
        parts.append(_gemms(d["gemms"]))
    if d["autotunes"]:
        parts.append(_autotunes(d["autotunes"]))
    if d["configs"]:
        parts.append(_configs(d["configs"]))
    if d["kernels"]:
        parts.append(_kernels(d["kernels"]))
    if "lookups" in d:
        parts.append(_lookups(d["lookups"]))
    return "\n".join(parts)


_MISSES = "<table><tr><th>cache</th><th>key</th><th>why it missed</th></tr>{}</table>"


def _lookups(found: dict[str, Any], shown: int = 200) -> str:
    """What a process looked up in the caches this pack filled: hits per cache, each miss's cause."""
    rows = "".join(
        f'<tr><td><code>{_e(cache)}</code></td><td class="n">{c["hits"]:,}</td><td class="n">{c["misses"]:,}</td>'
        f'<td class="n">{c["hit_rate"]:.0%}</td><td class="n">{c["seconds"]:.2f}</td></tr>'
        for cache, c in found["caches"].items()
    )
    misses = []
    for miss in found["misses"][:shown]:
        differs = "".join(
            f"<li><code>{_e(d['component'])}</code>: recorded {_long(str(d['recorded']))} "
            f"found {_long(str(d['found']))}</li>"
            for d in miss["differs"][:8]
        )
        misses.append(
            f"<tr><td><code>{_e(miss['cache'])}</code></td><td>{_long(miss['key'], 24)} {_e(miss['name'])}</td>"
            f"<td>{_e(miss['cause'])}<ul>{differs}</ul></td></tr>"
        )
    more = len(found["misses"]) - shown
    return (
        f"<section><h2>Lookups of {found['records']} process record(s), explained</h2>"
        "<table><tr><th>cache</th><th>hits</th><th>misses</th><th>hit rate</th><th>seconds after misses</th></tr>"
        f"{rows}</table><p>{found['benchmarks']:,} benchmark calls ({found['benchmark_s']:.2f} s); recording "
        f"the lookups took {found['spent_s']:.3f} s.</p>"
        + (_MISSES.format("".join(misses)) if misses else "")
        + (f'<p class="muted">and {more:,} more misses (atpack explain -v)</p>' if more > 0 else "")
        + "</section>"
    )


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _header(d: dict[str, Any]) -> str:
    name = d["name"]
    created = d["annotations"].get("io.atpack.created", "")
    facts = [
        f"{d['size']:,} bytes",
        f"{d['artifacts']:,} artifacts",
        f"{len(d['environments'])} environment{'s' if len(d['environments']) != 1 else ''}",
    ] + ([f"created {_e(created)}"] if created else [])
    others = {k: v for k, v in d["annotations"].items() if k != "io.atpack.created"}
    rows = "".join(f"<tr><th>{_e(k)}</th><td><code>{_e(v)}</code></td></tr>" for k, v in sorted(others.items()))
    parts = [f"<header><h1>{_e(os.path.basename(name))}</h1>"]
    if name != os.path.basename(name):
        parts.append(f'<p class="where"><code>{_e(name)}</code></p>')
    parts += [
        f"<p>{' · '.join(facts)}</p>",
        f'<p>content digest <code class="wrap">{_e(d["digest"])}</code></p>',
        _signature_lines(d["signatures"]),
        f'<table class="facts">{rows}</table>' if rows else "",
        _savings(d),
        "</header>",
    ]
    return "".join(parts)


def _signature_lines(signatures: list[dict[str, str]]) -> str:
    if not signatures:
        return (
            '<p class="sig none">Not signed (<code>atpack sign</code> signs it; populate '
            "<code>--trusted-key</code> then loads only packs you signed).</p>"
        )
    mark = {"verified": "✔", "invalid": "✘", "unverified": "?"}
    return "".join(
        f'<p class="sig {s["status"]}"><span class="mark">{mark[s["status"]]}</span> signed by key '
        f"<code>{_e(s['key'])}</code>: {_e(s['detail'])}</p>"
        for s in signatures
    )


def _savings(d: dict[str, Any]) -> str:
    s = d["savings"]
    trusted = (
        f" {d['trusted_only']} artifacts run code when loaded: they are populated only when trusted."
        if d["trusted_only"]
        else ""
    )
    return (
        f'<p class="savings">Carried as results, so a warm start does not measure them again: '
        f"<b>{s['candidates_benchmarked']:,}</b> benchmarked candidates and "
        f"<b>{s['tuning_ms_recorded'] / 1000:.1f} s</b> of recorded Inductor tuning time.{trusted}</p>"
    )


def _environments(d: dict[str, Any]) -> str:
    first = {name: i for i, name in enumerate(_FIRST_FIELDS)}
    fields = sorted({k for e in d["environments"] for k in e if k != "digest"}, key=lambda f: (first.get(f, 99), f))
    head = "".join(f"<th>environment <code>{_e(e['digest'])}</code></th>" for e in d["environments"])
    rows = "".join(
        f"<tr><th>{_e(f)}</th>" + "".join(f"<td>{_long(_text(e.get(f, '')))}</td>" for e in d["environments"]) + "</tr>"
        for f in fields
    )
    return f'<section><h2>Environments</h2><table class="env"><tr><th></th>{head}</tr>{rows}</table></section>'


_FIRST_FIELDS = ("device_name", "compute_capability", "torch_version", "triton_version", "cuda_version", "python_abi")


def _text(value: object) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _long(text: str, shown: int = 64) -> str:
    """`text` as code; past `shown` characters, folded (the whole of it a click away)."""
    if len(text) <= shown:
        return f'<code class="wrap">{_e(text)}</code>'
    return (
        f"<details><summary><code>{_e(text[:shown])}…</code> ({len(text):,} characters)</summary>"
        f'<code class="wrap">{_e(text)}</code></details>'
    )


def _holdings(d: dict[str, Any]) -> str:
    rows = "".join(f'<tr><td><code>{_e(k)}</code></td><td class="n">{n:,}</td></tr>' for k, n in d["kinds"].items())
    return f"<section><h2>What it holds</h2><table><tr><th>kind</th><th>artifacts</th></tr>{rows}</table></section>"


def _gemms(gemms: list[dict[str, Any]]) -> str:
    rows = []
    for g in gemms:
        inputs = "".join(f"<span>{_e(part)}</span>" for part in _split_inputs(g["inputs"]))
        rows.append(
            f"<tr><td><code>{_e(g['op'])}</code><br><span class=muted>{_e(g['precision'])}</span></td>"
            f'<td><code class="inputs">{inputs}</code></td>'
            f'<td class="choice"><code class="wrap">{_e(g["best"])}</code></td>'
            f"<td>{_chart(g['times'], g['best'])}</td></tr>"
        )
    return (
        "<section><h2>GEMM autotuning</h2>"
        '<p class="muted">Each candidate Inductor benchmarked for one matrix multiply, on a log time axis; '
        "the chosen one in red. Hover a point for its name and time.</p>"
        "<table><tr><th>op</th><th>inputs (device, dtype, size, stride, offset)</th><th>chosen</th>"
        f"<th>candidates (ms)</th></tr>{''.join(rows)}</table></section>"
    )


def _split_inputs(inputs: str) -> list[str]:
    """Inductor's text for a GEMM's inputs, one input (a tuple) a line."""
    text = inputs.strip()
    if text.startswith("[(") and text.endswith(")]"):
        return [f"({part})" for part in text[2:-2].split("), (")]
    return [text]


def _autotunes(autotunes: list[dict[str, Any]]) -> str:
    rows = "".join(
        f"<tr><td><code>{_e(a['fn'])}</code></td><td><code>{_e(', '.join(map(str, a['key'])))}</code></td>"
        f"<td class=choice><code>{_e(a['best'])}</code></td><td>{_chart(a['times'], a['best'])}</td></tr>"
        for a in autotunes
    )
    return (
        "<section><h2>Triton autotune results</h2>"
        '<p class="muted">Each config <code>@triton.autotune</code> benchmarked (median times); '
        "the chosen one in red.</p>"
        f"<table><tr><th>function</th><th>tuning key</th><th>chosen</th><th>candidates (ms)</th></tr>{rows}</table>"
        "</section>"
    )


def _configs(configs: list[dict[str, Any]]) -> str:
    rows = "".join(
        f'<tr><td><code class="wrap">{_e(c["path"])}</code></td><td><code>{_e(c["config"])}</code></td>'
        f'<td class="n">{_ms(c["ms"])}</td></tr>'
        for c in configs
    )
    return (
        "<section><h2>Inductor kernel configs</h2>"
        f"<table><tr><th>file</th><th>chosen config</th><th>tuning took (ms)</th></tr>{rows}</table></section>"
    )


def _ms(value: object) -> str:
    return f"{value:,.0f}" if isinstance(value, (int, float)) else "-"


def _kernels(kernels: list[dict[str, Any]]) -> str:
    by_name: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
    for k in kernels:
        by_name[k["name"]].append(k)
    summary = "".join(
        f'<tr><td><code>{_e(name)}</code></td><td class="n">{len(ks):,}</td>'
        f'<td class="n">{sum(k["files"] for k in ks):,}</td><td class="n">{sum(k["bytes"] for k in ks):,}</td></tr>'
        for name, ks in sorted(by_name.items(), key=lambda item: (-len(item[1]), item[0]))
    )
    every = "".join(
        f'<tr><td><code>{_e(k["name"])}</code></td><td><code class="wrap">{_e(k["key"])}</code></td>'
        f'<td class="n">{k["files"]}</td><td class="n">{k["bytes"]:,}</td></tr>'
        for k in kernels
    )
    total = sum(k["bytes"] for k in kernels)
    return (
        f"<section><h2>Compiled kernels</h2><p>{len(kernels):,} kernels, {total:,} bytes of files.</p>"
        "<table><tr><th>kernel</th><th>folders</th><th>files</th><th>bytes</th></tr>"
        f"{summary}</table>"
        f"<details><summary>every kernel folder ({len(kernels):,})</summary>"
        f"<table><tr><th>kernel</th><th>folder</th><th>files</th><th>bytes</th></tr>{every}</table></details>"
        "</section>"
    )


# --------------------------------------------------------------------------- charts

_W, _H, _PAD = 340, 46, 12


_POINTS = 64
"""Points one chart draws at most: the chosen one, then an even sample of the others by time
(the numbers beside it count them all)."""


def _chart(times: list[tuple[str, float]], chosen: str) -> str:
    """Candidates' times as points on a log axis with labelled ticks (the chosen point red),
    each point's name and time in its tooltip; the numbers beside it. Any finite time a pack
    holds is placed (the axis is computed in logarithms: 1e308 ms or 5e-324 ms neither
    overflows nor divides by zero)."""
    timed = [(name, t) for name, t in times if 0 < t < math.inf]
    if not timed:
        return '<span class="muted">no time recorded</span>'
    values = [t for _, t in timed]
    lo, hi = min(values), max(values)
    pad = _LOG_PAD if hi > lo else math.log10(2)
    left, right = math.log10(lo) - pad, math.log10(hi) + pad

    def at(log: float) -> float:  # where a time of 10**log ms lies
        return _PAD + (_W - 2 * _PAD) * (log - left) / (right - left)

    def x(t: float) -> float:
        return at(math.log10(t))

    ticks = "".join(
        f'<line class="tick" x1="{at(k):.1f}" x2="{at(k):.1f}" y1="26" y2="30"/>'
        f'<text x="{at(k):.1f}" y="42">{_power(k)}</text>'
        for k in _ticks(left, right)
    )
    points = []
    for name, t in _drawn(timed, chosen):
        cls = "best" if name == chosen else "dot"
        tip = f"{name}: {_number(t)} ms ({t / lo:.2f}x the fastest)"
        r = 4.5 if name == chosen else 3.2
        points.append(f'<circle class="{cls}" cx="{x(t):.1f}" cy="15" r="{r}"><title>{_e(tip)}</title></circle>')
    picked = [t for name, t in timed if name == chosen]
    numbers = (
        (f"chosen <b>{_number(picked[0])} ms</b> · " if picked else "")
        + f"{len(values)} candidates, {hi / lo:.1f}x spread<br>"
        + f"fastest {_number(lo)} · median {_number(statistics.median(values))} · slowest {_number(hi)} ms"
    )
    summary = f"{len(values)} candidates from {_number(lo)} to {_number(hi)} ms"
    return (
        f'<svg class="chart" width="{_W}" height="{_H}" viewBox="0 0 {_W} {_H}" role="img">'
        f"<title>{_e(summary)}</title>"
        f'<line class="axis" x1="{_PAD}" x2="{_W - _PAD}" y1="26" y2="26"/>{ticks}{"".join(points)}</svg>'
        f'<div class="numbers">{numbers}</div>'
    )


_LOG_PAD = math.log10(1.15)


def _drawn(timed: list[tuple[str, float]], chosen: str) -> list[tuple[str, float]]:
    """At most `_POINTS` of the candidates, slowest first and the chosen one last (drawn on top)."""
    others = sorted(((name, t) for name, t in timed if name != chosen), key=lambda nt: -nt[1])
    if len(others) >= _POINTS:
        step = len(others) / (_POINTS - 1)
        others = [others[int(i * step)] for i in range(_POINTS - 2)] + [others[-1]]  # the fastest kept
    return others + [(name, t) for name, t in timed if name == chosen][:1]


def _ticks(left: float, right: float) -> list[float]:
    """Round values (1, 2, 5 times a power of ten) between 10**left and 10**right, two to six of
    them, as their logarithms."""
    first, last = math.floor(left), math.ceil(right)
    for steps in ((1,), (1, 2, 5), (1, 2, 3, 4, 5, 6, 7, 8, 9)):
        ticks = [k + math.log10(m) for k in range(first, last + 1) for m in steps if left <= k + math.log10(m) <= right]
        if len(ticks) >= 2:
            return ticks if len(ticks) <= 6 else ticks[:: math.ceil(len(ticks) / 6)]
    return [left, right]


def _power(k: float) -> str:
    """A tick's label: 10**k, whatever k."""
    exponent = math.floor(k)
    mantissa = round(10 ** (k - exponent))
    if mantissa == 10:
        mantissa, exponent = 1, exponent + 1
    return f"{mantissa:g}e{exponent}" if not -4 <= exponent <= 5 else _number(mantissa * 10.0**exponent)


def _number(t: float) -> str:
    return f"{t:.3g}"
