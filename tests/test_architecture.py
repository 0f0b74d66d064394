"""The core's shape, checked over the AST of ``xaibench/`` (docs/architecture.md says why).

- no import cycle between xaibench modules, counting imports inside functions and
  under ``if TYPE_CHECKING:`` (a lazy import hides a cycle from the interpreter,
  not from a reader);
- no module imports or uses another module's private names (``from x import _y``,
  ``x._y``, ``obj._y`` where ``_y`` is not defined in the module itself);
- no module over 400 lines.

Known offenders are listed below by file. The lists must equal what the checks
find: a new offender fails, and so does a listed file that no longer offends, so
that a list cannot outlive its reason.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "xaibench"
MAX_LINES = 400

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
    assert {"xaibench", "xaibench.cli", "xaibench.store", "xaibench.leaderboard.board"} <= set(MODULES)
    assert "xaibench.store" in MODULES["xaibench.cli"].imports  # a lazy import inside a function counts


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
    ("from xaibench.store import _key\n", ["line 1: from xaibench.store import _key"]),
    ("import xaibench.store as s\ns._key()\n", ["line 2: s._key"]),
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
