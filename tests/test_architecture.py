"""The core's shape, checked over the AST of ``xaibench/`` (docs/architecture.md says why).

- no import cycle between xaibench modules, counting imports inside functions and
  under ``if TYPE_CHECKING:`` (a lazy import hides a cycle from the interpreter,
  not from a reader);
- no module imports or uses another module's private names (``from x import _y``,
  ``x._y``, ``obj._y`` where ``_y`` is not defined in the module itself);
- no module over 400 lines;
- the rooms (subpackages) are those docs/architecture.md's table lists, in its order, with its modules: at most
  12 rooms and 12 modules a room, and no module of a room imports a room below it in the table (the order is
  written once, there; its "imports" column is what the code imports).

Known offenders are listed below by file. The lists must equal what the checks
find: a new offender fails, and so does a listed file that no longer offends, so
that a list cannot outlive its reason.
"""
from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "xaibench"
MAX_LINES = 400
MAX_ENTRIES = 12
ARCHITECTURE = ROOT / "docs" / "architecture.md"

# -- known offenders: the runner split (issue 20, part A) removes these; empty each set as it lands --------------
OVER_MAX_LINES: set[str] = set()
IN_AN_IMPORT_CYCLE: set[str] = set()
USES_PRIVATE_NAMES: set[str] = set()
# ------------------------------------------------------------------------------------------------------------------

#: Underscore names that are public API by convention (namedtuple methods and fields).
PUBLIC_UNDERSCORE = {"_replace", "_asdict", "_fields", "_make", "_field_defaults"}


@dataclass
class Module:
    """One source file of the package: its dotted name, its tree, and what the checks need from it."""

    path: Path
    name: str
    tree: ast.Module
    lines: int
    imports: dict[str, int] = field(default_factory=dict)  # xaibench module -> first line importing it
    private_uses: list[str] = field(default_factory=list)  # "line N: text"

    @property
    def rel(self) -> str:
        return self.path.relative_to(ROOT).as_posix()


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Module]:
    mods = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        mod = Module(path, _module_name(path), ast.parse(text, str(path)), len(text.splitlines()))
        mods[mod.name] = mod
    for mod in mods.values():
        _scan(mod, mods)
    return mods


def _absolute(mod: Module, node: ast.ImportFrom) -> str:
    """The absolute module an ``ImportFrom`` names (relative imports resolved)."""
    if not node.level:
        return node.module or ""
    package = mod.name.split(".") if mod.path.name == "__init__.py" else mod.name.split(".")[:-1]
    base = package[: len(package) - node.level + 1]
    return ".".join(base + ([node.module] if node.module else []))


def _defined_names(tree: ast.Module) -> set[str]:
    """Every name the module defines itself: functions, classes, assigned names and attributes, arguments."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            names.add(node.attr)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
        elif isinstance(node, ast.keyword) and node.arg:
            names.add(node.arg)  # dataclass(field=...) style constructions of the module's own classes
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in node.names if a.asname)
    return names


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__") and name not in PUBLIC_UNDERSCORE


def _scan(mod: Module, mods: dict[str, Module]) -> None:
    own = _defined_names(mod.tree)

    def edge(target: str, line: int) -> None:
        if target in mods and target != mod.name:
            mod.imports.setdefault(target, line)

    for node in ast.walk(mod.tree):  # every import, at any depth: lazy imports count
        if isinstance(node, ast.Import):
            for alias in node.names:
                edge(alias.name, node.lineno)
                if any(_private(part) for part in alias.name.split(".")) and alias.name.startswith("xaibench"):
                    mod.private_uses.append(f"line {node.lineno}: import {alias.name}")
        elif isinstance(node, ast.ImportFrom):
            source = _absolute(mod, node)
            for alias in node.names:
                sub = f"{source}.{alias.name}"
                edge(sub if sub in mods else source, node.lineno)
                if _private(alias.name):
                    mod.private_uses.append(f"line {node.lineno}: from {source} import {alias.name}")
        elif isinstance(node, ast.Attribute) and _private(node.attr) and node.attr not in own:
            mod.private_uses.append(f"line {node.lineno}: {ast.unparse(node)}")


def _cycles(mods: dict[str, Module]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in mods[v].imports:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(mods):
        if v not in index:
            visit(v)
    return found


MODULES = _modules()


def _compare(found: dict[str, str], listed: set[str], what: str) -> None:
    new = {f: why for f, why in found.items() if f not in listed}
    fixed = sorted(listed - set(found))
    message = []
    if new:
        message += [f"{what}:"] + [f"  {f}: {why}" for f, why in sorted(new.items())]
    if fixed:
        message += [(f"listed as known offenders but no longer {what}: {', '.join(fixed)}; "
                     f"remove them from the list at the top of {Path(__file__).name}")]
    assert not message, "\n".join(message)


def test_the_checks_see_the_package() -> None:
    assert {"xaibench", "xaibench.api.cli", "xaibench.storage.store", "xaibench.leaderboard.board"} <= set(MODULES)
    assert "xaibench.storage.store" in MODULES["xaibench.api.cli"].imports  # a lazy import inside a function counts


def test_no_module_over_the_line_limit() -> None:
    found = {m.rel: f"{m.lines} lines" for m in MODULES.values() if m.lines > MAX_LINES}
    _compare(found, OVER_MAX_LINES, f"over {MAX_LINES} lines (split it into modules named for what they do)")


def test_no_import_cycle() -> None:
    found = {}
    for cycle in _cycles(MODULES):
        members = set(cycle)
        detail = "; ".join(f"{a} imports {b} (line {MODULES[a].imports[b]})"
                           for a in cycle for b in sorted(MODULES[a].imports) if b in members)
        for name in cycle:
            found[MODULES[name].rel] = f"in the cycle {' <-> '.join(cycle)}: {detail}"
    _compare(found, IN_AN_IMPORT_CYCLE, "in an import cycle")


def test_no_module_uses_another_modules_private_names() -> None:
    found = {m.rel: "; ".join(m.private_uses) for m in MODULES.values() if m.private_uses}
    _compare(found, USES_PRIVATE_NAMES, "using another module's private names (make the name public or move the code)")


@pytest.mark.parametrize("source, expected", [
    ("from xaibench.storage.store import _key\n", ["line 1: from xaibench.storage.store import _key"]),
    ("import xaibench.storage.store as s\ns._key()\n", ["line 2: s._key"]),
    ("def f(r):\n    return r._model\n", ["line 2: r._model"]),
    ("class A:\n    def __init__(self):\n        self._x = 1\n\ndef f(a):\n    return a._x, a._replace()\n", []),
])
def test_private_name_detection(source: str, expected: list[str], tmp_path: Path) -> None:
    """The detector itself: foreign private names are caught; the module's own, dunders and namedtuple API are not."""
    mod = Module(PACKAGE / "probe.py", "xaibench.probe", ast.parse(source), source.count("\n"))
    _scan(mod, MODULES)
    assert mod.private_uses == expected


def test_cycle_detection_counts_lazy_imports() -> None:
    """A cycle closed only by an import inside a function is still a cycle."""
    a = Module(PACKAGE / "a.py", "xaibench.a", ast.parse("import xaibench.b\n"), 1)
    b = Module(PACKAGE / "b.py", "xaibench.b", ast.parse("def f():\n    from xaibench import a\n"), 2)
    mods = {"xaibench.a": a, "xaibench.b": b}
    for m in mods.values():
        _scan(m, mods)
    assert _cycles(mods) == [["xaibench.a", "xaibench.b"]]


def _rooms_table() -> list[tuple[str, list[str], list[str]]]:
    """docs/architecture.md's rooms table, in its order: (room, its modules, the rooms it imports)."""
    names = re.compile(r"`([a-z_]+)`")
    rows = []
    for line in ARCHITECTURE.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and names.fullmatch(cells[0]):
            rows.append((names.fullmatch(cells[0]).group(1), names.findall(cells[1]),
                         [] if cells[3] in ("nothing", "every room") else names.findall(cells[3])))
    return rows


ROOMS = _rooms_table()


def _room(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and (PACKAGE / parts[1]).is_dir() else None


def test_the_rooms_are_the_table_of_the_architecture_page() -> None:
    top = sorted(p.name for p in PACKAGE.iterdir()
                 if p.name not in ("__init__.py", "__main__.py", "__pycache__") and not p.name.endswith(".pyc"))
    assert len(top) <= MAX_ENTRIES, f"xaibench/ holds {len(top)} entries besides __init__ and __main__: {top}"
    assert all((PACKAGE / name / "__init__.py").is_file() for name in top), f"a top-level entry is not a room: {top}"
    assert sorted(room for room, _, _ in ROOMS) == top, "docs/architecture.md's table lists other rooms than xaibench/"
    for room, modules, _ in ROOMS:
        found = sorted(p.stem for p in (PACKAGE / room).glob("*.py") if p.name != "__init__.py")
        assert len(found) <= MAX_ENTRIES, f"xaibench/{room}/ holds {len(found)} modules"
        assert sorted(modules) == found, f"docs/architecture.md lists {room}'s modules as {modules}, it holds {found}"


def _room_imports() -> dict[str, set[str]]:
    imports: dict[str, set[str]] = {room: set() for room, _, _ in ROOMS}
    for mod in MODULES.values():
        room = _room(mod.name)
        for target in mod.imports:
            if room and _room(target) and _room(target) != room:
                imports[room].add(_room(target))
    return imports


def test_no_room_imports_a_room_below_it_in_the_table() -> None:
    order = [room for room, _, _ in ROOMS]
    upward = [f"{mod.rel} imports {target} (line {line}): {_room(target)} is below {_room(mod.name)}"
              for mod in MODULES.values() if _room(mod.name)
              for target, line in mod.imports.items()
              if _room(target) and order.index(_room(target)) > order.index(_room(mod.name))]
    assert not upward, "a room imports a later one (move the code, or split it):\n" + "\n".join(upward)


def test_the_tables_imports_column_is_what_each_room_imports() -> None:
    imports = _room_imports()
    order = [room for room, _, _ in ROOMS]
    wrong = [f"{room} imports {', '.join(sorted(imports[room], key=order.index)) or 'nothing'}, the table says "
             f"{', '.join(listed) or 'nothing'}"
             for room, _, listed in ROOMS[:-1] if sorted(listed) != sorted(imports[room])]  # the last: "every room"
    assert not wrong, "docs/architecture.md's imports column:\n" + "\n".join(wrong)


def test_the_layering_check_catches_an_upward_import() -> None:
    """The check itself: a probe in the lowest room importing the highest is an upward import."""
    lowest, highest = ROOMS[0][0], ROOMS[-1][0]
    probe = Module(PACKAGE / lowest / "probe.py", f"xaibench.{lowest}.probe",
                   ast.parse(f"from xaibench.{highest}.cli import main\n"), 1)
    _scan(probe, {**MODULES, probe.name: probe})
    order = [room for room, _, _ in ROOMS]
    assert [t for t in probe.imports if order.index(_room(t)) > order.index(lowest)] == [f"xaibench.{highest}.cli"]
