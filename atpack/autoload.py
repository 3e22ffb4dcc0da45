"""atpack in processes that never import it: the plug-in torch loads by itself.

At the end of ``import torch``, torch (2.5 and later) calls every entry point of the
``torch.backends`` group (`torch._import_device_backends`); atpack registers `load` there. It does
nothing unless asked, and what it does is switched by a file and by variables:

* **Replay** of recorded tuning results (`atpack.coordesc`) in a process whose Inductor folder
  holds ``atpack-replay.json``: ``atpack populate`` writes it into the folder it populates,
  ``atpack replay off`` removes it. ``ATPACK_REPLAY=1`` turns the replay on in every process,
  ``ATPACK_REPLAY=0`` off in every process (and ``TORCH_DEVICE_BACKEND_AUTOLOAD=0`` keeps torch
  from loading any plug-in). The replay is installed when Inductor's runtime module
  (`torch._inductor.runtime.triton_heuristics`) is first imported, so ``import torch`` costs what
  it cost without atpack, and a process that never compiles is never touched.
* **Capture** of what the process tunes, under ``atpack capture -- COMMAND``: ``ATPACK_CAPTURE``
  names a folder; the process records as `atpack.capture()` does and, when it exits, leaves its
  pack there for the command to merge.

Nothing here raises into torch: whatever goes wrong is logged once, and torch goes on as if atpack
were absent.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.machinery
import logging
import os
import stat
import sys
import types
from collections.abc import Callable, Sequence
from typing import Any

from . import settings

__all__ = ["MARKER", "after_import", "disable", "enable", "load", "replay_state"]

log = logging.getLogger(__name__)

MARKER = "atpack-replay.json"
"""The file in an Inductor folder that turns the replay on for the processes using that folder."""

HEURISTICS = "torch._inductor.runtime.triton_heuristics"


def load() -> None:
    """The ``torch.backends`` entry point: called by torch at the end of ``import torch``."""
    try:
        if settings.replay() is not False:
            after_import(HEURISTICS, _replay_if_on)
        if spool := os.environ.get(settings.CAPTURE):
            _capture_process(spool)
    except Exception as e:  # never an exception in `import torch`
        _warn("atpack: the torch plug-in is off in this process (%s); torch runs without it", e)


# --------------------------------------------------------------------------- the switch


def replay_state(inductor_dir: str) -> tuple[bool, str]:
    """Whether the processes started from here that use `inductor_dir` replay, and the reason
    that decides it: torch's plug-in switch, the plug-in's installation, ``ATPACK_REPLAY``, the
    folder's marker. An ``ATPACK_REPLAY`` atpack does not understand is a `SettingError`."""
    loads, why = settings.plugins_autoload()
    if not loads:
        return False, why
    if not plugin_registered():
        return False, "atpack's torch plug-in is not installed in this environment (pip install atpack)"
    return _switched(inductor_dir)


def _switched(inductor_dir: str) -> tuple[bool, str]:
    """The replay's own switches: ``ATPACK_REPLAY``, else the folder's marker, if it is the user's."""
    forced = settings.replay()
    if forced is not None:
        value = os.environ[settings.REPLAY]
        return forced, f"{settings.REPLAY}={value!r} turns it {'on' if forced else 'off'} in every process"
    marker = os.path.join(inductor_dir, MARKER)
    try:
        st = os.lstat(marker)
    except OSError:
        return False, f"no {marker} (atpack populate or atpack replay on writes it)"
    if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid():
        return False, f"{marker} is not a file of this user's: ignored"
    return True, f"{marker} (`atpack replay off` removes it)"


def enable(inductor_dir: str) -> str:
    """Turn the replay on for the processes using `inductor_dir` (a marker that is there already
    is left as it is); returns the marker's path. The marker names nothing (no pack URL: a
    presigned one carries a credential), and says who wrote it."""
    from .files import CacheDir

    with CacheDir(inductor_dir) as root:
        path = root.path(MARKER)
        if root.state(path) == "absent":
            root.write(path, b'{"written_by": "atpack"}\n')
    return path


def disable(inductor_dir: str) -> bool:
    """Turn the replay off for the processes using `inductor_dir`; False if it was not on."""
    try:
        os.unlink(os.path.join(inductor_dir, MARKER))
    except FileNotFoundError:
        return False
    return True


def plugin_registered() -> bool:
    """Whether torch will load this plug-in (the entry point is installed where torch looks)."""
    from importlib.metadata import entry_points

    return any(ep.value == f"{__name__}:load" for ep in entry_points(group="torch.backends"))


def _replay_if_on(_module: types.ModuleType) -> None:
    from .folders import default_inductor_dir

    on, why = _switched(default_inductor_dir())
    if not on:
        return
    from . import coordesc

    if coordesc.install():
        log.info("atpack: replaying recorded tuning results (%s)", why)


# --------------------------------------------------------------------------- capture


def _capture_process(spool: str) -> None:
    import atexit

    from .capture import Capture

    capture = Capture(process=True)
    capture.__enter__()
    atexit.register(_save_process_capture, capture, spool)


def _save_process_capture(capture: Any, spool: str) -> None:
    try:
        capture.__exit__(None, None, None)
        if capture.recorded_anything():
            binaries_only = settings.capture_binaries_only()
            capture.save(os.path.join(spool, f"{os.getpid()}.atpack"), binaries_only=binaries_only)
    except Exception as e:
        _warn("atpack: could not save this process's capture (%s)", e)


# --------------------------------------------------------------------------- after import


_pending: dict[str, list[Callable[[types.ModuleType], None]]] = {}
_failed: set[str] = set()


def after_import(name: str, then: Callable[[types.ModuleType], None]) -> Callable[[], None]:
    """Call `then(module)` once module `name` is imported: now if it already is, else right after
    it is executed. Returns a function that cancels the call if it has not happened. A failure of
    `then` is logged once per module, never raised into the importer."""
    module = sys.modules.get(name)
    if module is not None:
        _call(then, module)
        return lambda: None
    _pending.setdefault(name, []).append(then)
    if not any(isinstance(finder, _AfterImportFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _AfterImportFinder())

    def cancel() -> None:
        with contextlib.suppress(KeyError, ValueError):
            _pending[name].remove(then)

    return cancel


def _call(then: Callable[[types.ModuleType], None], module: types.ModuleType) -> None:
    try:
        then(module)
    except Exception as e:
        if module.__name__ not in _failed:
            _failed.add(module.__name__)
            _warn(f"atpack: could not hook {module.__name__} (%s); torch runs without it", e)


def _warn(message: str, error: Exception) -> None:
    """One line for the user; the traceback only at debug level."""
    log.warning(message, f"{type(error).__name__}: {error}")
    log.debug("traceback", exc_info=error)


class _AfterImportFinder(importlib.abc.MetaPathFinder):
    """Finds nothing itself: for a module someone waits for, it asks the other finders and wraps
    the loader they return, so that the waiting calls run once the module is executed."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: types.ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if not _pending.get(fullname):
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                break
        else:
            return None
        if spec.loader is not None and hasattr(spec.loader, "exec_module"):
            spec.loader = _NotifyingLoader(spec.loader, fullname)
        return spec


class _NotifyingLoader(importlib.abc.Loader):
    """A loader that runs the calls waiting for its module after executing it."""

    def __init__(self, loader: Any, name: str) -> None:
        self._loader = loader
        self._name = name

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType | None:
        return self._loader.create_module(spec)  # type: ignore[no-any-return]

    def exec_module(self, module: types.ModuleType) -> None:
        self._loader.exec_module(module)
        for then in _pending.pop(self._name, []):
            _call(then, module)

    def __getattr__(self, name: str) -> Any:  # get_source, get_data, ...: the real loader's
        return getattr(self._loader, name)
