"""The package's imports go only down the floors of docs/design.md, and never in a loop.

Every `import` in every module of `sparse_keras` counts, deferred (function-level) ones
included: a deferred import may hide a loop from Python, but not from this test. The
modules are read with `ast`, not imported, so the test sees every branch.
"""

from __future__ import annotations

import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "sparse_keras"

# Bottom up. A module belongs to the floor of its longest listed prefix; a module that
# matches none fails `test_every_module_has_a_floor` (give it one here and in the docs).
FLOORS = {
    # 1: argument checks, the mask constraint, entropy, winner selection, noise, data
    "sparse_keras.validation": 1,
    "sparse_keras.constraints": 1,
    "sparse_keras.metrics": 1,
    "sparse_keras.optimizers": 1,
    "sparse_keras._select": 1,
    "sparse_keras.native_build": 1,
    "sparse_keras.noise": 1,
    "sparse_keras.data": 1,
    "sparse_keras._embedded": 1,
    # 2: the layers
    "sparse_keras.layers": 2,
    # 3: networks and training helpers built from the layers
    "sparse_keras.models": 3,
    "sparse_keras.callbacks": 3,
    "sparse_keras.distribute": 3,
    # 4: what users do with networks
    "sparse_keras.robustness": 4,
    "sparse_keras.theory": 4,
    "sparse_keras.zoo": 4,
    "sparse_keras.export": 4,
    "sparse_keras.compute": 4,
    # 5: the command line
    "sparse_keras.cli": 5,
}
# The package's own __init__ re-exports the public names: it sits on top of everything.
ROOT_FLOOR = 6


def module_name(path: pathlib.Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def is_package(name: str) -> bool:
    return (PACKAGE.parent / name.replace(".", "/") / "__init__.py").is_file()


def exists(name: str) -> bool:
    path = PACKAGE.parent / name.replace(".", "/")
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def floor(name: str) -> int | None:
    if name == "sparse_keras":
        return ROOT_FLOOR
    matches = [p for p in FLOORS if name == p or name.startswith(p + ".")]
    return FLOORS[max(matches, key=len)] if matches else None


def root_lazy_names() -> dict[str, str]:
    """`sparse_keras.<name>` attributes the root package loads lazily: name -> module."""
    tree = ast.parse((PACKAGE / "__init__.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "_LAZY":
            table = ast.literal_eval(node.value)
            return {name: module for name, (module, _) in table.items()}
    return {}


LAZY = root_lazy_names()


def imported_modules(name: str, path: pathlib.Path) -> list[tuple[str, int]]:
    """Every sparse_keras module `name` imports, with the line, deferred imports included."""
    package = name if is_package(name) else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            for alias in node.names:
                # `from package import submodule` imports the submodule; `from sparse_keras
                # import KWinners` imports what the root package loads for that name.
                if exists(f"{source}.{alias.name}"):
                    found.append((f"{source}.{alias.name}", node.lineno))
                elif source == "sparse_keras" and alias.name in LAZY:
                    found.append((LAZY[alias.name], node.lineno))
                else:
                    found.append((source, node.lineno))
        elif (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id == "sparse_keras"
        ):
            # `import sparse_keras` then `sparse_keras.models.build(...)` uses models.
            if exists(f"sparse_keras.{node.attr}"):
                found.append((f"sparse_keras.{node.attr}", node.lineno))
            elif node.attr in LAZY:
                found.append((LAZY[node.attr], node.lineno))
    # The root package itself (`import sparse_keras` for `__version__`) adds nothing:
    # Python loads it before any of its modules anyway.
    return [(m, line) for m, line in found if m.startswith("sparse_keras.")]


GRAPH = {name: imported_modules(name, path) for name, path in MODULES.items()}


def test_every_module_has_a_floor():
    assert [name for name in MODULES if floor(name) is None] == []


def test_every_import_names_a_module_that_exists():
    missing = [
        f"{MODULES[name]}:{line} imports {target}"
        for name, targets in GRAPH.items()
        for target, line in targets
        if not exists(target)
    ]
    assert missing == []


@pytest.mark.parametrize("name", sorted(MODULES))
def test_imports_only_go_down(name):
    upward = [
        f"{MODULES[name].relative_to(PACKAGE.parent)}:{line} imports {target} "
        f"(floor {floor(target)}) from floor {floor(name)}"
        for target, line in GRAPH[name]
        if exists(target) and (floor(target) or 0) > (floor(name) or 0)
    ]
    assert upward == []


def find_cycle(graph: dict[str, list[str]]) -> list[str] | None:
    """One import cycle of `graph` (module -> modules it imports), or None."""
    state: dict[str, str] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        stack.append(node)
        for target in graph.get(node, ()):
            if state.get(target) == "open":
                return stack[stack.index(target) :] + [target]
            if target not in state and (cycle := visit(target)):
                return cycle
        stack.pop()
        state[node] = "done"
        return None

    for node in graph:
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_no_import_loop():
    # A package's __init__ importing its own submodules is how packages work, not a
    # loop: leave out edges from a package to its own submodules.
    graph = {
        name: sorted({t for t, _ in targets if t != name and not t.startswith(name + ".")})
        for name, targets in GRAPH.items()
        if name != "sparse_keras"
    }
    assert find_cycle(graph) is None


def test_the_loop_finder_finds_loops():
    assert find_cycle({"a": ["b"], "b": ["c"], "c": ["a"]}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": ["b"], "b": ["c"], "c": []}) is None


def test_upward_and_deferred_imports_are_seen(tmp_path):
    source = (
        "import sparse_keras\n"
        "def f():\n"
        "    from sparse_keras.cli import zoo\n"
        "    return sparse_keras.zoo.load, sparse_keras.KWinners\n"
    )
    path = tmp_path / "m.py"
    path.write_text(source)
    assert sorted(imported_modules("sparse_keras.data.m", path)) == [
        ("sparse_keras.cli.zoo", 3),
        ("sparse_keras.layers", 4),
        ("sparse_keras.zoo", 4),
    ]


def test_the_docs_layout_table_lists_these_floors():
    page = (PACKAGE.parent / "docs" / "design.md").read_text()
    rows = [line.split("|") for line in page.splitlines() if line.startswith("| ") and "`" in line]
    documented = {cells[2].strip().strip("`"): int(cells[1]) for cells in rows}
    assert documented == FLOORS
