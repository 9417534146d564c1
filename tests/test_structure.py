"""The code's shape, checked: no import circle, the harness never imports the report,
no module over 400 lines, no function over 60. Run ``python -m tests.test_structure`` for
the table of modules with their sizes and jobs."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).parents[1]
PACKAGES = ("benchmarks", "models", "reports")
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60


def modules(root: Path = ROOT) -> dict[str, Path]:
    return {".".join(p.relative_to(root).with_suffix("").parts): p
            for package in PACKAGES for p in sorted((root / package).glob("*.py"))}


def imports(path: Path, known: set[str]) -> set[str]:
    """The project modules ``path`` imports, at its top or inside functions alike."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
    return {m for m in found if m in known and not m.endswith("__init__")}


def import_circles(root: Path = ROOT) -> list[list[str]]:
    mods = modules(root)
    graph = {name: imports(path, set(mods)) - {name} for name, path in mods.items()}
    circles, done = [], set()

    def visit(node: str, stack: list[str]) -> None:
        for nxt in sorted(graph[node]):
            if nxt in stack:
                circles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in done:
                visit(nxt, stack + [nxt])
        done.add(node)

    for name in graph:
        if name not in done:
            visit(name, [name])
    return circles


def long_functions() -> list[str]:
    found = []
    for name, path in modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    found.append(f"{name}.{node.name}: {length} lines")
    return found


def test_no_import_circle():
    assert import_circles() == []


def test_the_harness_never_imports_the_report():
    mods = modules()
    for name, path in mods.items():
        if name.startswith("benchmarks.") and name != "benchmarks.cli":  # the CLI calls both
            assert not any(m.startswith("reports") for m in imports(path, set(mods))), name


def test_no_module_is_over_400_lines():
    sizes = {name: len(path.read_text().splitlines()) for name, path in modules().items()}
    assert {n: s for n, s in sizes.items() if s > MAX_MODULE_LINES} == {}


def test_no_function_is_over_60_lines():
    assert long_functions() == []


def test_a_circle_is_found(tmp_path):
    """The checker itself can fail: two modules importing each other are a circle."""
    package = tmp_path / "benchmarks"
    package.mkdir()
    (package / "a.py").write_text("from benchmarks import b\n")
    (package / "b.py").write_text("def f():\n    from benchmarks import a\n")
    assert import_circles(tmp_path) == [["benchmarks.a", "benchmarks.b", "benchmarks.a"]]


if __name__ == "__main__":
    for name, path in modules().items():
        doc = ast.get_docstring(ast.parse(path.read_text())) or ""
        print(f"{name:28} {len(path.read_text().splitlines()):4}  {doc.splitlines()[0] if doc else ''}")
    print("import circles:", import_circles() or "none")
    print("functions over 60 lines:", long_functions() or "none")
