"""Generate the JSON Schemas of a pack's index (artifacts, environments, tables) and of an
Inductor folder's hints file (spec §17) into spec/schema/.

python tools/gen_schema.py           write spec/schema/index.schema.json, hints.schema.json
python tools/gen_schema.py --check   exit 1 if a committed schema is stale
"""

from __future__ import annotations

import inspect
import json
import sys
from pathlib import Path
from typing import Any

import msgspec

from atpack.hints import HintsFile
from atpack.pack import Index

FOLDER = Path(__file__).resolve().parent.parent / "spec" / "schema"
SCHEMAS = {"index.schema.json": (Index, "atpack index, format 1"), "hints.schema.json": (HintsFile, "atpack hints")}


def schema(name: str) -> str:
    kind, title = SCHEMAS[name]
    body = _dedented(msgspec.json.schema(kind))
    body = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"https://atpack.dev/spec/schema/{name}",
        "title": title,
        **body,
    }
    return json.dumps(body, indent=2, sort_keys=True) + "\n"


def _dedented(node: Any) -> Any:
    """Descriptions as `inspect.cleandoc` gives them: msgspec took docstrings as written before
    0.21 and dedents them since, and the schema must not depend on which one generated it."""
    if isinstance(node, dict):
        return {
            k: inspect.cleandoc(v) if k == "description" and isinstance(v, str) else _dedented(v)
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_dedented(v) for v in node]
    return node


def main() -> int:
    stale = 0
    for name in SCHEMAS:
        target, text = FOLDER / name, schema(name)
        if "--check" in sys.argv[1:]:
            if not target.exists() or target.read_text() != text:
                print(f"{target} is stale: run python tools/gen_schema.py", file=sys.stderr)
                stale = 1
            continue
        FOLDER.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        print(f"wrote {target}")
    return stale


if __name__ == "__main__":
    raise SystemExit(main())
