"""Text from a pack, shown on a terminal: whatever its bytes, it cannot move the cursor, recolour
the screen, hide or reorder what follows, or forge a line of atpack's own.

A pack, a store and a model folder can be written by someone else; their names, keys and
annotations reach `atpack inspect`, `populate` and `diff`. Control characters (C0, C1: escape
sequences, carriage returns, newlines) and the invisible characters that reorder text (bidi
overrides and isolates, as in "trojan source") are shown escaped, as Python writes them.
"""

from __future__ import annotations

import re

__all__ = ["printable"]

_HIDDEN = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def printable(text: str) -> str:
    """`text` with every character that could act on a terminal written as an escape (``\\x1b``)."""
    return _HIDDEN.sub(lambda m: m[0].encode("unicode_escape").decode("ascii"), text)
