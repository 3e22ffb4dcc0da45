"""Generate the JSON Schema of a pack's index (artifacts, environments, tables) into spec/schema/.

python tools/gen_schema.py           write spec/schema/index.schema.json
python tools/gen_schema.py --check   exit 1 if the committed schema is stale
"""

from __future__ import annotations

import inspect
import json
import sys
from pathlib import Path
from typing import Any

import msgspec

from atpack.pack import Index

TARGET = Path(__file__).resolve().parent.parent / "spec" / "schema" / "index.schema.json"


def schema() -> str:
    body = _dedented(msgspec.json.schema(Index))
    body = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://atpack.dev/spec/schema/index.schema.json",
        "title": "atpack index, format 1",
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
    text = schema()
    if "--check" in sys.argv[1:]:
        if not TARGET.exists() or TARGET.read_text() != text:
            print(f"{TARGET} is stale: run python tools/gen_schema.py", file=sys.stderr)
            return 1
        return 0
    TARGET.parent.mkdir(parents=True, exist_ok=True)
    TARGET.write_text(text)
    print(f"wrote {TARGET}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
