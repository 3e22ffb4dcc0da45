"""atpack in processes that never import it: the plug-in torch loads by itself.

At the end of ``import torch``, torch (2.5 and later) calls every entry point of the
``torch.backends`` group; atpack registers `load` there. Where nothing asked for atpack, it costs
two `lstat`s (the markers) and leaves nothing installed. Otherwise:

* **Replay** (`atpack.replay`): where the Inductor folder's marker or ``ATPACK_REPLAY=1`` turns it
  on, it is installed when Inductor's runtime is first imported, so ``import torch`` costs what
  it cost without atpack, and a process that never compiles is never touched.
* **Lookup record** (`atpack.lookups`): where ``ATPACK_EXPLAIN=1`` or the folder's
  ``atpack-explain.json`` (``atpack populate --explain``) asks, every lookup of torch's and
  Triton's caches is recorded into the Inductor folder as it happens.
* **Hints** (`atpack.hints`): where the folder holds ``atpack-hints.json`` (``atpack populate
  --hints``) and ``ATPACK_HINTS`` does not turn them off, a lookup that misses benchmarks the
  candidates its hints name (and torch's first) instead of all of them.
* **Capture**, under ``atpack capture -- COMMAND``: ``ATPACK_CAPTURE`` names a folder; the process
  records as `atpack.capture()` does and, when it exits, leaves its pack there for the command
  to merge.

Nothing here raises into torch (torch turns a plug-in's exception into a failed ``import
torch``): whatever goes wrong is logged once, and torch goes on as if atpack were absent. This
module and what it imports at the top use the standard library only, so that a missing or
broken dependency of atpack cannot break ``import torch``.
"""

from __future__ import annotations

import logging
import os
from typing import Any

__all__ = ["load"]

log = logging.getLogger(__name__)


def load() -> None:
    """The ``torch.backends`` entry point: called by torch at the end of ``import torch``."""
    try:
        from . import replay, settings
        from .folders import default_inductor_dir

        folder = default_inductor_dir()
        on, why = replay.switched(folder)
        if on:
            from . import seam

            seam.install_replay_on_import(why)
        if replay.explaining(folder):
            _record_lookups(folder)
        if replay.hinting(folder):
            from . import seam

            seam.install_hints_on_import(os.path.join(folder, replay.HINTS_FILE))
        if spool := os.environ.get(settings.CAPTURE):
            _capture_process(spool)
    except Exception as e:  # never an exception in `import torch`
        _warn("atpack: the torch plug-in is off in this process (%s); torch runs without it", e)


def _record_lookups(folder: str) -> None:
    import contextlib

    from . import seam
    from .lookups import Recorder

    seam.watch_lookups(Recorder(folder, keep=False), contextlib.ExitStack())  # for the process's life


def _capture_process(spool: str) -> None:
    import atexit

    from .recording import Capture

    capture = Capture(process=True)
    capture.__enter__()
    atexit.register(_save_process_capture, capture, spool)


def _save_process_capture(capture: Any, spool: str) -> None:
    try:
        from . import settings

        capture.__exit__(None, None, None)
        if capture.recorded_anything():
            with_ir = settings.capture_with_ir()
            capture.save(os.path.join(spool, f"{os.getpid()}.atpack"), with_ir=with_ir)
    except Exception as e:
        _warn("atpack: could not save this process's capture (%s)", e)


def _warn(message: str, error: Exception) -> None:
    """One line for the user; the traceback only at debug level."""
    log.warning(message, f"{type(error).__name__}: {error}")
    log.debug("traceback", exc_info=error)
