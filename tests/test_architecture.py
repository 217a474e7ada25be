"""The package's layering, read from its source (ast), as docs/architecture.md states it:

- the core (store, opening, facade, artifacts, repositories, db, legacy, models, validation,
  types, errors, durable, extensions) never imports the workbench, the cli or the
  integrations, not even lazily inside a function;
- the workbench, the cli and the integrations use the core's public API only: names the
  package exports (`nirs4all_store.__all__`) and the documented extension-point modules,
  never a private (`_x`) name of another module;
- no import cycle anywhere, lazy imports included;
- no module over MAX_MODULE_LINES lines, no function over MAX_FUNCTION_LINES lines.

Each rule is also run on a small package written by the test with one deliberate violation
(the negative controls), so a checker that finds nothing cannot pass unnoticed.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE_DIR = Path(__file__).resolve().parents[1] / "nirs4all_store"
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 80
UPPER = ("workbench", "cli", "integrations")
#: Core modules the layers above may import, besides the package itself (its __all__).
EXTENSION_POINTS = (
    "errors",
    "validation",
    "durable",
    "extensions",
    "types",
    "repositories",
    "db.engine",
    "db.migrate",
    "db.session",
    "db.backup",
    "artifacts.files",
)
#: Shims kept for pickles written before the layout (they re-export a workbench name).
COMPAT_MODULES = ("transforms",)


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    names: tuple[str, ...]
    line: int
    typing_only: bool = False
    """under `if TYPE_CHECKING:`: never executed, so no cycle, but still a dependency"""


def module_name(package_dir: Path, path: Path) -> str:
    parts = [package_dir.name, *path.relative_to(package_dir).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules(package_dir: Path) -> dict[str, Path]:
    return {module_name(package_dir, p): p for p in sorted(package_dir.rglob("*.py"))}


def imports(package_dir: Path, name: str, path: Path, known: dict[str, Path]) -> Iterator[Edge]:
    """Every import of a module of the package made by `name` (function bodies included)."""
    root = package_dir.name
    is_package = path.name == "__init__.py"
    tree = ast.parse(path.read_text(), str(path))
    typing_only = {
        id(inner)
        for node in ast.walk(tree)
        if isinstance(node, ast.If)
        and ast.unparse(node.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING")
        for child in node.body
        for inner in ast.walk(child)
    }
    for node in ast.walk(tree):
        guarded = id(node) in typing_only
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == root:
                    yield Edge(name, alias.name, (), node.lineno, guarded)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[: len(base) - node.level + 1]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            if target.split(".")[0] != root:
                continue
            for alias in node.names:  # `from pkg import module` imports the module
                if f"{target}.{alias.name}" in known:
                    yield Edge(name, f"{target}.{alias.name}", (), node.lineno, guarded)
            names = tuple(a.name for a in node.names if f"{target}.{a.name}" not in known)
            if names:
                yield Edge(name, target, names, node.lineno, guarded)


def graph(package_dir: Path) -> list[Edge]:
    known = modules(package_dir)
    return [
        edge for name, path in known.items() for edge in imports(package_dir, name, path, known)
    ]


def layer(root: str, name: str) -> str:
    parts = name.split(".")
    if len(parts) == 1:
        return "package"
    if parts[1] in UPPER:
        return parts[1]
    if parts[1] in COMPAT_MODULES or parts[1] == "__main__":
        return "compat"
    return "core"


def core_into_upper(package_dir: Path) -> list[str]:
    root = package_dir.name
    return [
        f"{e.source} imports {e.target} (line {e.line})"
        for e in graph(package_dir)
        if layer(root, e.source) == "core" and layer(root, e.target) in (*UPPER, "package")
    ]


def public_names(package_dir: Path) -> set[str]:
    tree = ast.parse((package_dir / "__init__.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets
        ):
            return set(ast.literal_eval(node.value))
    return set()


def upper_into_private(package_dir: Path) -> list[str]:
    """Imports by the layers above of core modules that are not extension points, of names
    the package does not export, and of any private name of another module."""
    root = package_dir.name
    exported = public_names(package_dir)
    allowed = {f"{root}.{m}" for m in EXTENSION_POINTS}
    found = []
    for e in graph(package_dir):
        if layer(root, e.source) not in UPPER:
            continue
        private = [n for n in e.names if n.startswith("_") and n != "__version__"]
        if private:
            found.append(f"{e.source} imports private {private} from {e.target} (line {e.line})")
        if layer(root, e.target) != "core" and e.target != root:
            continue
        if e.target == root:
            bad = [n for n in e.names if n not in exported]
            if bad:
                found.append(f"{e.source} imports {bad} that {root} does not export")
        elif not any(e.target == a or e.target.startswith(a + ".") for a in allowed) and (
            # `WorkspaceStore` is exported by the package; its module may be named directly
            e.target != f"{root}.store" or e.names != ("WorkspaceStore",)
        ):
            found.append(f"{e.source} imports core module {e.target} (line {e.line})")
    return found


def cycles(package_dir: Path) -> list[list[str]]:
    adjacency: dict[str, set[str]] = {}
    known = modules(package_dir)
    for e in graph(package_dir):
        if e.typing_only:
            continue
        target = e.target
        while target not in known and "." in target:
            target = target.rsplit(".", 1)[0]
        if target != e.source:
            adjacency.setdefault(e.source, set()).add(target)
    found: list[list[str]] = []
    state: dict[str, int] = {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(adjacency.get(node, ())):
            if state.get(nxt) == 1:
                found.append([*stack[stack.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt, stack)
        stack.pop()
        state[node] = 2

    for node in sorted(known):
        if node not in state:
            visit(node, [])
    return found


def oversized(package_dir: Path) -> list[str]:
    found = []
    for name, path in modules(package_dir).items():
        text = path.read_text()
        if len(text.splitlines()) > MAX_MODULE_LINES:
            found.append(f"{name}: {len(text.splitlines())} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    found.append(f"{name}.{node.name}: {length} lines")
    return found


# -- the package ---------------------------------------------------------------------------
def test_the_core_never_imports_the_workbench_the_cli_or_the_integrations() -> None:
    assert core_into_upper(PACKAGE_DIR) == []


def test_the_layers_above_use_only_the_public_api_of_the_core() -> None:
    assert upper_into_private(PACKAGE_DIR) == []


def test_no_import_cycles() -> None:
    assert cycles(PACKAGE_DIR) == []


def test_modules_and_functions_stay_small() -> None:
    assert oversized(PACKAGE_DIR) == []


def test_registered_entry_points_name_real_functions() -> None:
    import nirs4all_store  # noqa: F401  (registers the workbench entry points)
    from nirs4all_store import extensions

    for name in ("replay_chain", "export_chain", "export_predictions_parquet", "export_run"):
        assert callable(extensions.resolve(name))


# -- negative controls: a small package with one violation of each rule ----------------------
@pytest.fixture
def bad_package(tmp_path: Path) -> Path:
    pkg = tmp_path / "nirs4all_store"
    files = {
        "__init__.py": (
            "__all__ = ['WorkspaceStore']\nfrom nirs4all_store.store import WorkspaceStore\n"
        ),
        "store.py": (
            "class WorkspaceStore:\n"
            "    def replay(self):\n"
            "        from nirs4all_store.workbench import replay\n"  # core -> workbench, lazily
            "        return replay\n"
        ),
        "models.py": "X = 1\n",
        "repositories/__init__.py": "",
        "repositories/base.py": "from nirs4all_store.repositories.runs import R\n_helper = 1\n",
        "repositories/runs.py": "from nirs4all_store.repositories.base import _helper\nR = 1\n",
        "workbench/__init__.py": "",
        "workbench/replay.py": (
            "from nirs4all_store.store import WorkspaceStore\n"
            "from nirs4all_store.models import X\n"  # a core module that is no extension point
            "from nirs4all_store.repositories.base import _helper\n"  # a private name
        ),
        "cli/__init__.py": "",
        "cli/main.py": "def main():\n" + "    x = 1\n" * (MAX_FUNCTION_LINES + 1),
    }
    for rel, text in files.items():
        (pkg / rel).parent.mkdir(parents=True, exist_ok=True)
        (pkg / rel).write_text(text)
    return pkg


def test_negative_control_core_importing_the_workbench_is_found(bad_package: Path) -> None:
    assert core_into_upper(bad_package) == [
        "nirs4all_store.store imports nirs4all_store.workbench.replay (line 3)"
    ]


def test_negative_control_private_and_non_public_imports_are_found(bad_package: Path) -> None:
    found = upper_into_private(bad_package)
    assert (
        "nirs4all_store.workbench.replay imports core module nirs4all_store.models (line 2)"
        in found
    )
    assert any("private ['_helper']" in f for f in found)


def test_negative_control_cycles_are_found(bad_package: Path) -> None:
    found = cycles(bad_package)
    assert [
        "nirs4all_store.repositories.base",
        "nirs4all_store.repositories.runs",
        "nirs4all_store.repositories.base",
    ] in found
    assert any(
        "nirs4all_store.workbench.replay" in c and "nirs4all_store.store" in c for c in found
    )


def test_negative_control_long_functions_are_found(bad_package: Path) -> None:
    assert oversized(bad_package) == [
        f"nirs4all_store.cli.main.main: {MAX_FUNCTION_LINES + 2} lines"
    ]
