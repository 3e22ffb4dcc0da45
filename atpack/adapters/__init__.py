"""One module per cache system (Inductor's, Triton's, torch's Megacache), each defining its kinds'
behaviour (`atpack.kinds.Kind`): how they are collected from a cache folder and which files populate
writes back. Only adapters know torch's and Triton's layouts.

Importing this package registers the built-in kinds (`atpack.kinds.register`); a kind registered
before (a test's, a plug-in's) stays.
"""

from __future__ import annotations

from .. import kinds
from . import inductor, lookups, megacache, triton

__all__ = ["inductor", "lookups", "megacache", "triton"]

for _adapter in (inductor, triton, megacache, lookups):
    for _kind in _adapter.KINDS:
        if not kinds.registered(_kind.artifact):
            kinds.register(_kind)
