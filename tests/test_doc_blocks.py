"""Every code block in README.md and docs/ runs, or says why it cannot here: a doc that rots fails the tests.

A fenced block's language decides what is checked:

- ``python``: executed in a fresh namespace, in a temporary directory. A one-line ``def`` signature without
  a body (the hook reference's headings) is compiled as a signature and must name a real hook.
- ``bash``: must be marked, with an HTML comment between the previous block and this one:
  ``<!-- docs-test: run -->`` runs it with ``bash -euo pipefail`` in a temporary directory with its own
  ``XAIBENCH_HOME`` (only cheap commands: seconds); ``<!-- docs-test: skip: REASON -->`` skips it with the
  reason (it needs data, a GPU, a cluster, installs packages or runs for minutes; name the test that covers
  it where one does).
- ``yaml``: parsed; a whole suite (``name:`` and ``datasets:``) is loaded with :func:`load_suite` and its
  dataset, method and metric names must be registered. ``toml``: parsed.
- ``text`` and blocks without a language are output or layouts, not code: not run.

``<!-- docs-test: skip: REASON -->`` also skips a python, yaml or toml block. The README's leaderboard excerpt
must match the committed leaderboard it quotes.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from xaibench.contract import hookspecs
from xaibench.contract.plugins import load_harness
from xaibench.suites.suite import load_suite

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
FENCE = re.compile(r"^(\s*)```(\w*)\s*$")
MARKER = re.compile(r"<!--\s*docs-test:\s*(run|skip:\s*(.+?))\s*-->")
NOT_CODE = {"", "text"}


@dataclass(frozen=True)
class Block:
    """One fenced code block: where it is, its language, its text (dedented) and its marker."""

    path: Path
    line: int
    language: str
    code: str
    marker: str | None  # "run", "skip: reason" or None

    @property
    def id(self) -> str:
        return f"{self.path.relative_to(ROOT).as_posix()}:{self.line}"


def blocks(path: Path) -> list[Block]:
    """The fenced blocks of a markdown file, each with the docs-test marker written since the previous block."""
    found, marker, lines = [], None, path.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if not opening:
            seen = MARKER.search(lines[i])
            marker = seen.group(1) if seen else marker
            i += 1
            continue
        indent, language, start = opening.group(1), opening.group(2), i
        i += 1
        body = []
        while i < len(lines) and lines[i].strip() != "```":
            body.append(lines[i].removeprefix(indent))
            i += 1
        assert i < len(lines), f"{path}:{start + 1}: unclosed code block"
        found.append(Block(path, start + 1, language, "\n".join(body) + "\n", marker))
        marker, i = None, i + 1
    return found


ALL = [b for path in DOCS for b in blocks(path)]
CODE = [b for b in ALL if b.language not in NOT_CODE]
HARNESS = load_harness()


def _skip_if_marked(block: Block) -> None:
    if block.marker and block.marker.startswith("skip"):
        pytest.skip(block.marker.split(":", 1)[1].strip())


PYTHON_PAGES = sorted({b.path for b in CODE if b.language == "python"})


@pytest.mark.parametrize("page", PYTHON_PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_python_blocks_run(page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A page's python blocks run in order in one namespace, as a reader runs them in one session: a block may
    use what an earlier block of the same page defined (``model``, ``images``, ...). Marked blocks are skipped."""
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": f"docs_page_{page.stem}"}
    for block in (b for b in CODE if b.path == page and b.language == "python"):
        if block.marker and block.marker.startswith("skip"):
            continue
        signature = re.fullmatch(r"def (\w+)\(.*\)( -> .+)?\n", block.code)
        if signature:
            compile(block.code.rstrip("\n") + ": ...\n", block.id, "exec")
            assert hasattr(hookspecs, signature.group(1)), f"{block.id}: {signature.group(1)} is not a hook"
            continue
        exec(compile(block.code, block.id, "exec"), namespace)  # noqa: S102


@pytest.mark.parametrize("block", [b for b in CODE if b.language in {"bash", "sh", "console", "shell"}],
                         ids=lambda b: b.id)
def test_bash_blocks_run_or_say_why_not(block: Block, tmp_path: Path) -> None:
    assert block.marker, (f"{block.id}: mark this block `<!-- docs-test: run -->` (cheap commands) or "
                          "`<!-- docs-test: skip: REASON -->` just before it")
    _skip_if_marked(block)
    assert block.marker == "run", f"{block.id}: unknown marker {block.marker!r}"
    bindir = os.path.dirname(sys.executable)  # the environment's `xaibench` script
    env = {**os.environ, "XAIBENCH_HOME": str(tmp_path / "home"), "PATH": bindir + os.pathsep + os.environ["PATH"]}
    out = subprocess.run(["bash", "-euo", "pipefail", "-c", block.code], check=False, cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, f"{block.id} exited {out.returncode}:\n{out.stdout}\n{out.stderr}"


@pytest.mark.parametrize("block", [b for b in CODE if b.language in {"yaml", "yml", "toml"}], ids=lambda b: b.id)
def test_yaml_and_toml_blocks_parse_and_suites_name_registered_plugins(block: Block, tmp_path: Path) -> None:
    _skip_if_marked(block)
    if block.language == "toml":
        tomllib = pytest.importorskip("tomllib", reason="tomllib is in the standard library from Python 3.11")
        tomllib.loads(block.code)
        return
    doc = yaml.safe_load(block.code)
    assert isinstance(doc, dict), f"{block.id}: not a mapping"
    if {"name", "datasets"} <= set(doc):
        suite_file = tmp_path / "suite.yaml"
        suite_file.write_text(block.code, encoding="utf-8")
        suite = load_suite(suite_file)
        for kind in ("datasets", "methods", "metrics"):
            registry = getattr(HARNESS, kind)
            for entry in getattr(suite, kind):
                assert entry.name in registry, f"{block.id}: {kind[:-1]} {entry.name!r} is not registered"


def test_every_code_block_has_a_language_this_test_knows() -> None:
    known = {"python", "bash", "sh", "console", "shell", "yaml", "yml", "toml"}
    assert not [b.id for b in CODE if b.language not in known]
    assert len([b for b in CODE if b.language == "bash" and b.marker == "run"]) >= 1


def test_the_parser_reads_markers_indented_blocks_and_languages(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("# t\n\n<!-- docs-test: skip: needs a GPU -->\n```bash\nnvidia-smi\n```\n\n```bash\nls\n```\n\n"
                    "- item\n\n  <!-- docs-test: run -->\n  ```python\n  x = 1\n    y = 2\n  ```\n\n```\nlayout\n```\n")
    got = [(b.line, b.language, b.code, b.marker) for b in blocks(page)]
    assert got == [(4, "bash", "nvidia-smi\n", "skip: needs a GPU"), (8, "bash", "ls\n", None),
                   (15, "python", "x = 1\n  y = 2\n", "run"), (20, "", "layout\n", None)]


def _table(text: str, header_start: str) -> dict[str, dict[str, str]]:
    """The first markdown table whose header row starts with ``header_start``: method -> column -> cell."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header_start))
    header = [c.strip() for c in lines[start].strip("|").split("|")]
    rows = {}
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows[cells[header.index("method")]] = dict(zip(header, cells))
    return rows


def test_the_readme_leaderboard_excerpt_quotes_the_committed_leaderboard() -> None:
    """Each cell of the README's excerpt equals the same method's cell in leaderboards/medical.md's first table
    (after regenerating the leaderboards, copy the rows again)."""
    excerpt = _table((ROOT / "README.md").read_text(encoding="utf-8"), "| rank | method |")
    board = _table((ROOT / "leaderboards" / "medical.md").read_text(encoding="utf-8"), "| rank   | method")
    assert len(excerpt) >= 3
    for method, cells in excerpt.items():
        assert method in board, f"README excerpt: {method!r} is not in leaderboards/medical.md"
        for column, cell in cells.items():
            assert board[method].get(column) == cell, (
                f"README excerpt, {method} / {column}: {cell!r}, leaderboards/medical.md: {board[method].get(column)!r}")
