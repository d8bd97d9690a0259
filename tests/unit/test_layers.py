"""The package's architecture as an invariant: every import (module level or inside a function,
except ``if TYPE_CHECKING:`` blocks) of ``tune_lnl`` and ``trainables`` points to the same or a
LOWER layer, and the module import graph has no cycle. Layers, bottom up:

    errors, plugins -> data, models -> methods, trainables -> config -> results -> search -> api
    -> cli and the entry modules (tune_lnl/__init__, __main__, train, report, fidelity)
"""
import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LAYERS = [
    ("tune_lnl.errors", "tune_lnl.plugins", "tune_lnl.files"),
    ("tune_lnl.data", "tune_lnl.models"),
    ("tune_lnl.methods", "trainables"),
    ("tune_lnl.config",),
    ("tune_lnl.results",),
    ("tune_lnl.search",),
    ("tune_lnl.api",),
    ("tune_lnl.cli", "tune_lnl.train", "tune_lnl.report", "tune_lnl.fidelity", "tune_lnl.__main__",
     "tune_lnl.search.__main__", "tune_lnl"),
]


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_module_name(p): p for root in ("tune_lnl", "trainables") for p in (REPO / root).rglob("*.py")}


def layer_of(module: str) -> int:
    """The layer of the most specific prefix that names one (entry modules before their package)."""
    best, best_len = None, -1
    for i, names in enumerate(LAYERS):
        for name in names:
            if (module == name or module.startswith(name + ".")) and len(name) > best_len:
                best, best_len = i, len(name)
    assert best is not None, f"module {module} belongs to no layer: add it to LAYERS"
    return best


def _resolve(importer: str, is_package: bool, level: int, target: str | None) -> str:
    if level == 0:
        return target or ""
    base = importer.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join(base + ([target] if target else []))


def _is_type_checking(node) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def imports(module: str) -> set[str]:
    """The project modules ``module`` imports (a ``from X import name`` naming a submodule counts
    as importing that submodule)."""
    path = MODULES[module]
    tree = ast.parse(path.read_text())
    skip = {id(n) for node in ast.walk(tree) if _is_type_checking(node) for n in ast.walk(node)}
    out = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(module, path.name == "__init__.py", node.level, node.module)
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
        else:
            continue
        for name in names:
            while name and name not in MODULES:  # a name inside a module: the module
                name = name.rpartition(".")[0]
            if name and name != module:
                out.add(name)
    return out


GRAPH = {m: imports(m) for m in MODULES}


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_module_imports_a_higher_layer(module):
    bad = [t for t in GRAPH[module] if layer_of(t) > layer_of(module)]
    assert not bad, f"{module} (layer {layer_of(module)}) imports higher layers: {bad}"


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` (as a path that returns to its start), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m):
        state[m] = 1
        stack.append(m)
        for t in sorted(graph.get(m, ())):
            if state.get(t) == 1:
                return stack[stack.index(t):] + [t]
            if t not in state and (cycle := visit(t)):
                return cycle
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state and (cycle := visit(m)):
            return cycle
    return None


def test_no_import_cycles():
    cycle = find_cycle(GRAPH)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_checks_can_fail():
    """A made-up cycle is found, and the layer order puts data below search (so data importing
    search would be reported); the real graph holds the edges the layout promises."""
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
    assert layer_of("tune_lnl.data.device") < layer_of("tune_lnl.search.studies")
    assert layer_of("tune_lnl.search.__main__") == len(LAYERS) - 1
    assert "tune_lnl.methods.single_network" in GRAPH["trainables.ce"]
    assert "tune_lnl.data.splits" in GRAPH["tune_lnl.data.base"]


#: the longest a function (or method) of tune_lnl/ and trainables/ may be, in lines (def to end)
MAX_FUNCTION_LINES = 80


def long_functions(tree: ast.AST, limit: int = MAX_FUNCTION_LINES) -> list[tuple[str, int]]:
    """``(name, lines)`` of every function in ``tree`` longer than ``limit`` lines."""
    return [(n.name, n.end_lineno - n.lineno + 1) for n in ast.walk(tree)
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.end_lineno - n.lineno + 1 > limit]


def test_no_function_is_longer_than_80_lines():
    too_long = [f"{module}.{name}: {lines} lines" for module, path in sorted(MODULES.items())
                for name, lines in long_functions(ast.parse(path.read_text()))]
    assert not too_long, "split these functions: " + "; ".join(too_long)


def test_the_length_check_can_fail():
    body = "\n".join(f"    x{i} = {i}" for i in range(81))
    assert long_functions(ast.parse(f"def f():\n{body}\n")) == [("f", 82)]
    assert long_functions(ast.parse("def g():\n    return 1\n")) == []
