"""Whether Triton's own lookup of compiled kernels hits in this process's Triton folder.

    python triton_kernels.py KEY:NAME...
Prints JSON: for each, whether Triton's cache manager finds the kernel NAME's group under KEY
(`triton.compile` looks kernels up this way: `get_cache_manager(hash)` names the folder by the
base32 of the hash). Uses $TRITON_CACHE_DIR, or Triton's default.
"""

from __future__ import annotations

import base64
import json
import sys

from triton.runtime.cache import get_cache_manager


def compiled(key: str, name: str) -> bool:
    digest = base64.b32decode(key + "=" * (-len(key) % 8)).hex()
    return get_cache_manager(digest).get_group(f"{name}.json") is not None


if __name__ == "__main__":
    print(json.dumps([compiled(*pair.split(":")) for pair in sys.argv[1:]]))
