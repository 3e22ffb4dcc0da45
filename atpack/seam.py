"""The seam with torch and Triton: every private name of theirs that atpack reads, calls or
patches goes through this module, and nowhere else.

Their internals move every release. `INTERNALS` describes each one per release (what it is, what
atpack does with it, from and until which release), and `check_internals` verifies every entry
on the installed releases (the version matrix runs it on every release the table claims).
Adding a torch release is an edit of this module: its table, and the code beside the entry that
changed. The formats atpack writes by hand (Megacache's blob, `.best_config` files, Triton's
group files) are described here too, with the test that holds each to the real reader.

Every accessor has a fallback: where an internal is missing or not what it should be, the caller
gets None or False and one line is logged, and torch runs as if atpack were absent.

Every patch (`Patch`) is visible (`patched`), reversible (`uninstall` puts torch's own functions
back, the very objects), switchable (the replay obeys ``ATPACK_REPLAY`` on every path; a capture
patches only for its own duration) and fail-safe: atpack's part of a wrapper runs guarded, and
the first error it meets gives that feature up for the process (one log line) while torch's own
function runs as it would have.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import importlib
import json
import logging
import math
import os
import re
import stat
import sys
import types
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol, TypeVar

__all__ = [
    "HEURISTICS",
    "INTERNALS",
    "TORCH",
    "TRITON",
    "Internal",
    "LookupSink",
    "MegacacheRecording",
    "Patch",
    "after_import",
    "backend_hash",
    "check_internals",
    "compiler_imported",
    "default_inductor_dir",
    "gemm_key",
    "install_hints_on_import",
    "install_replay",
    "install_replay_on_import",
    "kernel_names",
    "kernel_problem",
    "module_problem",
    "launched_kernel_folders",
    "patched",
    "record_path",
    "saved_megacache",
    "torch_key",
    "torch_release",
    "triton_key",
    "tritons_own_dir",
    "uninstall",
    "watch_autotune_runs",
    "watch_lookups",
    "watch_records",
    "watch_winners",
]

log = logging.getLogger(__name__)

_T = TypeVar("_T")

TORCH = ((2, 8), (2, 14))
"""The torch releases whose internals this module was written for (first, last)."""
TRITON = ((3, 4), (3, 9))
"""The Triton releases likewise."""

HEURISTICS = "torch._inductor.runtime.triton_heuristics"
_AUTOTUNE_CACHE = "torch._inductor.runtime.autotune_cache"
_BUNDLER = "torch._inductor.triton_bundler"
_AUTOTUNER = "triton.runtime.autotuner"


# --------------------------------------------------------------------------- the table


@dataclasses.dataclass(frozen=True)
class Internal:
    """One internal of torch's or Triton's that atpack relies on."""

    name: str
    """The dotted name, or for a format the file it describes."""
    use: str
    """``read``, ``called``, ``patched``, ``written`` (a private container), or ``format`` (atpack writes it)."""
    package: str
    """``torch`` or ``triton``: whose releases `since` and `until` count."""
    since: tuple[int, int]
    until: tuple[int, int]
    why: str
    checked_by: str = ""
    """For a format: the test that holds atpack's copy to the real reader (else the name is resolved)."""

    def applies(self) -> bool:
        """Whether the installed release is one this entry claims."""
        release = torch_release() if self.package == "torch" else triton_release()
        return release is not None and self.since <= release <= self.until


def _entry(since: str, until: str, use: str, name: str, why: str, checked_by: str = "") -> Internal:
    package = name.split(".")[0] if use != "format" else ("triton" if "triton" in name.lower() else "torch")
    first, last = (tuple(int(p) for p in v.split(".")) for v in (since, until))
    return Internal(name, use, package, first, last, why, checked_by)  # type: ignore[arg-type]


_DIRS = "torch._inductor.runtime.cache_dir_utils"
_TUNER = f"{HEURISTICS}.CachingAutotuner"
_CACHE = f"{_AUTOTUNE_CACHE}.AutotuneCache"
_MANAGER = "torch.compiler._cache.CacheArtifactManager"
_CODECACHE = "torch._inductor.codecache"
_FX = f"{_CODECACHE}.FxGraphCache"
_AOT = "torch._functorch._aot_autograd.autograd_cache.AOTAutogradCache"
_AOT_CACHE = "torch._functorch._aot_autograd.autograd_cache"
_BENCHMARKING = "torch._inductor.runtime.benchmarking"
_READ_PATHS = "tests/test_read_paths.py"
_COORDESC = "torch._inductor.runtime.coordinate_descent_tuner.CoordescTuner"

# fmt: off
INTERNALS: tuple[Internal, ...] = tuple(_entry(*row) for row in (
    # since  until   use        name                                      what atpack does with it
    ("2.8", "2.14", "called",  f"{_DIRS}.cache_dir",                     "finds this process's Inductor folder"),
    ("2.8", "2.14", "called",  f"{_DIRS}.default_cache_dir",             "finds Inductor's default folder"),
    ("2.8", "2.14", "read",    HEURISTICS,                               "installs the replay when it is imported"),
    ("2.8", "2.14", "patched", f"{_TUNER}.coordinate_descent_tuning",    "replay: no second search"),
    ("2.8", "2.14", "patched", f"{_TUNER}.autotune_to_one_config",       "replay: keeps the recorded winner"),
    ("2.8", "2.14", "patched", f"{HEURISTICS}.check_autotune_cache",     "replay: looks in this process's folder"),
    ("2.8", "2.14", "patched", f"{HEURISTICS}.check_autotune_cache",     "hints: a missed kernel's configs, narrowed"),
    ("2.8", "2.14", "patched", f"{_TUNER}.coordinate_descent_tuning",    "hints: a search starts from a hint"),
    ("2.8", "2.14", "called",  f"{_TUNER}._precompile_config",           "hints: that start's launcher"),
    ("2.8", "2.14", "read",    f"{_TUNER}.lock",                         "hints: held while it compiles"),
    ("2.8", "2.14", "read",    f"{_TUNER}.coordesc_tuner",               "hints: the search's bounds"),
    ("2.8", "2.14", "called",  f"{_COORDESC}.value_too_large",           "hints: a start within them"),
    ("2.13", "2.14", "called", f"{_COORDESC}.value_too_small",           "hints: a start within them (if there)"),
    ("2.8", "2.14", "read",    f"{_TUNER}.launchers",                    "replay, capture: a kernel's configs"),
    ("2.8", "2.14", "read",    f"{_TUNER}.filename",                     "replay, capture: a kernel's module"),
    ("2.8", "2.14", "read",    f"{_TUNER}.inductor_meta",                "replay: what a record's path depends on"),
    ("2.8", "2.14", "called",  f"{_CACHE}.create",                       "a kernel's .best_config path"),
    ("2.8", "2.14", "read",    f"{_CACHE}.local_cache",                  "that path"),
    ("2.8", "2.14", "patched", f"{_CACHE}.save",                         "capture: coordinate descent's results"),
    ("2.12", "2.14", "patched", f"{_BUNDLER}.TritonBundler.put_winner",  "capture: the kernels compiled code runs"),
    ("2.8", "2.14", "called",  f"{_MANAGER}.with_fresh_cache",           "capture: the Megacache entries of a block"),
    ("2.8", "2.14", "written", f"{_MANAGER}._new_cache_artifacts",       "capture: hands them back to torch"),
    ("2.8", "2.14", "written", f"{_MANAGER}._seen_artifacts",            "capture: hands them back to torch"),
    ("3.4", "3.7", "patched",  f"{_AUTOTUNER}.Autotuner.run",            "capture: a @triton.autotune kernel ran"),
    ("3.8", "3.9", "written",  "triton.knobs.autotuning.listener",       "capture: the same, Triton's own way"),
    ("2.8", "2.14", "called",  "torch._inductor.codecache.torch_key",    "dry run: torch's build key"),
    ("3.5", "3.9", "called",   "triton.runtime.cache.triton_key",        "dry run: Triton's build key"),
    ("3.4", "3.4", "called",   "triton.compiler.compiler.triton_key",    "dry run: Triton's build key"),
    ("3.4", "3.9", "called",   "triton.compiler.compiler.make_backend",  "dry run: Triton's backend hash"),
    ("3.4", "3.9", "read",     "triton.knobs.cache.dir",                 "finds Triton's own folder"),
    ("2.8", "2.14", "patched", f"{_FX}.load_with_key",                   "explain: FX graph lookups, keys' parts"),
    ("2.8", "2.14", "patched", f"{_FX}._save_graph",                     "explain: what an FX graph miss cost"),
    ("2.8", "2.14", "patched", f"{_AOT_CACHE}.autograd_cache_key",       "explain: AOT autograd keys' parts"),
    ("2.13", "2.14", "patched", f"{_AOT_CACHE}._get_debug_lines_for_cache_key", "explain: lists them unlogged"),
    ("2.8", "2.14", "patched", f"{_AOT}._lookup",                        "explain: which key was looked up"),
    ("2.9", "2.14", "patched", f"{_AOT}.try_load",                       "explain: hit or miss, as torch counts"),
    ("2.8", "2.8", "patched",  f"{_AOT}.load",                           "explain: the same, before try_load"),
    ("2.8", "2.14", "patched", f"{_AOT}.save",                           "explain: what an AOT miss cost"),
    ("2.8", "2.14", "read",    "torch._dynamo.utils.counters",           "explain: AOT autograd's hit and miss counts"),
    ("2.8", "2.14", "called",  f"{HEURISTICS}.hash_configs",             "explain: a kernel's configs, hashed"),
    ("2.8", "2.14", "patched", f"{_CODECACHE}.PersistentCache.lookup",   "explain: GEMM timing lookups"),
    ("2.8", "2.14", "patched", f"{_CODECACHE}.PersistentCache.lookup",   "hints: a miss's benchmark, narrowed"),
    ("2.8", "2.14", "called",  "torch._inductor.ir.ChoiceCaller.hash_key", "explain, hints: a GEMM choice's key"),
    ("2.8", "2.14", "patched", f"{_BENCHMARKING}.benchmarker",           "explain: benchmark calls (its methods)"),
    ("3.4", "3.9", "written",  "triton.knobs.compilation.listener",      "explain: Triton's kernel lookups"),
    ("3.4", "3.9", "patched",  f"{_AUTOTUNER}.Autotuner.check_disk_cache", "explain: @triton.autotune lookups"),
    ("3.4", "3.9", "patched",  f"{_AUTOTUNER}.Autotuner._bench",         "explain: their benchmark calls"),
    ("3.4", "3.9", "patched",  f"{_AUTOTUNER}.Autotuner.check_disk_cache", "hints: a miss's benchmark, narrowed"),
    ("3.4", "3.9", "written",  f"{_AUTOTUNER}.Autotuner._bench",         "hints: a left-out config timed inf"),
    ("3.4", "3.9", "read",     f"{_AUTOTUNER}.Autotuner.fn",             "hints: the kernel's name"),
    ("3.4", "3.9", "read",     f"{_AUTOTUNER}.Config.kwargs",            "hints: a config's values (warps, stages...)"),
    ("3.4", "3.9", "read",     f"{_AUTOTUNER}.driver",                   "explain: the target Triton keys results by"),
    # formats atpack reads and writes itself, each held to torch's or Triton's reader by a test
    ("2.8", "2.14", "format", "Megacache blob (appending byte serializer)", "pack --megacache, megacache",
     "tests/test_megacache.py"),
    ("2.8", "2.14", "format", "Megacache populate_cache() paths, key shapes", "where entries are written",
     "tests/test_megacache.py"),
    ("2.8", "2.14", "format", ".best_config file", "rendered byte for byte", _READ_PATHS),
    ("2.8", "2.14", "format", "GEMM timing file (PersistentCache)", "merged entry by entry", _READ_PATHS),
    ("2.8", "2.14", "format", "its other values (LocalCache.set_value)", "merged key by key",
     "tests/test_local_values.py"),
    ("3.4", "3.9", "format", "Triton kernel folder, __grp__ file", "group files rewritten", _READ_PATHS),
    ("3.4", "3.9", "format", "Triton .autotune.json file", "rendered byte for byte", _READ_PATHS),
    ("2.8", "2.14", "format", "Inductor kernel module (names, harness)", "capture: which kernels it holds",
     "tests/test_zero_config.py"),
    ("2.8", "2.14", "format", "Inductor kernel module (decorator, size hints, function)", "hints: its problem",
     "tests/test_hints.py"),
))
# fmt: on
"""Every internal atpack relies on, per release."""


def check_internals() -> list[tuple[Internal, str]]:
    """Each entry that claims the installed releases, and why it is not as described ("" where it is).
    Formats are held to the real readers by their tests (`Internal.checked_by`)."""
    results = []
    for internal in INTERNALS:
        if internal.applies() and internal.use != "format":
            results.append((internal, _resolve_problem(internal.name)))
    return results


def _resolve_problem(dotted: str) -> str:
    """ "" where `dotted` names something on the installed release, else what is missing. An
    instance attribute (``CachingAutotuner.launchers``) is looked for in its class's source."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            value: Any = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for i, attr in enumerate(parts[cut:]):
            if hasattr(value, attr):
                value = getattr(value, attr)
            elif i == len(parts[cut:]) - 1 and isinstance(value, type) and _assigned_in(value, attr):
                return ""
            else:
                return f"no {attr} in {'.'.join(parts[: cut + i])}"
        return ""
    return f"no module {parts[0]}"


def _assigned_in(cls: type, attr: str) -> bool:
    import inspect

    try:  # assigned, annotated or not (torch 2.14: ``self.inductor_meta: InductorMeta = ...``)
        return re.search(rf"self\.{re.escape(attr)}\s*(?::[^=\n]*)?=(?!=)", inspect.getsource(cls)) is not None
    except (OSError, TypeError):
        return False


# --------------------------------------------------------------------------- releases


def torch_release() -> tuple[int, int] | None:
    """The installed torch's (major, minor), read without importing torch."""
    torch_mod = sys.modules.get("torch")
    version = getattr(torch_mod, "__version__", None) if torch_mod is not None else _source_constant("torch", "version")
    return _release(version)


def triton_release() -> tuple[int, int] | None:
    triton_mod = sys.modules.get("triton")
    version = getattr(triton_mod, "__version__", None) if triton_mod is not None else _source_constant("triton", "")
    return _release(version)


def _source_constant(package: str, module: str) -> str | None:
    import importlib.util

    with contextlib.suppress(ImportError, ValueError, OSError):
        spec = importlib.util.find_spec(package)
        if spec is not None and spec.origin:
            path = os.path.join(os.path.dirname(spec.origin), f"{module or '__init__'}.py")
            with open(path, encoding="utf-8") as f:
                match = re.search(r"^__version__\s*(?::[^=]*)?=\s*'([^']*)'", f.read(1 << 20), re.MULTILINE)
            return match.group(1) if match else None
    return None


def _release(version: object) -> tuple[int, int] | None:
    parts = str(version or "").split(".")
    try:
        return int(parts[0]), int(parts[1])
    except (IndexError, ValueError):
        return None


def _known(package: str, feature: str) -> bool:
    """Whether the installed release of `package` is one `feature` was written for; one log line if not."""
    window = TORCH if package == "torch" else TRITON
    release = torch_release() if package == "torch" else triton_release()
    if release is not None and window[0] <= release <= window[1]:
        return True
    first, last = (f"{a}.{b}" for a, b in window)
    found = "none" if release is None else f"{release[0]}.{release[1]}"
    log.warning(
        "atpack: %s %s is not a release atpack knows (%s to %s): %s is off", package, found, first, last, feature
    )
    return False


# --------------------------------------------------------------------------- folders


def inductor_dir() -> str | None:
    """The Inductor folder of this process, where Inductor is imported (None: ask `atpack.folders`)."""
    utils = sys.modules.get("torch._inductor.runtime.cache_dir_utils")
    with contextlib.suppress(Exception):
        return str(utils.cache_dir()) if utils is not None else None
    return None


def default_inductor_dir() -> str | None:
    """Inductor's default folder (the variable unset), where Inductor is imported."""
    utils = sys.modules.get("torch._inductor.runtime.cache_dir_utils")
    with contextlib.suppress(Exception):
        return str(utils.default_cache_dir()) if utils is not None else None
    return None


def tritons_own_dir() -> str | None:
    """`triton.knobs.cache.dir`, where Triton is imported."""
    cache = getattr(sys.modules.get("triton.knobs"), "cache", None)
    folder = getattr(cache, "dir", None)
    return folder if isinstance(folder, str) else None


# --------------------------------------------------------------------------- build keys


def compiler_imported(package: str) -> bool:
    """Whether torch's (Inductor's) or Triton's compiler is imported in this process: then its
    build key costs nothing more to compute."""
    return ("torch._inductor.codecache" if package == "torch" else "triton.compiler.compiler") in sys.modules


def torch_key() -> str | None:
    """torch's build key (imports Inductor: seconds), or None."""
    try:
        from torch._inductor.codecache import torch_key as key
    except ImportError:
        return None
    return str(key().hex())


def triton_key() -> str | None:
    """Triton's build key (imports Triton's compiler), or None."""
    try:
        from triton.runtime.cache import triton_key as key
    except ImportError:
        try:
            from triton.compiler.compiler import triton_key as key
        except ImportError:
            return None
    return str(key())


def backend_hash(compute_capability: str) -> str | None:
    """The hash of Triton's CUDA backend for a GPU of `compute_capability`, computed for that
    target without a driver (no CUDA context, no host module built)."""
    try:
        from triton.backends.compiler import GPUTarget
        from triton.compiler.compiler import make_backend

        major, minor = compute_capability.split(".")
        return str(make_backend(GPUTarget("cuda", int(major) * 10 + int(minor), 32)).hash())
    except Exception as e:
        log.debug("no triton backend hash: %s", e)
        return None


# --------------------------------------------------------------------------- records


def record_path(module: str, inductor_meta: Any = None) -> str | None:
    """The `.best_config` path torch gives the kernel module `module` (None: cannot tell), by
    torch's own key derivation, which changed between releases."""
    try:
        from torch._inductor.runtime.autotune_cache import AutotuneCache

        cache = AutotuneCache.create(inductor_meta or {}, module, "")
    except Exception:
        return None
    local = getattr(cache, "local_cache", None)
    return str(local[1]) if local else None  # another shape raises: the caller's guard logs it


def kernel_names(module_source: str) -> set[str]:
    """The Triton kernels an Inductor kernel module defines (``def triton_...(``)."""
    return set(_KERNEL_DEF.findall(module_source))


_KERNEL_DEF = re.compile(r"^def (triton_\w+)\(", re.MULTILINE)


_HEURISTIC = re.compile(r"^@triton_heuristics\.(\w+)\(", re.MULTILINE)
_SIZE_HINTS = re.compile(r"size_hints=(\{[^}\n]*\}|\[[^\]\n]*\])")
_JIT_DEF = re.compile(r"^@triton\.jit\s*\ndef (triton_\w*)\(", re.MULTILINE)


def kernel_problem(source: str) -> tuple[str, str] | None:
    """An Inductor kernel module's problem, and its words: a digest of its heuristic, its size
    hints and its Triton function's text with the function's name left out. What names the
    machine and the build (the device's properties, the backend hash, the module's path) is in
    the decorator's other arguments, which the digest leaves out; None for a module of no one
    Triton kernel."""
    heuristic = _HEURISTIC.search(source)
    sizes = _SIZE_HINTS.search(source)
    defined = list(_JIT_DEF.finditer(source))
    if heuristic is None or sizes is None or len(defined) != 1:
        return None
    from .hints import problem_digest

    name = defined[0][1]
    body = _function(source[defined[0].start() :]).replace(f"def {name}(", "def KERNEL(", 1)
    digest = problem_digest([heuristic[1], sizes[1], body])
    return digest, f"{heuristic[1]} {sizes[1]}"


@functools.lru_cache(maxsize=4096)
def module_problem(path: str) -> tuple[str, str] | None:
    """`kernel_problem` of the kernel module at `path`, read once a process: a module's name is
    the hash of its source, so the same path is the same module (the lookup record, the hints'
    narrowing and the search's start each ask for it)."""
    return kernel_problem(_head(path))


def _function(text: str) -> str:
    """The function `text` starts with: up to the next line that is not indented (a benchmark
    module's harness, a comment), trailing blank lines left out."""
    lines = text.split("\n")
    end = next((i for i, line in enumerate(lines[2:], 2) if line and not line[0].isspace()), len(lines))
    return "\n".join(lines[:end]).rstrip()


def is_benchmark_module(module_source: str) -> bool:
    """Whether an Inductor module is a fusion benchmark (it carries a ``get_args`` harness)."""
    return "\ndef get_args(" in module_source


def saved_megacache() -> bytes | None:
    """What ``torch.compiler.save_cache_artifacts()`` returns in this process (None: nothing, or no torch)."""
    torch_mod: Any = sys.modules.get("torch")
    if torch_mod is None or not hasattr(torch_mod, "compiler"):
        return None
    saved = torch_mod.compiler.save_cache_artifacts()
    return bytes(saved[0]) if saved else None


# --------------------------------------------------------------------------- patches


@dataclasses.dataclass
class Patch:
    """One attribute of torch's or Triton's replaced by atpack's wrapper of it."""

    owner: Any
    attr: str
    original: Any
    """What `vars(owner)[attr]` held: put back as it was (a classmethod as its descriptor)."""
    wrapper: Any
    feature: str

    @property
    def name(self) -> str:
        if isinstance(self.owner, types.ModuleType):
            return f"{self.owner.__name__}.{self.attr}"
        return f"{self.owner.__module__}.{self.owner.__qualname__}.{self.attr}"

    def undo(self) -> bool:
        """Put the original back; False where another wrapper now covers this one."""
        if vars(self.owner).get(self.attr) is not self.wrapper:
            return False
        setattr(self.owner, self.attr, self.original)
        return True


_patches: list[Patch] = []
_given_up: set[str] = set()


def _patch(owner: Any, attr: str, make: Callable[[Any], Any], feature: str) -> Patch:
    """Replace `owner.attr` with `make(current)`; `feature` names what the patch serves."""
    original = vars(owner).get(attr)
    if original is None:
        raise LookupError(f"{getattr(owner, '__qualname__', getattr(owner, '__name__', owner))}.{attr} is not there")
    current = getattr(owner, attr)
    wrapper = make(current)
    if isinstance(wrapper, types.FunctionType) and isinstance(current, types.FunctionType):
        # torch's name, not "wrapper": pickle names a function, and a bound method, by its name
        # (Inductor's compile workers send autotuners that hold `AutotuneCache.save` bound)
        functools.update_wrapper(wrapper, current)
    with contextlib.suppress(AttributeError, TypeError):
        wrapper._atpack_feature = feature
    patch = Patch(owner, attr, original, wrapper, feature)
    setattr(owner, attr, wrapper)
    _patches.append(patch)
    return patch


def patched() -> list[str]:
    """The torch and Triton functions atpack's wrappers stand in for now."""
    return [p.name for p in _patches if vars(p.owner).get(p.attr) is p.wrapper]


def uninstall(feature: str | None = None) -> None:
    """Put torch's and Triton's own functions back (those of one `feature`, or all), the latest
    first, so that each finds its own wrapper on top; one that another feature's wrapper covers
    stays, said in one line, until that one is gone too."""
    for patch in reversed([p for p in _patches if feature is None or p.feature == feature]):
        _unpatch(patch)
    if feature in (None, _LOOKUPS):
        _stop_watching_lookups()
        for slot, mine, before in reversed(_listeners):
            if slot.listener is mine:
                slot.listener = before
        _listeners.clear()


def _guarded(feature: str, part: Callable[..., _T], *args: Any) -> _T | None:
    """`part(*args)`, atpack's part of a wrapper; None once `feature` gave up in this process.
    The first error gives it up, with one log line: torch decides alone from then on."""
    if feature in _given_up:
        return None
    try:
        return part(*args)
    except Exception as e:
        _given_up.add(feature)
        log.warning(
            "atpack: the %s met a torch internal it does not know (%s: %s); torch decides now",
            feature,
            type(e).__name__,
            e,
        )
        log.debug("the %s gave up here", feature, exc_info=True)
        return None


# --------------------------------------------------------------------------- the replay


_REPLAY = "replay"


def install_replay_on_import(why: str = "") -> None:
    """Install the replay once Inductor's runtime module is imported (now, if it is)."""

    def install(_module: types.ModuleType) -> None:
        if install_replay() and why:
            log.info("atpack: replaying recorded tuning results (%s)", why)

    after_import(HEURISTICS, install)


def install_replay() -> bool:
    """Install the replay of recorded tuning results in this process (idempotent; see
    `atpack.replay`). False, with one log line, where this torch is not a release it knows or its
    internals are not as described: nothing changes then."""
    if any(p.feature == _REPLAY for p in _patches):
        return True
    if not _known("torch", "the replay"):
        return False
    try:
        from torch._inductor.runtime import autotune_cache, triton_heuristics
    except ImportError:
        return False
    autotuner = triton_heuristics.CachingAutotuner
    needed = ("coordinate_descent_tuning", "autotune_to_one_config")
    if not all(n in vars(autotuner) for n in needed) or not hasattr(autotune_cache.AutotuneCache, "create"):
        log.warning("atpack: this torch's CachingAutotuner is not the one atpack knows: the replay is off")
        return False

    def coordinate_descent_tuning(original: Any) -> Any:
        def wrapper(self: Any, launcher: Any, *args: Any, **kwargs: Any) -> Any:
            if _guarded(_REPLAY, _already_searched, self, launcher):
                return launcher
            return original(self, launcher, *args, **kwargs)

        return wrapper

    def autotune_to_one_config(original: Any) -> Any:
        def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            if _guarded(_REPLAY, _keep_recorded_winner, self):
                return None
            return original(self, *args, **kwargs)

        return wrapper

    def check_autotune_cache(original: Any) -> Any:
        def wrapper(configs: Any, filename: Any, inductor_meta: Any, *args: Any, **kwargs: Any) -> Any:
            return original(configs, _guarded(_REPLAY, _here, filename) or filename, inductor_meta, *args, **kwargs)

        return wrapper

    _patch(autotuner, "coordinate_descent_tuning", coordinate_descent_tuning, _REPLAY)
    _patch(autotuner, "autotune_to_one_config", autotune_to_one_config, _REPLAY)
    if "check_autotune_cache" in vars(triton_heuristics):
        _patch(triton_heuristics, "check_autotune_cache", check_autotune_cache, _REPLAY)
    return True


def _already_searched(autotuner: Any, launcher: Any) -> bool:
    """Whether coordinate descent already ran for this kernel: then the launcher holds its result,
    or (a kernel restored from the FX graph cache) the result the compiled graph was saved with;
    either way, searching again would only chase benchmark noise. Marks the launcher's config."""
    best = _recorded(autotuner)
    if best is None or best.get("found_by_coordesc") is not True:
        return False
    launcher.config.found_by_coordesc = True
    return True


def _keep_recorded_winner(autotuner: Any) -> bool:
    """When the recorded winner is among the candidates, keep it alone: no benchmark, no re-save."""
    best = _recorded(autotuner)
    if best is None:
        return False
    chosen = [launcher for launcher in autotuner.launchers if _same(best, launcher.config)]
    if len(chosen) != 1:
        return False
    if best.get("found_by_coordesc") is True:
        chosen[0].config.found_by_coordesc = True
    autotuner.launchers = chosen
    return True


def _here(filename: Any) -> Any:
    """A kernel module's path in this process's Inductor folder: the same path if it is in it,
    else the same shard and name in it. A kernel restored from the FX graph cache carries the path
    it was compiled at, on the machine that compiled it; its record is looked for here instead,
    where a pack put it."""
    if not isinstance(filename, str) or not os.path.isabs(filename):
        return filename
    folder = inductor_dir()
    if folder is None:
        return filename
    root = os.path.abspath(folder)
    if os.path.abspath(filename).startswith(root + os.sep):
        return filename
    return os.path.join(root, os.path.basename(os.path.dirname(filename)), os.path.basename(filename))


def _recorded(autotuner: Any) -> dict[str, Any] | None:
    """The kernel's `.best_config`, if it has one. Its `configs_hash` is not checked: the callers
    only use a record that names one of the kernel's current configs exactly, or a mark."""
    filename = getattr(autotuner, "filename", None)
    path = record_path(_here(filename), getattr(autotuner, "inductor_meta", {})) if filename else None
    if path is None:
        return None
    import json

    try:
        with open(path, "rb") as f:
            best = json.load(f)
    except (OSError, ValueError, RecursionError):  # a file nested too deeply for Python's parser
        return None
    return best if isinstance(best, dict) else None


def _same(best: dict[str, Any], config: Any) -> bool:
    """Whether a `.best_config` names `config` (its block sizes, warps and stages)."""
    return bool(
        best.get("num_warps") == getattr(config, "num_warps", None)
        and best.get("num_stages") == getattr(config, "num_stages", None)
        and all(best.get(k) == v for k, v in getattr(config, "kwargs", {}).items())
    )


# --------------------------------------------------------------------------- capture's watches


_CAPTURE = "capture"


def watch_records(record: Callable[[str, tuple[Any, ...]], None], undo: contextlib.ExitStack) -> None:
    """Call `record(path, (kwargs, num_warps, num_stages))` for every `.best_config` torch saves
    as coordinate descent's result, or saves later for a config coordinate descent found (torch
    records such a save as a plain autotuning result), from when its module is imported."""

    def watch(module: types.ModuleType) -> None:
        if not _known("torch", "capturing coordinate descent's results"):
            return

        def save(original: Any) -> Any:
            def wrapper(
                cache: Any, config: Any, time_taken_ns: Any, found_by_coordesc: bool = False, *a: Any, **k: Any
            ) -> Any:
                result = original(cache, config, time_taken_ns, found_by_coordesc, *a, **k)
                _guarded(_CAPTURE, _saved, record, cache, config, found_by_coordesc)
                return result

            return wrapper

        patch = _patch(module.AutotuneCache, "save", save, _CAPTURE)
        undo.callback(_unpatch, patch)

    undo.callback(after_import(_AUTOTUNE_CACHE, watch))


def _saved(record: Callable[[str, tuple[Any, ...]], None], cache: Any, config: Any, found_by_coordesc: bool) -> None:
    local = getattr(cache, "local_cache", None)
    if local and (found_by_coordesc or getattr(config, "found_by_coordesc", False) is True):
        record(str(local[1]), (tuple(config.kwargs.items()), config.num_warps, config.num_stages))


def watch_autotune_runs(ran: Callable[[], None], undo: contextlib.ExitStack) -> None:
    """Call `ran()` whenever a ``@triton.autotune`` kernel tunes, from when Triton's autotuner is
    imported: through Triton's own autotune listener where it has one (3.8+), else by wrapping
    its autotuner's run."""

    def watch(module: types.ModuleType) -> None:
        if not _known("triton", "noticing @triton.autotune runs"):
            return
        tuning = getattr(getattr(sys.modules.get("triton"), "knobs", None), "autotuning", None)
        if tuning is not None and hasattr(tuning, "listener"):
            _listen(tuning, ran, undo)
            return

        def run(original: Any) -> Any:
            def wrapper(*args: Any, **kwargs: Any) -> Any:
                _guarded(_CAPTURE, ran)
                return original(*args, **kwargs)

            return wrapper

        patch = _patch(module.Autotuner, "run", run, _CAPTURE)
        undo.callback(_unpatch, patch)

    undo.callback(after_import(_AUTOTUNER, watch))


def _listen(tuning: Any, ran: Callable[[], None], undo: contextlib.ExitStack) -> None:
    """Triton's autotune listener (one slot): atpack's, calling whoever listened before."""
    before = tuning.listener

    def listener(**event: Any) -> None:
        _guarded(_CAPTURE, ran)
        if before is not None:
            before(**event)

    tuning.listener = listener
    undo.callback(lambda: setattr(tuning, "listener", before) if tuning.listener is listener else None)


def watch_winners(won: Callable[[str], None], undo: contextlib.ExitStack) -> None:
    """Call `won(folder)` for each kernel torch names the winner of its tuning (torch 2.12+)."""

    def watch(module: types.ModuleType) -> None:
        bundler: Any = getattr(module, "TritonBundler", None)
        if bundler is None or "put_winner" not in vars(bundler) or not _known("torch", "noticing tuning winners"):
            return

        def put_winner(original: Any) -> Any:
            @functools.wraps(original.__func__)  # torch's name: pickle names a method by it
            def wrapper(cls: Any, kernel_hash: str, *args: Any, **kwargs: Any) -> Any:
                result = original(kernel_hash, *args, **kwargs)
                _guarded(_CAPTURE, won, kernel_hash)
                return result

            return classmethod(wrapper)

        patch = _patch(bundler, "put_winner", put_winner, _CAPTURE)
        undo.callback(_unpatch, patch)

    undo.callback(after_import(_BUNDLER, watch))


# --------------------------------------------------------------------------- lookups (explain)


_LOOKUPS = "lookup record"
_DEBUG_LINE = re.compile(r"\[([^\]]{0,128})\] ([^:]{1,512}): (.*)", re.DOTALL)
_TRITON_OPTIONS_SHOWN = ("num_warps", "num_ctas", "num_stages", "maxnreg", "debug", "enable_fp_fusion", "arch")


class LookupSink(Protocol):
    """What `watch_lookups` reports to (`atpack.lookups.Recorder`)."""

    def looked_up(
        self,
        cache: str,
        key: str,
        hit: bool,
        *,
        name: str = ...,
        components: Iterable[tuple[str, str, str]] = ...,
        seconds: float = ...,
    ) -> None: ...

    def saved(self, cache: str, key: str) -> None: ...

    def benchmarked(self, seconds: float) -> None: ...

    def spent(self, seconds: float) -> None: ...


class _Sinks:
    """Every sink listening now. The hooks are installed once a process, the first time one
    listens, and report to each; with none listening they pass straight through to torch's own
    function. A capture that ends stops listening: it leaves no layer of its own behind."""

    def __init__(self) -> None:
        self.sinks: list[LookupSink] = []
        self.cancels: list[Callable[[], None]] = []

    def __bool__(self) -> bool:
        return bool(self.sinks) and _LOOKUPS not in _given_up

    def forget(self, sink: LookupSink) -> None:
        """`sink` stops listening; with the last one, the hooks go (a capture patches only for its
        own duration)."""
        with contextlib.suppress(ValueError):
            self.sinks.remove(sink)
        if not self.sinks:
            uninstall(_LOOKUPS)

    def looked_up(self, cache: str, key: str, hit: bool, **details: Any) -> None:
        for sink in list(self.sinks):
            sink.looked_up(cache, key, hit, **details)

    def saved(self, cache: str, key: str) -> None:
        for sink in list(self.sinks):
            sink.saved(cache, key)

    def benchmarked(self, seconds: float) -> None:
        for sink in list(self.sinks):
            sink.benchmarked(seconds)

    def spent(self, seconds: float) -> None:
        for sink in list(self.sinks):
            sink.spent(seconds)


_SINKS = _Sinks()


def watch_lookups(sink: LookupSink, undo: contextlib.ExitStack) -> None:
    """Report every lookup of torch's and Triton's caches to `sink` until `undo` closes, from when
    each cache's module is imported: FX graphs and AOT autograd entries (their keys' components as
    torch lists them), Inductor's `.best_config` records, Triton's compiled kernels and
    ``@triton.autotune`` results; and every benchmark call. Observes only: every wrapper returns
    what torch's function returned, and raises what it raised."""
    _SINKS.sinks.append(sink)
    undo.callback(_SINKS.forget, sink)
    if _SINKS.cancels:
        return
    _SINKS.cancels += [
        after_import(_CODECACHE, _watch_fx_graphs),
        after_import(_AOT_CACHE, _watch_aot_autograd),
        after_import(HEURISTICS, _watch_records_read),
        after_import(_CODECACHE, _watch_gemm_timings),
        after_import(_BENCHMARKING, _watch_benchmarks),
        after_import("triton.compiler.compiler", lambda _m: _watch_triton_compiles()),
        after_import(_AUTOTUNER, _watch_triton_autotune),
    ]


def _stop_watching_lookups() -> None:
    """What `uninstall` does for the lookup record: hooks not installed yet never will be."""
    for cancel in _SINKS.cancels:
        cancel()
    _SINKS.cancels.clear()


def _hook(owner: Any, attr: str, make: Callable[[Any], Any]) -> None:
    """`_patch` for the lookup record, once: a hook left covered by another feature's wrapper
    when the record stopped still reports to the sinks, so it is not wrapped a second time."""
    if not any(p.owner is owner and p.attr == attr and p.feature == _LOOKUPS for p in _patches):
        _patch(owner, attr, make, _LOOKUPS)


def _observed(part: Callable[..., _T], *args: Any) -> _T | None:
    """`_guarded`, its time reported as the record's own cost."""
    start = _now()
    try:
        return _guarded(_LOOKUPS, part, *args)
    finally:
        _guarded(_LOOKUPS, _SINKS.spent, _now() - start)


def _components(debug_lines: Any) -> list[tuple[str, str, str]]:
    """torch's debug lines of a key (``[hash] name: value``) as (name, hash, value)."""
    parts = []
    for line in debug_lines or ():
        if isinstance(line, str) and (m := _DEBUG_LINE.fullmatch(line[:4096])):
            parts.append((m[2], m[1], m[3]))
    return parts


def _static_wrap(owner: Any, attr: str, after: Callable[..., None]) -> None:
    """Wrap the staticmethod `owner.attr`: `after(result, *args)` runs, guarded, after each call."""

    def make(original: Any) -> Any:
        @functools.wraps(original)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            result = original(*args, **kwargs)
            if _SINKS:
                _observed(after, result, *args)
            return result

        return staticmethod(wrapper)

    _hook(owner, attr, make)


def _watch_fx_graphs(module: types.ModuleType) -> None:
    if not _known("torch", "the lookup record"):
        return
    cache = module.FxGraphCache

    def looked_up(result: Any, key: str, debug_lines: Any, *rest: Any) -> None:
        _SINKS.looked_up("fx_graph", key, result[0] is not None, components=_components(debug_lines))

    _static_wrap(cache, "load_with_key", looked_up)
    _static_wrap(cache, "_save_graph", lambda _result, key, *rest: _SINKS.saved("fx_graph", key))


def _watch_aot_autograd(module: types.ModuleType) -> None:
    if not _known("torch", "the lookup record"):
        return
    lines: dict[str, Any] = {}  # the keys of one try_load and their components: cleared at each
    if "_get_debug_lines_for_cache_key" in vars(module):
        # torch lists a key's components only where debug logging is on: where it did not, list
        # them too (once per graph: what the lookup record costs), beside torch's own result
        def debug_lines(original: Any) -> Any:
            def wrapper(pickler: Any, details: Any, key: str, *args: Any, **kwargs: Any) -> Any:
                result = original(pickler, details, key, *args, **kwargs)
                if not result and _SINKS and len(lines) < 64:
                    lines[key] = _observed(pickler.debug_lines, details)
                return result

            return wrapper

        _hook(module, "_get_debug_lines_for_cache_key", debug_lines)

    def cache_key(original: Any) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            result = original(*args, **kwargs)
            if _SINKS and isinstance(result, tuple) and len(result) == 2 and result[1] and len(lines) < 64:
                lines[str(result[0])] = result[1]
            return result

        return wrapper

    _hook(module, "autograd_cache_key", cache_key)
    cache = module.AOTAutogradCache
    looked: list[str] = []

    def lookup(original: Any) -> Any:
        @functools.wraps(original)
        def wrapper(key: str, *args: Any, **kwargs: Any) -> Any:
            looked.append(key)
            return original(key, *args, **kwargs)

        return staticmethod(wrapper)

    def load(original: Any) -> Any:
        # the outcome as torch counts it: an entry found can still miss (a graph of it is not there)
        @functools.wraps(original)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if not _SINKS:
                return original(*args, **kwargs)
            before = _guarded(_LOOKUPS, _aot_counts)
            looked.clear()
            lines.clear()
            try:
                return original(*args, **kwargs)
            finally:
                if before is not None:
                    _observed(_aot_looked_up, lines, looked, before)

        return staticmethod(wrapper)

    _hook(cache, "_lookup", lookup)
    _hook(cache, "try_load" if "try_load" in vars(cache) else "load", load)
    _static_wrap(cache, "save", lambda _result, key, *rest: _SINKS.saved("aot_autograd", key))


def _aot_counts() -> tuple[int, int]:
    counted = sys.modules["torch._dynamo.utils"].counters["aot_autograd"]
    return counted["autograd_cache_hit"], counted["autograd_cache_miss"]


def _aot_looked_up(lines: dict[str, Any], looked: list[str], before: tuple[int, int]) -> None:
    if not looked:
        return
    key = looked[-1]
    hits, misses = _aot_counts()
    if hits > before[0] or misses > before[1]:  # else a bypass: nothing was looked up
        _SINKS.looked_up("aot_autograd", key, hits > before[0], components=_components(lines.pop(key, ())))


def _watch_records_read(module: types.ModuleType) -> None:
    if not _known("torch", "the lookup record") or "check_autotune_cache" not in vars(module):
        return

    def check(original: Any) -> Any:
        def wrapper(configs: Any, filename: Any, inductor_meta: Any, *args: Any, **kwargs: Any) -> Any:
            result = original(configs, filename, inductor_meta, *args, **kwargs)
            if _SINKS:
                _observed(_record_read, module, configs, filename, inductor_meta, result)
            return result

        return wrapper

    _hook(module, "check_autotune_cache", check)


def _record_read(module: Any, configs: Any, filename: Any, meta: Any, result: Any) -> None:
    """One `.best_config` lookup: its path, and what the path and torch's check depend on."""
    info = result[2] if isinstance(result, tuple) and len(result) == 3 else {}
    state = info.get("autotune_cache_state") if isinstance(info, dict) else None
    local = getattr(result[1], "local_cache", None) if state in ("hit", "miss") else None
    if not local:
        return
    path = str(local[1])
    key = "/".join(path.split(os.sep)[-2:])
    configs_hash = module.hash_configs(configs)
    tag = str(getattr(sys.modules.get("torch.compiler.config"), "cache_key_tag", ""))
    source = os.path.basename(str(filename))
    parts = [
        ("source", source, source),
        ("configs", configs_hash, f"{len(configs)} configs"),
        ("cache_key_tag", tag, repr(tag)),
    ]
    if problem := module_problem(str(filename)):  # what a hint for this kernel is matched by
        parts.append(("kernel", *problem))
    name = str(meta.get("kernel_name", "")) if isinstance(meta, dict) else ""
    _SINKS.looked_up("autotune", key, state == "hit", name=name, components=parts)


def _watch_gemm_timings(module: types.ModuleType) -> None:
    """Inductor's max-autotune GEMM timings: a lookup hits where torch needs no benchmark."""
    cache = getattr(module, "PersistentCache", None)
    if cache is None or "lookup" not in vars(cache) or not _known("torch", "the lookup record"):
        return

    def lookup(original: Any) -> Any:
        def wrapper(self: Any, choices: Any, op: Any, inputs: Any, benchmark: Any, *args: Any, **kwargs: Any) -> Any:
            if not _SINKS or benchmark is None:  # no benchmark: a probe, not a lookup
                return original(self, choices, op, inputs, benchmark, *args, **kwargs)
            ran: list[float] = []

            def timed(*a: Any, **k: Any) -> Any:
                start = _now()
                try:
                    return benchmark(*a, **k)
                finally:
                    ran.append(_now() - start)

            result = original(self, choices, op, inputs, timed, *args, **kwargs)
            _observed(_gemm_looked_up, self, choices, op, inputs, ran)
            return result

        return wrapper

    _hook(cache, "lookup", lookup)


def gemm_key(system: str, op: str, inputs: str, precision: str) -> str:
    """The key a GEMM lookup is recorded under: the timing file's system hash, and a hash of what
    names the GEMM in it (its inputs can be longer than a key may be)."""
    return f"{system[:16]}/{_short_hash(chr(10).join((op, inputs, precision)))}"


def _gemm_looked_up(persistent: Any, choices: Any, op: Any, inputs: Any, ran: list[float]) -> None:
    system = getattr(persistent, "system", None) or {}
    system_hash = str(system.get("hash", "")) if isinstance(system, dict) else ""
    precision = str(sys.modules["torch"].get_float32_matmul_precision())
    names = sorted(str(c.hash_key()) for c in choices)
    facts = {k: v for k, v in system.items() if k != "hash"} if isinstance(system, dict) else {}
    device = json.dumps(facts, sort_keys=True, default=str)
    parts = [
        ("system", system_hash, device),
        ("op", str(op), str(op)),
        ("inputs", _short_hash(str(inputs)), str(inputs)),
        ("precision", precision, precision),
        ("choices", _short_hash(chr(10).join(names)), f"{len(names)} choices"),
    ]
    key = gemm_key(system_hash, str(op), str(inputs), precision)
    _SINKS.looked_up("gemm", key, not ran, name=str(op), components=parts, seconds=sum(ran))


def _timed_benchmark(original: Any) -> Any:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not _SINKS:
            return original(*args, **kwargs)
        start = _now()
        try:
            return original(*args, **kwargs)
        finally:
            _guarded(_LOOKUPS, _SINKS.benchmarked, _now() - start)

    return wrapper


def _watch_benchmarks(module: types.ModuleType) -> None:
    """Inductor's benchmarker: its class's methods (an instance's own attribute would not pickle)."""
    bench = getattr(module, "benchmarker", None)
    if bench is None or not _known("torch", "the lookup record"):
        return
    for method in ("benchmark_gpu", "benchmark_cpu"):  # benchmark_gpu_with_cuda_graph calls benchmark_gpu
        owner = next((c for c in type(bench).__mro__ if method in vars(c)), None)
        if owner is not None:
            _hook(owner, method, _timed_benchmark)


def _now() -> float:
    import time

    return time.perf_counter()


def _watch_triton_compiles() -> None:
    compilation = getattr(getattr(sys.modules.get("triton"), "knobs", None), "compilation", None)
    if compilation is None or not hasattr(compilation, "listener") or not _known("triton", "the lookup record"):
        return
    before = compilation.listener

    def listener(**event: Any) -> None:
        if _SINKS:
            _observed(_compiled, event)
        if before is not None:
            before(**event)

    compilation.listener = listener
    _listeners.append((compilation, listener, before))


_listeners: list[tuple[Any, Any, Any]] = []
"""Triton's compilation listener slot: atpack's listener, and the one it calls (put back by `uninstall`)."""


def _compiled(event: dict[str, Any]) -> None:
    """One Triton compile, from its listener: the kernel's folder (its key), and what the key hashes."""
    group = event.get("metadata_group") or {}
    paths = [str(p) for p in group.values()]
    if not paths:
        return
    key = os.path.basename(os.path.dirname(paths[0]))
    src: Any = event.get("src")
    metadata = event.get("metadata") or {}
    source = str(src.hash()) if hasattr(src, "hash") else ""
    parts = [("source", source, source[:16])]
    target = str(metadata.get("target", ""))
    parts.append(("target", target, target))
    for option in ("triton_version", *_TRITON_OPTIONS_SHOWN):
        if option in metadata:
            value = repr(metadata[option])
            parts.append((option, value, value))
    times = event.get("times")
    total = getattr(times, "total", 0) if not event.get("cache_hit") else 0
    name = str(getattr(src, "name", "") or metadata.get("name", ""))
    hit = bool(event.get("cache_hit"))
    _SINKS.looked_up("triton_kernel", key, hit, name=name, components=parts, seconds=total / 1e6)


def _watch_triton_autotune(module: types.ModuleType) -> None:
    autotuner = getattr(module, "Autotuner", None)
    if autotuner is None or "check_disk_cache" not in vars(autotuner) or not _known("triton", "the lookup record"):
        return

    def check(original: Any) -> Any:
        def wrapper(self: Any, tuning_key: Any, configs: Any, bench_fn: Any, *args: Any, **kwargs: Any) -> Any:
            if not _SINKS:
                return original(self, tuning_key, configs, bench_fn, *args, **kwargs)
            start = _now()
            hit = original(self, tuning_key, configs, bench_fn, *args, **kwargs)
            took = _now() - start  # a miss benchmarks every config here
            # the key after Triton's own lookup, which computes what the key hashes first (triton_key: 0.3 s
            # on this project's CPU machine, measured by the review of the lookup record)
            parts = _observed(_autotune_key, module, self, tuning_key, configs)
            if parts is not None:
                key, name, components = parts
                seconds = 0.0 if hit else took
                _observed(_autotune_looked_up, key, bool(hit), name, components, seconds)
            return hit

        return wrapper

    _hook(autotuner, "check_disk_cache", check)
    if "_bench" in vars(autotuner):
        _hook(autotuner, "_bench", _timed_benchmark)


def _short_hash(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _autotune_looked_up(key: str, hit: bool, name: str, components: list[Any], seconds: float) -> None:
    _SINKS.looked_up("triton_autotune", key, hit, name=name, components=components, seconds=seconds)


def _autotune_key(module: Any, autotuner: Any, tuning_key: Any, configs: Any) -> tuple[str, str, list[Any]] | None:
    """The key of a ``@triton.autotune`` result as Triton's `check_disk_cache` makes it, part by
    part (tests/test_explain.py holds the key to the folder Triton writes)."""
    import base64
    import hashlib

    if not tuning_key or any(getattr(c, "pre_hook", None) for c in configs):
        return None
    fn = autotuner.fn
    while hasattr(fn, "fn") and not hasattr(fn, "cache_key"):
        fn = fn.fn
    target = module.driver.active.get_current_target()
    compiler = importlib.import_module("triton.compiler.compiler")
    triton_key = getattr(module, "triton_key", None) or compiler.triton_key  # 3.4: the compiler's
    env_vars = getattr(module, "get_cache_invalidating_env_vars", None)
    if env_vars is None:
        env_vars = importlib.import_module("triton._C.libtriton").get_cache_invalidating_env_vars
    named = [
        ("triton", str(triton_key())),
        ("backend", str(compiler.make_backend(target).hash())),
        ("source", str(fn.cache_key)),
        ("env", str(sorted(env_vars().items()))),
        ("tuning_key", str(tuning_key)),
    ]
    configs_text = [str(c) for c in configs]
    text = "-".join([v for _, v in named] + configs_text)
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    folder = base64.b32encode(bytes.fromhex(digest)).decode().rstrip("=")
    name = str(fn.__name__)
    parts = [(n, _short_hash(v), v if n in ("env", "tuning_key") else v[:64]) for n, v in named]
    joined = "\n".join(configs_text)
    parts.append(("configs", _short_hash(joined), f"{len(configs_text)} configs"))
    return f"{folder}/{name[:150]}", name, parts


# --------------------------------------------------------------------------- hints


_HINTS = "hints"


@dataclasses.dataclass
class _HintState:
    path: str = ""
    """The hints file (`atpack.hints.read`)."""
    hints: Any = None
    """This process's `atpack.hints.Hints`, read at the first lookup that could use one."""


_hinting = _HintState()


def install_hints_on_import(path: str) -> None:
    """Narrow the candidates of every missed lookup by the hints in the file `path` (`atpack.hints`):
    Inductor's kernels' configs, max-autotune GEMM choices, ``@triton.autotune`` configs, from
    when each one's module is imported. Each wrapper returns what torch's or Triton's function
    returns, given a shorter list of their own candidates where a hint names some."""
    if _hinting.path:
        return
    _hinting.path = path
    after_import(HEURISTICS, _hint_kernels)
    after_import(_CODECACHE, _hint_gemms)
    after_import(_AUTOTUNER, _hint_autotune)


def _process_hints() -> Any:
    if _hinting.hints is None:
        from . import hints

        try:
            _hinting.hints = hints.Hints(hints.read(_hinting.path))
        except Exception as e:  # a file that is not atpack's: no hints, said once
            log.warning("atpack: no hints in this process (%s)", e)
            _hinting.hints = hints.Hints(())
        else:
            import atexit

            atexit.register(_say_hinted, _hinting.hints)
    return _hinting.hints


def _say_hinted(hints: Any) -> None:
    if hints.used:
        used = ", ".join(f"{n} {cache}" for cache, n in sorted(hints.used.items()))
        log.info("atpack: lookups tuned among hinted candidates in this process: %s", used)


def _hint_kernels(module: types.ModuleType) -> None:
    """Inductor's kernels: where a kernel's `.best_config` lookup misses, its configs narrowed."""
    if "check_autotune_cache" not in vars(module) or not _known("torch", "the hints"):
        return

    def check(original: Any) -> Any:
        def wrapper(configs: Any, filename: Any, inductor_meta: Any, *args: Any, **kwargs: Any) -> Any:
            result = original(configs, filename, inductor_meta, *args, **kwargs)
            return _guarded(_HINTS, _narrowed_kernel, result, filename, inductor_meta) or result

        return wrapper

    def coordinate_descent_tuning(original: Any) -> Any:
        def wrapper(self: Any, launcher: Any, *args: Any, **kwargs: Any) -> Any:
            start = _guarded(_HINTS, _search_start, self, launcher)
            return original(self, start or launcher, *args, **kwargs)

        return wrapper

    _patch(module, "check_autotune_cache", check, _HINTS)
    tuner = getattr(module, "CachingAutotuner", None)
    if tuner is not None and "coordinate_descent_tuning" in vars(tuner):
        _patch(tuner, "coordinate_descent_tuning", coordinate_descent_tuning, _HINTS)


_SEARCHED = ("pointwise", "reduction", "persistent_reduction")
"""The kernels whose winner Inductor's coordinate descent searches for (where it is on)."""


def _narrowed_kernel(result: Any, filename: Any, meta: Any) -> Any:
    """A missed kernel's configs, narrowed: to the hinted ones and torch's first; to its first
    alone where a search will start from the hinted winner (`_search_start`) instead of from the
    best of them."""
    from .hints import config_of

    configs, cache, info = result
    if info.get("autotune_cache_state") != "miss" or len(configs) < 2 or not isinstance(filename, str):
        return None
    problem = module_problem(filename)
    if problem is None:
        return None
    hints = _process_hints()
    hint, start = hints.get("autotune", problem[0]), hints.search_start(problem[0])
    if hint is not None and start and _start_config(configs[0], start) and _searches(meta, problem[1]):
        hints.said(hint, f"1 of {len(configs)} candidates kept, a search to start from the recorded winner")
        return [configs[0]], cache, info
    values = [config_of(c.kwargs.items(), num_warps=c.num_warps, num_stages=c.num_stages) for c in configs]
    kept = hints.narrowed("autotune", problem[0], values)
    return None if kept is None else ([configs[i] for i in kept], cache, info)


def _searches(meta: Any, words: str) -> bool:
    """Whether Inductor's coordinate descent will search this kernel's config (torch's
    `_should_coordesc_tune`, conservatively: deterministic algorithms turn it off for some)."""
    return (
        isinstance(meta, dict)
        and bool(meta.get("coordinate_descent_tuning"))
        and not meta.get("are_deterministic_algorithms_enabled")
        and words.split(" ")[0] in _SEARCHED
    )


def _start_config(config: Any, values: dict[str, Any]) -> Any:
    """`config` with the block sizes, warps and stages of a hint's `values`, where they have its
    shape (the same block names) and are integers (block sizes and warps powers of two); else
    None. A hints file is data."""
    import copy

    launch = ("num_warps", "num_stages")
    if {k for k in values if k not in launch} != set(config.kwargs) or not all(k in values for k in launch):
        return None
    for name, value in values.items():
        if type(value) is not int or value < (0 if name == "num_stages" else 1) or value > 1 << 16:
            return None
        if name != "num_stages" and value & (value - 1):
            return None
    start = copy.copy(config)
    start.kwargs = {k: values[k] for k in config.kwargs}
    start.num_warps, start.num_stages = values["num_warps"], values["num_stages"]
    return start


def _searchable(tuner: Any, config: Any) -> bool:
    """Whether the search could reach `config` here: within the bounds torch's search keeps to
    for this kernel."""
    too_small = getattr(tuner, "value_too_small", lambda name, value: False)  # torch 2.8 has none
    for name, value in [*config.kwargs.items(), ("num_warps", config.num_warps)]:
        if tuner.value_too_large(name, value) or too_small(name, value):
            return False
    return bool(tuner.is_valid_config(config)) if hasattr(tuner, "is_valid_config") else True


def _search_start(autotuner: Any, launcher: Any) -> Any:
    """A launcher of the hinted winner, where a search for this kernel is about to start and the
    hint's winner was a search's: the search then starts there (and benchmarks its neighbours,
    as it would any start's), not from the launcher torch has. None: torch's start."""
    config = launcher.config
    filename = getattr(autotuner, "filename", None)
    if getattr(config, "found_by_coordesc", False) or not isinstance(filename, str):
        return None
    problem = module_problem(filename)
    hints = _process_hints()
    values = hints.search_start(problem[0]) if problem else None
    start = _start_config(config, values) if values else None
    if start is None or not _searchable(autotuner.coordesc_tuner, start):
        return None
    if (start.kwargs, start.num_warps, start.num_stages) == (config.kwargs, config.num_warps, config.num_stages):
        return None
    with autotuner.lock:
        chosen = autotuner._precompile_config(start).make_launcher()
    hint = hints.get("autotune", problem[0]) if problem else None
    if hint is not None:
        hints.said(hint, "the search starts from the recorded winner")
    return chosen


def _hint_gemms(module: types.ModuleType) -> None:
    """Max-autotune GEMMs: where a GEMM's timings miss, only the hinted choices benchmarked."""
    cache = getattr(module, "PersistentCache", None)
    if cache is None or "lookup" not in vars(cache) or not _known("torch", "the hints"):
        return

    def lookup(original: Any) -> Any:
        def wrapper(self: Any, choices: Any, op: Any, inputs: Any, benchmark: Any, *args: Any, **kwargs: Any) -> Any:
            if benchmark is not None and _HINTS not in _given_up:
                override = kwargs.get("hint_override", args[0] if args else None)
                benchmark = _hinted_benchmark(benchmark, choices, op, inputs, override)
            return original(self, choices, op, inputs, benchmark, *args, **kwargs)

        return wrapper

    _patch(cache, "lookup", lookup, _HINTS)


def _hinted_benchmark(benchmark: Any, choices: Any, op: Any, inputs: Any, override: Any) -> Any:
    """`benchmark`, which on a miss measures the hinted choices (and torch's first) only: the
    others are timed as torch times a choice that cannot run, infinite."""

    def narrowed(candidates: Any) -> Any:
        kept = _guarded(_HINTS, _gemm_kept, candidates, op, inputs, override)
        if kept is None:
            return benchmark(candidates)
        timings = benchmark([candidates[i] for i in kept])
        return {c: timings.get(c, math.inf) for c in candidates}

    return narrowed


def _gemm_kept(candidates: Any, op: Any, inputs: Any, override: Any) -> list[int] | None:
    from .hints import gemm_problem

    key = str(inputs) if override is None else f"{inputs}_{override}"  # as PersistentCache keys its timings
    precision = str(sys.modules["torch"].get_float32_matmul_precision())
    values = [{"choice": str(c.hash_key())} for c in candidates]
    kept: list[int] | None = _process_hints().narrowed("gemm", gemm_problem(str(op), key, precision), values)
    return kept


def _hint_autotune(module: types.ModuleType) -> None:
    """``@triton.autotune``: where a result misses Triton's disk cache, only the hinted configs
    benchmarked; the others are timed as Triton times a config that cannot run, infinite."""
    autotuner = getattr(module, "Autotuner", None)
    needed = ("check_disk_cache", "_bench")
    if autotuner is None or not all(n in vars(autotuner) for n in needed) or not _known("triton", "the hints"):
        return

    def check(original: Any) -> Any:
        def wrapper(self: Any, tuning_key: Any, configs: Any, bench_fn: Any, *args: Any, **kwargs: Any) -> Any:
            left_out = _guarded(_HINTS, _autotune_left_out, self, tuning_key, configs)
            if not left_out:
                return original(self, tuning_key, configs, bench_fn, *args, **kwargs)
            return original(self, tuning_key, configs, _skipping(self, left_out, bench_fn), *args, **kwargs)

        return wrapper

    _patch(autotuner, "check_disk_cache", check, _HINTS)


def _skipping(autotuner: Any, left_out: list[Any], bench_fn: Any) -> Any:
    """`bench_fn` (Triton's benchmark of a miss), during which the autotuner's `_bench` times the
    configs `left_out` infinite without running them: an attribute of the instance, over every
    wrapper of the class's (a counter of benchmark calls counts only those that ran)."""
    bench = type(autotuner)._bench

    def narrowed(*args: Any, config: Any, **kwargs: Any) -> Any:
        if any(config is c for c in left_out):
            return [math.inf, math.inf, math.inf]
        return bench(autotuner, *args, config=config, **kwargs)

    def skipping(*a: Any, **k: Any) -> Any:
        autotuner._bench = narrowed
        try:
            return bench_fn(*a, **k)
        finally:
            vars(autotuner).pop("_bench", None)

    return skipping


def _autotune_left_out(autotuner: Any, tuning_key: Any, configs: Any) -> list[Any] | None:
    from .hints import autotune_problem, config_of

    fn = autotuner.fn
    while hasattr(fn, "fn") and not hasattr(fn, "cache_key"):
        fn = fn.fn
    values = [
        config_of(
            c.kwargs.items(),
            num_warps=c.num_warps,
            num_stages=c.num_stages,
            num_ctas=getattr(c, "num_ctas", None),
            maxnreg=getattr(c, "maxnreg", None),
        )
        for c in configs
    ]
    kept = _process_hints().narrowed("triton_autotune", autotune_problem(str(fn.__name__), tuning_key), values)
    return None if kept is None else [c for i, c in enumerate(configs) if i not in kept]


def _unpatch(patch: Patch) -> None:
    if patch not in _patches:
        return
    if patch.undo():
        _patches.remove(patch)
    else:
        log.warning("atpack: %s stays wrapped (another wrapper covers atpack's) until that one is removed", patch.name)


def launched_kernel_folders() -> set[str]:
    """Triton folders of the kernels Inductor's compiled code launches: every kernel object alive
    with one launcher left (a tuned kernel keeps its winner) and a module file of its own, except
    fusion benchmarks. Autotuning candidates have no module file."""
    heuristics = sys.modules.get(HEURISTICS)
    autotuner = getattr(heuristics, "CachingAutotuner", None)
    if autotuner is None:
        return set()
    import gc

    folders: set[str] = set()
    benchmark: dict[str, bool] = {}
    for value in gc.get_objects():
        if not issubclass(type(value), autotuner):  # type(): dead weak proxies raise on isinstance
            continue
        launchers = getattr(value, "launchers", None)
        if not launchers or len(launchers) != 1 or not isinstance(getattr(launchers[0], "cache_hash", None), str):
            continue
        filename = getattr(value, "filename", None)
        if not filename:
            continue
        if filename not in benchmark:
            benchmark[filename] = is_benchmark_module(_head(filename))
        if not benchmark[filename]:
            folders.add(launchers[0].cache_hash)
    return folders


def _head(path: str, size: int = 1 << 22) -> str:
    """The start of a module's source (an Inductor kernel module is a few KB); "" for anything
    but a regular file, which is never waited on (a FIFO put where the module was)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return ""
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return ""
        return os.read(fd, size).decode("utf-8", "replace")
    except OSError:
        return ""
    finally:
        os.close(fd)


@dataclasses.dataclass
class MegacacheRecording:
    """Torch's Megacache recording, fresh for a block; what it records is handed back to the
    process-wide recording afterwards, so ``torch.compiler.save_cache_artifacts()`` still sees it."""

    context: Any = None
    note: str = ""

    @classmethod
    def start(cls) -> MegacacheRecording:
        manager = _manager()
        if manager is None:
            return cls(None, "torch is not imported: no Megacache entries recorded")
        if not _known("torch", "recording Megacache entries of a block"):
            return cls(None, "torch is not a release atpack knows: no Megacache entries recorded")
        fresh = getattr(manager, "with_fresh_cache", None)
        if fresh is None:
            return cls(None, "this torch has no CacheArtifactManager.with_fresh_cache: no Megacache entries recorded")
        context = fresh()
        context.__enter__()
        return cls(context)

    def __enter__(self) -> MegacacheRecording:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self.context is not None:
            context, self.context = self.context, None
            context.__exit__(None, None, None)

    def stop(self) -> list[tuple[str, str, bytes]]:
        """The (type, key, content) of every entry recorded during the block."""
        if self.context is None:
            return []
        manager = _manager()
        recorded = {kind: list(items) for kind, items in manager._new_cache_artifacts.items()}
        self.close()
        entries = []
        for kind, items in recorded.items():
            for artifact in items:
                entries.append((kind, artifact.key, artifact.content))
                if artifact not in manager._seen_artifacts:  # handed back to the process's recording
                    manager._new_cache_artifacts[kind].append(artifact)
                    manager._seen_artifacts.add(artifact)
        return entries


def _manager() -> Any:
    if "torch" not in sys.modules:
        return None
    try:
        from torch.compiler._cache import CacheArtifactManager
    except ImportError:
        return None
    return CacheArtifactManager


# --------------------------------------------------------------------------- after import


_pending: dict[str, list[Callable[[types.ModuleType], None]]] = {}
_failed: set[str] = set()


def after_import(name: str, then: Callable[[types.ModuleType], None]) -> Callable[[], None]:
    """Call `then(module)` once module `name` is imported: now if it already is, else right after
    it is executed. Returns a function that cancels the call if it has not happened. A failure of
    `then` is logged once per module, never raised into the importer. The import hook leaves
    `sys.meta_path` once nothing waits."""
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
        _leave_if_idle()

    return cancel


def _leave_if_idle() -> None:
    if not any(_pending.values()):
        _pending.clear()
        sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, _AfterImportFinder)]


def _call(then: Callable[[types.ModuleType], None], module: types.ModuleType) -> None:
    try:
        then(module)
    except Exception as e:
        if module.__name__ not in _failed:
            _failed.add(module.__name__)
            log.warning(
                "atpack: could not hook %s (%s: %s); torch runs without it", module.__name__, type(e).__name__, e
            )
            log.debug("traceback", exc_info=e)


class _AfterImportFinder:
    """Finds nothing itself: for a module someone waits for, it asks the other finders and wraps
    the loader they return, so that the waiting calls run once the module is executed."""

    def find_spec(self, fullname: str, path: Sequence[str] | None, target: types.ModuleType | None = None) -> Any:
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
            spec.loader = _NotifyingLoader(spec.loader, fullname)  # type: ignore[assignment]  # a Loader by its methods
        return spec


class _NotifyingLoader:
    """A loader that runs the calls waiting for its module after executing it."""

    def __init__(self, loader: Any, name: str) -> None:
        self._loader = loader
        self._name = name

    def create_module(self, spec: Any) -> types.ModuleType | None:
        return self._loader.create_module(spec)  # type: ignore[no-any-return]

    def exec_module(self, module: types.ModuleType) -> None:
        self._loader.exec_module(module)
        for then in _pending.pop(self._name, []):
            _call(then, module)
        _leave_if_idle()

    def __getattr__(self, name: str) -> Any:  # get_source, get_data, ...: the real loader's
        return getattr(self._loader, name)
