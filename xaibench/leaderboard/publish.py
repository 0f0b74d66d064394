"""Writing a suite's leaderboard files, and checking published files for staleness (``--check``).

:func:`write` puts ``<suite>.md``, ``<suite>.json``, the agreement heat maps and the
index in a folder; :func:`problems` lists what in such a folder differs from what
the store renders now.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from xaibench.base.errors import PublishError
from xaibench.figures.charts import agreement_heatmap, figure_path
from xaibench.leaderboard import ranking
from xaibench.leaderboard.board import board
from xaibench.leaderboard.compare import differences
from xaibench.leaderboard.exports import to_json
from xaibench.leaderboard.index import INDEX, render_index, write_index
from xaibench.leaderboard.markdown import render
from xaibench.storage.store import Store


def _rendered(store: Store, suite: str) -> dict[str, str]:
    """File name -> content of the text files that represent ``suite``."""
    return {f"{suite}.md": render(store, suite), f"{suite}.json": to_json(store, suite)}


def write(store: Store, suite: str, out_dir: str | Path) -> Path:
    """Write ``<suite>.md``, ``<suite>.json``, the agreement heat maps and the index; return the markdown's path."""
    return _write(store, suite, out_dir)[0]


def _write(store: Store, suite: str, out_dir: str | Path) -> tuple[Path, list[Path]]:
    """:func:`write`, also returning the figures it drew (agreement heat maps, critical difference diagrams)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name, text in _rendered(store, suite).items():
        (out / name).write_text(text, encoding="utf-8")
    drawn = [agreement_heatmap(b.agreement, b.agreement_metrics, f"{b.dataset} × {b.model}",
                               out / figure_path(suite, b.dataset, b.model, "agreement"))
             for b in board(store, suite) if len(b.agreement_metrics) >= 2]
    drawn += ranking.write_figures(board(store, suite), store.header(suite) or {}, suite, out)
    write_index(out)
    return out / f"{suite}.md", drawn


@contextmanager
def stage(name: str, store: Store, suite: str, out_dir: str | Path) -> Iterator[None]:
    """Run one publishing stage of ``xaibench run`` (``name``: "leaderboard", "figures", ...) after its cells are
    stored: any exception but an interrupt becomes a :class:`~xaibench.base.errors.PublishError` naming the stage, the
    cause and the command that writes the board from the store once the cause is fixed (chained: ``--debug``
    shows the traceback). Computed work is never lost: each cell was committed when it finished."""
    try:
        yield
    except Exception as exc:  # a bug in publishing must not read as a lost run
        cause = str(exc).splitlines()[0] if str(exc) else ""
        raise PublishError(
            f"writing the {name} of suite {suite!r} failed ({type(exc).__name__}{': ' + cause if cause else ''}); "
            f"every computed cell is saved in {store.path}: once the cause is fixed, write the board with "
            f"`xaibench leaderboard --suite {suite} --store {store.path} --out {out_dir}`") from exc


def publish_run(store: Store, suite: str, out_dir: str | Path, runner: Any = None) -> Iterator[tuple[str, bool]]:
    """Publish a finished run, stage by stage (:func:`stage`): the leaderboard, the run's figures (with
    ``runner``: galleries and curves, :func:`xaibench.figures.charts.write_run_figures`; None: none), the pruning of
    figures no longer linked, the calibration verdict. Yields ``(line to print, to stderr)`` as it goes."""
    from xaibench.figures.charts import prune, write_run_figures
    from xaibench.leaderboard import verdict

    with stage("leaderboard", store, suite, out_dir):
        path, figures = _write(store, suite, out_dir)
    yield f"leaderboard written to {path}", False
    if runner is not None:
        with stage("figures", store, suite, out_dir):
            figures += write_run_figures(runner, out_dir)
    if figures:  # every PNG drawn: heat maps and rank diagrams of the board, galleries and curves of the run
        yield f"{len(set(figures))} figure(s) written to {', '.join(sorted({str(p.parent) for p in figures}))}", False
    with stage("figure pruning", store, suite, out_dir):
        pruned = prune(out_dir, suite, path.read_text(encoding="utf-8"))
    for stale in pruned:
        yield f"removed {stale}: the leaderboard no longer links it", False
    with stage("calibration verdict", store, suite, out_dir):
        lines = verdict.summary_lines(store, suite)
    for line in lines:
        yield line, not line.startswith("calibration verdict")


def problems(store: Store, suite: str, out_dir: str | Path) -> list[str]:
    """What is stale or missing in ``out_dir`` for ``suite``; empty when up to date.

    The markdown, the JSON and the index are compared byte for byte with what the
    store renders now; where the JSON differs, indented lines say what differs in content
    (:func:`xaibench.leaderboard.compare.differences`: cells, model evaluations, provenance),
    so a board regenerated on another machine shows which numbers moved and what else changed
    (versions, CPU instruction set, thread counts), and a board that is only stale says so. Figures are checked for existence only: PNG bytes depend on
    the matplotlib and FreeType versions and on float rounding of the maps on the
    machine that drew them, so comparing them would flag every other machine.
    """
    out = Path(out_dir)
    found = []
    rendered = _rendered(store, suite)
    for name, text in rendered.items():
        found += _differs(out / name, text, "the store renders")
    published = out / f"{suite}.json"
    if published.exists():
        found += [f"  {line}" for line in differences(published.read_text(encoding="utf-8"), rendered[published.name])]
    for link in _linked_figures(rendered[f"{suite}.md"]):
        if not (out / link).exists():
            found.append(f"{out / link} is missing (figures are drawn by `xaibench run --suite {suite}`)")
    return found + index_problems(out)


def index_problems(out_dir: str | Path) -> list[str]:
    """What is stale or missing about ``out_dir/README.md``: empty when it equals :func:`render_index`."""
    return _differs(Path(out_dir) / INDEX, render_index(out_dir), "the <suite>.json files beside it render")


def _differs(path: Path, text: str, source: str) -> list[str]:
    current = path.read_text(encoding="utf-8") if path.exists() else None
    if current == text:
        return []
    return [f"{path} is {'missing' if current is None else 'stale'}: it differs from what {source}"]


def _linked_figures(markdown: str) -> list[str]:
    return [line.split("](", 1)[1].rstrip(")") for line in markdown.splitlines() if line.startswith("![")]
