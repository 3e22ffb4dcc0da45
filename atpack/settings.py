"""The environment variables atpack reads, each parsed in one place.

A value atpack does not understand is a `SettingError` naming the variable, never read as some
default: ``ATPACK_REPLAY=maybe`` turns nothing on or off silently. Inside torch's import (the
plug-in), where nothing may raise, the caller logs the error and acts as if atpack were absent.
"""

from __future__ import annotations

import math
import os

from .errors import SettingError

__all__ = [
    "AUTOLOAD",
    "CACHE_DIR",
    "CAPTURE",
    "CAPTURE_WITH_IR",
    "DEBUG",
    "EXPLAIN",
    "HINTS",
    "LOCAL_RANK",
    "REPLAY",
    "SOURCE_DATE_EPOCH",
    "TIMEOUT",
    "capture_with_ir",
    "debug",
    "explain",
    "hints",
    "local_rank",
    "plugins_autoload",
    "replay",
    "source_date_epoch",
    "timeout",
]

REPLAY = "ATPACK_REPLAY"
"""On or off in every process, whatever the replay markers say; unset: the markers decide."""
CAPTURE = "ATPACK_CAPTURE"
"""Set by `atpack capture` for the command's processes: the folder their captures go to."""
CAPTURE_WITH_IR = "ATPACK_CAPTURE_WITH_IR"
"""Set by `atpack capture --with-ir` for the command's processes: kernels keep their IR and source."""
EXPLAIN = "ATPACK_EXPLAIN"
"""On or off in every process: record its cache lookups for `atpack explain`; unset: the markers decide."""
HINTS = "ATPACK_HINTS"
"""Off: no process uses the hints of its Inductor folder (``populate --hints``); unset or on: the file decides."""
DEBUG = "ATPACK_DEBUG"
TIMEOUT = "ATPACK_TIMEOUT"
CACHE_DIR = "ATPACK_CACHE_DIR"
AUTOLOAD = "TORCH_DEVICE_BACKEND_AUTOLOAD"
"""torch's: it loads plug-ins (atpack's among them) only where this is unset or exactly ``1``."""
SOURCE_DATE_EPOCH = "SOURCE_DATE_EPOCH"
"""The reproducible-builds convention: the time a pack records as its making, in seconds since 1970."""
LOCAL_RANK = "LOCAL_RANK"
"""torchrun's: the device index of this process on its node."""

_ON = ("1", "on", "true", "yes")
_OFF = ("0", "off", "false", "no")


def _switch(name: str) -> bool | None:
    """A yes/no variable: True, False, or None where it is unset or empty."""
    text = os.environ.get(name, "").strip()
    if not text:
        return None
    if text.lower() in _ON:
        return True
    if text.lower() in _OFF:
        return False
    raise SettingError(f"{name}={text!r}: expected one of {', '.join(_ON)} (on) or {', '.join(_OFF)} (off)")


def replay() -> bool | None:
    """``ATPACK_REPLAY``: on or off everywhere, or None (the replay markers decide)."""
    return _switch(REPLAY)


def explain() -> bool | None:
    """``ATPACK_EXPLAIN``: record cache lookups everywhere, nowhere, or None (the markers decide)."""
    return _switch(EXPLAIN)


def hints() -> bool:
    """``ATPACK_HINTS``: False where it turns the hints off everywhere."""
    return _switch(HINTS) is not False


def debug() -> bool:
    """``ATPACK_DEBUG``: tracebacks for errors."""
    return bool(_switch(DEBUG))


def capture_with_ir() -> bool:
    return bool(_switch(CAPTURE_WITH_IR))


def plugins_autoload() -> tuple[bool, str]:
    """Whether torch loads plug-ins (atpack's among them) in the processes started from here, and why not."""
    value = os.environ.get(AUTOLOAD)
    if value is None or value == "1":
        return True, ""
    return False, f"{AUTOLOAD}={value!r} keeps torch from loading plug-ins (torch loads them only where it is 1)"


def timeout() -> float | None:
    """``ATPACK_TIMEOUT``: the deadline of every call to a store in seconds (``inf``: none), or None where unset."""
    text = os.environ.get(TIMEOUT, "").strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not seconds > 0:
        raise SettingError(f"{TIMEOUT}={text!r}: not a number of seconds above 0")
    return seconds


def source_date_epoch() -> int | None:
    """``SOURCE_DATE_EPOCH``: seconds since 1970, or None where unset."""
    text = os.environ.get(SOURCE_DATE_EPOCH, "").strip()
    if not text:
        return None
    if not text.isdigit() or not text.isascii() or int(text) > 253402300799:  # the year 9999's last second
        raise SettingError(f"{SOURCE_DATE_EPOCH}={text!r}: not a number of seconds since 1970")
    return int(text)


def local_rank() -> int | None:
    """``LOCAL_RANK``: this process's device index on its node, or None where unset."""
    text = os.environ.get(LOCAL_RANK, "").strip()
    if not text:
        return None
    if not text.isdigit() or not text.isascii():
        raise SettingError(f"{LOCAL_RANK}={text!r}: not a device index (0, 1, ...)")
    return int(text)
