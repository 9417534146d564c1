"""The code's shape, checked: ``benchmarks/`` in rooms by job with only the contract at its
root, no import circle between modules or between rooms, ``reports/`` reading only the
contract, the harness never importing the report, no module over 400 lines, no function
over 60. Each rule is also run on a small tree made here that breaks it, so it can fail.

``python -m tests.test_structure`` prints the tree: every room with its lines and job, then
every module, then the rooms' import layers and edges."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).parents[1]
PACKAGES = ("benchmarks", "models", "reports")
# What reports/ may read of the harness, and all that may sit at benchmarks/'s root.
CONTRACT = ("benchmarks.budget", "benchmarks.rundir", "benchmarks.timing")
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60


def modules(root: Path = ROOT) -> dict[str, Path]:
    """Every module of the packages, by dotted name; a package's ``__init__`` by its own."""
    found = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imports(path: Path, known: set[str]) -> set[str]:
    """The project modules ``path`` imports, at its top or inside functions alike
    (``from benchmarks.data import rows`` imports ``benchmarks.data.rows``)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
    return {m for m in found if m in known and not path.stem == "__init__"}


def graph(root: Path = ROOT) -> dict[str, set[str]]:
    """Module -> the modules it imports (a package name stands for its ``__init__``,
    imported on the way to any of its modules, so it is left out)."""
    mods = modules(root)
    packages = {name for name, path in mods.items() if path.stem == "__init__"}
    return {name: imports(path, set(mods) - packages) - {name} for name, path in mods.items()}


def circles(edges: dict[str, set[str]]) -> list[list[str]]:
    found, done = [], set()

    def visit(node: str, stack: list[str]) -> None:
        for nxt in sorted(edges.get(node, ())):
            if nxt in stack:
                found.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in done:
                visit(nxt, stack + [nxt])
        done.add(node)

    for name in sorted(edges):
        if name not in done:
            visit(name, [name])
    return found


def import_circles(root: Path = ROOT) -> list[list[str]]:
    return circles(graph(root))


def unit(module: str) -> str:
    """The room a module lives in: ``benchmarks.data.rows`` -> ``benchmarks.data``; a
    module at ``benchmarks/``'s root and a whole other package are their own unit."""
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == "benchmarks" else parts[0]


def unit_graph(root: Path = ROOT) -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {}
    for name, targets in graph(root).items():
        edges.setdefault(unit(name), set()).update(unit(t) for t in targets)
    return {u: targets - {u} for u, targets in edges.items()}


def layers(edges: dict[str, set[str]]) -> dict[str, int]:
    """Each unit's layer: 0 imports no other unit, n imports units below n only."""
    depth: dict[str, int] = {}

    def of(node: str) -> int:
        if node not in depth:
            depth[node] = 1 + max((of(t) for t in edges.get(node, ())), default=-1)
        return depth[node]

    for node in edges:
        of(node)
    return depth


def stray_root_modules(root: Path = ROOT) -> list[str]:
    """Modules at ``benchmarks/``'s root that are not the contract."""
    return sorted(name for name, path in modules(root).items()
                  if path.parent == root / "benchmarks" and path.stem != "__init__"
                  and name not in CONTRACT)


def report_reads_beyond_the_contract(root: Path = ROOT) -> list[str]:
    return sorted(f"{name} imports {target}" for name, targets in graph(root).items()
                  if name.startswith("reports") for target in targets
                  if target.startswith("benchmarks") and target not in CONTRACT)


def harness_imports_of_the_report(root: Path = ROOT) -> list[str]:
    """``benchmarks`` modules importing ``reports``; the command line alone calls both."""
    return sorted(f"{name} imports {target}" for name, targets in graph(root).items()
                  if name.startswith("benchmarks.") and not name.startswith("benchmarks.cli.")
                  for target in targets if target.startswith("reports"))


def modules_importing_test_modules(root: Path = ROOT) -> list[str]:
    found = []
    for path in sorted((root / "tests").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            if any(n.startswith("tests.") and n.split(".")[-1].startswith("test_") for n in names):
                found.append(str(path.relative_to(root)))
                break
    return found


def long_modules(root: Path = ROOT) -> list[str]:
    return [f"{name}: {lines} lines" for name, path in modules(root).items()
            if (lines := len(path.read_text().splitlines())) > MAX_MODULE_LINES]


def long_functions(root: Path = ROOT) -> list[str]:
    found = []
    for name, path in modules(root).items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    found.append(f"{name}.{node.name}: {length} lines")
    return found


def test_no_import_circle_between_modules_or_rooms():
    assert import_circles() == []
    assert circles(unit_graph()) == []


def test_only_the_contract_sits_at_the_root_of_benchmarks():
    assert stray_root_modules() == []
    assert all(name in modules() for name in CONTRACT)


def test_reports_read_only_the_contract_of_the_harness():
    assert report_reads_beyond_the_contract() == []


def test_the_harness_never_imports_the_report():
    assert harness_imports_of_the_report() == []


def test_no_module_is_over_400_lines():
    assert long_modules() == []


def test_no_function_is_over_60_lines():
    assert long_functions() == []


def _tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_each_rule_fails_on_a_tree_that_breaks_it(tmp_path):
    """The checkers themselves can fail."""
    root = _tree(tmp_path, {
        "benchmarks/__init__.py": "",
        "benchmarks/rundir.py": "",
        "benchmarks/stray.py": "from benchmarks.data import a\n",
        "benchmarks/data/__init__.py": "",
        "benchmarks/data/a.py": "from benchmarks.data import b\n",
        "benchmarks/data/b.py": "def f():\n    from benchmarks.data import a\n",
        "benchmarks/run/__init__.py": "",
        "benchmarks/run/c.py": "from benchmarks.data import a\nimport reports.r\n",
        "benchmarks/data/d.py": "from benchmarks.run import c\n",
        "reports/__init__.py": "",
        "reports/r.py": "from benchmarks import rundir\nfrom benchmarks.run import c\n",
        "models/__init__.py": "",
        "models/long.py": "def f():\n" + "    x = 1\n" * MAX_MODULE_LINES,
    })
    assert import_circles(root)[0] == ["benchmarks.data.a", "benchmarks.data.b",
                                       "benchmarks.data.a"]
    assert ["benchmarks.data", "benchmarks.run", "benchmarks.data"] in circles(unit_graph(root))
    assert stray_root_modules(root) == ["benchmarks.stray"]
    assert report_reads_beyond_the_contract(root) == ["reports.r imports benchmarks.run.c"]
    assert harness_imports_of_the_report(root) == ["benchmarks.run.c imports reports.r"]
    assert long_modules(root) == [f"models.long: {MAX_MODULE_LINES + 1} lines"]
    assert long_functions(root) == [f"models.long.f: {MAX_MODULE_LINES + 1} lines"]


def test_layers_count_up_from_the_units_that_import_no_other():
    edges = {"a": set(), "b": {"a"}, "c": {"a", "b"}, "d": set()}
    assert layers(edges) == {"a": 0, "b": 1, "c": 2, "d": 0}


def _first_line(path: Path) -> str:
    doc = ast.get_docstring(ast.parse(path.read_text())) or ""
    return doc.splitlines()[0] if doc else ""


def tree_lines(root: Path = ROOT) -> Iterator[str]:
    """The printed tree: rooms, modules, then the rooms' layers and edges."""
    mods = modules(root)
    sizes = {name: len(path.read_text().splitlines()) for name, path in mods.items()}
    rooms: dict[str, int] = {}
    for name, size in sizes.items():
        rooms[unit(name)] = rooms.get(unit(name), 0) + size
    yield "rooms (lines: job)"
    for room, size in sorted(rooms.items()):
        path = mods.get(room)
        yield f"  {room:24} {size:5}  {_first_line(path) if path else ''}"
    yield "modules"
    for name, path in mods.items():
        yield f"  {name:32} {sizes[name]:4}  {_first_line(path)}"
    edges = unit_graph(root)
    depth = layers(edges)
    yield (f"{len(edges)} units in {max(depth.values()) + 1} layers, "
           f"{sum(map(len, edges.values()))} import edges between them")
    for layer in range(max(depth.values()) + 1):
        yield f"  layer {layer}: {', '.join(sorted(u for u, d in depth.items() if d == layer))}"
    yield f"import circles: {import_circles(root) or 'none'}"
    yield f"functions over {MAX_FUNCTION_LINES} lines: {long_functions(root) or 'none'}"


if __name__ == "__main__":
    print("\n".join(tree_lines()))


def test_no_test_module_imports_another(tmp_path):
    """Shared helpers live in tests/helpers/ or conftest.py, never in a test module."""
    assert modules_importing_test_modules() == []
    (tmp_path / "tests" / "a").mkdir(parents=True)
    (tmp_path / "tests" / "a" / "test_x.py").write_text("from tests.b.test_y import make\n")
    (tmp_path / "tests" / "a" / "test_z.py").write_text("from tests.helpers.runs import make\n")
    (tmp_path / "tests" / "a" / "test_v.py").write_text("from tests.b import test_y\n")
    (tmp_path / "tests" / "a" / "test_w.py").write_text("import tests.b.test_y\n")
    assert modules_importing_test_modules(tmp_path) == ["tests/a/test_v.py", "tests/a/test_w.py",
                                                        "tests/a/test_x.py"]
