"""The library's shape: short functions, no top-level script imported by the library, no import cycles."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LIBRARY = sorted([*(REPO / "util").rglob("*.py"), *(REPO / "download_module").rglob("*.py")])
SCRIPTS = {p.stem for p in REPO.glob("*.py")}


def module_name(path: Path) -> str:
    return ".".join(path.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")


def imports(path: Path) -> set[str]:
    """Every module ``path`` imports, at the top or inside functions, leaving out ``if TYPE_CHECKING:`` blocks."""
    tree = ast.parse(path.read_text())
    typing_only = {
        id(node)
        for block in ast.walk(tree)
        if isinstance(block, ast.If) and getattr(block.test, "id", "") == "TYPE_CHECKING"
        for node in ast.walk(block)
    }
    found = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found |= {node.module, *(f"{node.module}.{alias.name}" for alias in node.names)}
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
    return found


def test_no_function_of_the_library_is_longer_than_80_lines_and_train_is_under_50():
    long = {}
    for path in LIBRARY:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = node.end_lineno - node.lineno + 1
                if lines > 80 or (node.name == "train" and path.name == "run.py" and lines >= 50):
                    long[f"{module_name(path)}.{node.name}"] = lines
    assert not long


def test_the_library_imports_no_top_level_script():
    found = {module_name(p): sorted(m for m in imports(p) if m.split(".")[0] in SCRIPTS) for p in LIBRARY}
    assert not {name: scripts for name, scripts in found.items() if scripts}


def test_no_two_modules_of_the_library_import_each_other():
    names = {module_name(p) for p in LIBRARY}
    graph = {}
    for path in LIBRARY:
        deps = imports(path)
        # ``from pkg import sub`` depends on the submodule, not on the package's __init__
        graph[module_name(path)] = {d for d in deps if d in names} - {module_name(path)}
        graph[module_name(path)] -= {d.rsplit(".", 1)[0] for d in deps if d in names and "." in d}
    state, cycles = {}, []

    def visit(node, stack):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                cycles.append(stack[stack.index(nxt) :] + [nxt])
            elif nxt not in state:
                visit(nxt, stack)
        stack.pop()
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [])
    assert not cycles
