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
