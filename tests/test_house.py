"""The shape of the code: modules in layers, imports only running down, no circle, and torch's
and Triton's private names in one module (`atpack.seam`)."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "atpack"

LAYERS: list[set[str]] = [
    # what everything stands on
    {"errors", "settings", "digest", "causes", "text"},
    {"artifacts", "atomic", "seam", "devices", "hints"},
    # bytes, folders, the registry of kinds
    {"storage", "folders", "files", "walk", "evidence", "kinds", "lookups"},
    {"pack", "env", "replay"},
    # each cache system's kinds; what a pack vouches for
    {
        "adapters",
        "adapters.common",
        "adapters.configs",
        "adapters.inductor",
        "adapters.triton",
        "adapters.megacache",
        "adapters.lookups",
        "signing",
    },
    # what is done with packs
    {"store", "merging", "collect", "populate", "report", "explaining"},
    {"recording"},
    # the doors: the API, torch's plug-in, the command line
    {"api", "autoload"},
    {"cli", "__main__"},
]
"""Bottom first. A module imports only from its layer or those below; the package itself
(`atpack/__init__.py`) is the door to all of them and imports them lazily."""

PRIVATE = re.compile(
    r"torch\._[a-zA-Z]|torch/_[a-z]|triton\.(runtime|compiler|backends|knobs|_C)\b"
    r"|\b(CachingAutotuner|AutotuneCache|TritonBundler|CacheArtifactManager|PGOCacheArtifact|FxGraphCache"
    r"|AOTAutogradCache|DynamoCache|PersistentCache|CacheBase|_triton_bundle|put_winner|populate_cache"
    r"|_new_cache_artifacts|_seen_artifacts|with_fresh_cache|check_autotune_cache|coordinate_descent_tuning"
    r"|autotune_to_one_config|cache_dir_utils|triton_heuristics|autotune_cache|codecache|make_backend"
    r"|GPUTarget|local_cache|read_and_emit|default_cache_dir)\b"
)
"""torch's and Triton's private modules, classes and functions, as code or prose names them."""


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        name = ".".join(path.relative_to(PACKAGE).with_suffix("").parts)
        found[name.removesuffix(".__init__")] = path
    found.pop("__init__")
    return found


def _imports(name: str, path: Path, modules: dict[str, Path]) -> Iterator[str]:
    """Every atpack module `name` imports: at the top, in a function, or for type checking."""
    package = name.rsplit(".", 1)[0] if "." in name and path.name != "__init__.py" else name
    package = "" if package == name and path.name != "__init__.py" else package
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            parts = package.split(".") if package else []
            base = parts[: len(parts) - node.level + 1]
            target = ".".join(base + ([node.module] if node.module else []))
            for alias in node.names:
                candidate = f"{target}.{alias.name}".strip(".")
                if candidate in modules:
                    yield candidate
                elif target in modules:
                    yield target
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("atpack."):
            yield from (m for m in [node.module.removeprefix("atpack.")] if m in modules)
        elif isinstance(node, ast.Import):
            yield from (a.name.removeprefix("atpack.") for a in node.names if a.name.removeprefix("atpack.") in modules)


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: set(_imports(name, path, modules)) - {name} for name, path in modules.items()}


def test_every_module_has_a_layer() -> None:
    layered = set().union(*LAYERS)
    assert set(_modules()) - {"testing"} - {m for m in _modules() if m.startswith("testing.")} <= layered
    assert layered <= set(_modules()), "a layer names a module that is gone"


def test_imports_only_run_down() -> None:
    layer = {module: i for i, names in enumerate(LAYERS) for module in names}
    upward = sorted(
        f"{name} ({layer[name]}) imports {dep} ({layer[dep]})"
        for name, deps in _graph().items()
        if name in layer
        for dep in deps
        if dep in layer and layer[dep] > layer[name]
    )
    assert upward == []


def test_no_import_circle() -> None:
    graph = _graph()
    done: set[str] = set()
    circles: list[str] = []

    def visit(node: str, path: list[str]) -> None:
        for dep in sorted(graph.get(node, ())):
            if dep in path:
                circles.append(" -> ".join([*path[path.index(dep) :], dep]))
            elif dep not in done:
                visit(dep, [*path, dep])
        done.add(node)

    for start in sorted(graph):
        if start not in done:
            visit(start, [start])
    assert circles == []


def test_torch_and_tritons_private_names_are_named_in_the_seam_only() -> None:
    found = [
        f"{path.relative_to(PACKAGE.parent)}:{number}: {line.strip()}"
        for name, path in _modules().items()
        if name != "seam"
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if PRIVATE.search(line)
    ]
    assert found == []
    assert PRIVATE.search((PACKAGE / "seam.py").read_text())  # the pattern finds what the seam holds


def test_the_readmes_layout_names_every_module() -> None:
    layout = (PACKAGE.parent / "README.md").read_text().split("## Layout", 1)[1].split("\n## ", 1)[0]
    missing = [name for name in _modules() if name.split(".")[-1] not in layout and name != "__main__"]
    assert missing == []
