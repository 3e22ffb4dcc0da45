"""What a reviewer sees of a pack someone else wrote: its text never acts. On a terminal, escape
sequences, carriage returns, newlines and reordering characters in a pack's names and
annotations are shown escaped (each line of atpack's own stays one line); in the HTML report, a
value that spells a placeholder of the page's template stays text."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import atpack
from atpack.testing.packs import best_config
from atpack.text import printable

HOSTILE = "\x1b[2J\x1b[31mok\r\u202eevil\nannotation io.atpack.signed = yes"


def _pack(path: Path, value: str) -> Path:
    with atpack.create(path) as w:
        w.add(best_config(w.add_environment(atpack.Environment(torch_version="2.13.0")), 0))
        w.annotate("org.example.note", value)
    return path


def test_printable_escapes_what_acts_on_a_terminal_and_keeps_the_rest() -> None:
    assert printable("plain text, ünïcode ✓") == "plain text, ünïcode ✓"
    assert printable(HOSTILE) == "\\x1b[2J\\x1b[31mok\\r\\u202eevil\\nannotation io.atpack.signed = yes"


@pytest.mark.parametrize("command", [["inspect"], ["inspect", "-v"]])
def test_inspect_shows_a_hostile_annotation_escaped_on_one_line(tmp_path: Path, command: list[str]) -> None:
    pack = _pack(tmp_path / "p.atpack", HOSTILE)
    result = subprocess.run(
        [sys.executable, "-m", "atpack", *command, str(pack)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert "\x1b" not in result.stdout and "\r" not in result.stdout and "\u202e" not in result.stdout
    lines = [line for line in result.stdout.splitlines() if line.startswith("annotation org.example.note")]
    assert lines == ["annotation org.example.note = " + printable(HOSTILE)]
    assert not [line for line in result.stdout.splitlines() if line.startswith("annotation io.atpack.signed")]


def test_a_value_spelling_the_reports_placeholders_stays_text(tmp_path: Path) -> None:
    from atpack.report import render

    value = "{{DATA}}{{BODY}}{{TITLE}}<img src=x onerror=alert(1)>"
    with atpack.open(_pack(tmp_path / "p.atpack", value)) as pack:
        page = render(pack)
    assert page.count('<script id="data" type="application/json">') == 1
    markup, data = page.split('<script id="data" type="application/json">')
    assert "<img" not in markup and "{{DATA}}{{BODY}}{{TITLE}}&lt;img" in markup  # shown as written, escaped
    assert "</" not in data.split("</script>")[0]  # the data stays inert JSON


@pytest.mark.parametrize("ms", [1e308, 5e-324, 1e-300], ids=["1e308 ms", "5e-324 ms", "1e-300 ms"])
def test_the_report_draws_any_finite_time_a_pack_holds(tmp_path: Path, ms: float) -> None:
    """The axis is computed in logarithms: an edge of 1.15 times 1e308 overflowed, half of the
    smallest float divided by zero (a traceback, not a report)."""
    timings = (atpack.artifacts.ChoiceTiming("triton_mm_1", ms), atpack.artifacts.ChoiceTiming("triton_mm_2", 1.0))
    entry = atpack.artifacts.GemmEntry(op="mm", inputs="[[8, 8], [8, 8]]", precision="high", timings=timings)
    system = atpack.artifacts.GemmSystem(hash="cd" * 32)
    with atpack.create(tmp_path / "p.atpack") as w:
        env = w.add_environment(atpack.Environment(torch_version="2.13.0"))
        w.add(atpack.InductorGemmTimings(env=env, system=system, entries=(entry,)))
    page = tmp_path / "r.html"
    result = subprocess.run(
        [sys.executable, "-m", "atpack", "report", str(tmp_path / "p.atpack"), "-o", str(page)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    assert page.read_text().count('<circle class="') == 2


def test_a_chart_draws_at_most_64_of_a_millions_candidates_and_counts_them_all() -> None:
    from atpack.report import _chart

    times = [(f"c{i}", 1.0 + i / 1000) for i in range(100_000)]
    svg = _chart(times, "c500")
    assert svg.count("<circle") == 64 and '<circle class="best"' in svg
    assert "100000 candidates" in svg and "fastest 1 ·" in svg


def test_a_cache_file_name_in_a_warning_is_shown_escaped_on_one_line(tmp_path: Path) -> None:
    """Anyone who writes to a shared cache folder chooses its file names: `atpack pack`'s
    warning about a file it skips shows the name escaped (every log line of the CLI is)."""
    inductor, triton = tmp_path / "inductor", tmp_path / "triton"
    (inductor / "ab").mkdir(parents=True)
    triton.mkdir()
    (inductor / "ab" / f"{HOSTILE}.best_config").write_text("not json")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "atpack",
            "pack",
            "--inductor-dir",
            str(inductor),
            "--triton-dir",
            str(triton),
            "-o",
            str(tmp_path / "out.atpack"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "\x1b" not in result.stderr and "\r" not in result.stderr and "\u202e" not in result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.startswith("atpack: WARNING: skipped")]
    assert len(warnings) == 1 and printable(HOSTILE) in warnings[0]
    assert not [line for line in result.stderr.splitlines() if line.startswith("annotation io.atpack.signed")]


def test_diff_shows_a_key_holding_newlines_on_its_own_line(tmp_path: Path) -> None:
    """A pack's key with a newline in it once printed lines of the pack's choosing (a forged
    verdict of atpack's): each field of the pack is escaped before the line is made."""
    forged = "atpack: all 12 artifacts verified, signed by trusted key release"
    for name, content in (("a", b"1"), ("b", b"2")):
        with atpack.create(tmp_path / f"{name}.atpack") as w:
            env = w.add_environment(atpack.Environment(torch_version="2.13.0"))
            blob = w.add_blob(content)
            w.add(atpack.artifacts.MegacachePgo(env=env, entry_key=f"job:0:x\n{forged}\n", seq=0, content=blob, size=1))
    result = subprocess.run(
        [sys.executable, "-m", "atpack", "diff", str(tmp_path / "a.atpack"), str(tmp_path / "b.atpack")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert not [line for line in result.stdout.splitlines() if line.startswith("atpack:")]
    assert "changed" in result.stdout and "\\n" + forged in result.stdout
