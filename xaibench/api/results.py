"""What :func:`xaibench.api.run` returns (:class:`Results` over the store), and the suite a run is asked for."""
from __future__ import annotations

import dataclasses
import html
import math
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from xaibench.base.errors import XaibenchError, did_you_mean
from xaibench.api.user_inputs import pandas_module

if TYPE_CHECKING:

    from xaibench.suites.options import RunOptions, RunSummary
    from xaibench.contract.plugins import Harness
    from xaibench.running.runner import Runner
    from xaibench.storage.store import Store
    from xaibench.suites.suite import Suite


# -- run -----------------------------------------------------------------------------------------
@dataclasses.dataclass
class Results:
    """A suite's results in its store, after :func:`run`: the board, cells, verdicts, per-sample scores.

    ``summary`` counts what the run computed, reused, skipped and failed; ``runner`` is the
    :class:`~xaibench.running.runner.Runner` that did it, whose store :func:`run` has closed when it returns
    (``runner.suite`` is the validated suite; the CLI draws figures with it while the store is open).
    """

    suite: str
    store_path: Path
    summary: RunSummary
    runner: Runner

    def _store(self) -> Store:
        from xaibench.storage.store import Store

        return Store(self.store_path)

    def leaderboard(self) -> list[Any]:
        """The board model: one :class:`~xaibench.leaderboard.Block` per dataset x model (methods ranked)."""
        from xaibench.leaderboard import board

        with self._store() as store:
            return board(store, self.suite)

    @property
    def cells(self) -> list[Any]:
        """One :class:`~xaibench.leaderboard.Record` per planned cell (mean, CI, n, status, reason)."""
        from xaibench.leaderboard import records

        with self._store() as store:
            return records(store, self.suite)

    @property
    def verdicts(self) -> list[Any]:
        """The calibration verdict (:class:`~xaibench.leaderboard.verdict.Verdict`) of each dataset x model."""
        from xaibench.leaderboard.verdict import verdicts

        with self._store() as store:
            return verdicts(store, self.suite)

    def scores(self, dataset: str, model: str, method: str, metric: str) -> dict[str, float]:
        """The stored per-sample scores (sample id -> score) of one cell, by its display names."""
        for row_, cell in self._cells():
            if (row_.dataset, row_.model, row_.method, row_.metric) == (dataset, model, method, metric):
                with self._store() as store:
                    return store.scores(row_.cell_key) if cell is not None else {}
        raise XaibenchError(f"suite {self.suite!r} has no cell {dataset} / {model} / {method} / {metric}")

    def _cells(self) -> list[Any]:
        with self._store() as store:
            return list(store.iter_cells(self.suite))

    def to_pandas(self) -> Any:
        """A tidy ``pandas.DataFrame`` of per-sample scores: columns dataset, model, method, metric, id, score;
        cells with no scores (skipped, failed) are absent (``cells`` gives their reasons)."""
        pd = pandas_module()
        rows = []
        with self._store() as store:
            for row_, cell in store.iter_cells(self.suite):
                if cell is None or cell.status != "ok":
                    continue
                rows += [(row_.dataset, row_.model, row_.method, row_.metric, sid, v)
                         for sid, v in store.scores(row_.cell_key).items()]
        return pd.DataFrame(rows, columns=["dataset", "model", "method", "metric", "id", "score"])

    def markdown(self) -> str:
        """The leaderboard as markdown, as ``xaibench leaderboard`` writes it."""
        from xaibench.leaderboard import render

        with self._store() as store:
            return render(store, self.suite)

    def _repr_html_(self) -> str:
        """Each dataset x model block's table (method, metric means), for Jupyter."""
        parts = []
        for b in self.leaderboard():
            head = "".join(f"<th>{html.escape(m)} {'↑' if b.higher_is_better[m] else '↓'}</th>" for m in b.metrics)
            rows = "".join(
                f"<tr><td>{'' if r.rank is None else r.rank}</td><td>{html.escape(r.method)}</td>"
                + "".join(f"<td>{mean_text(r.cells.get(m))}</td>" for m in b.metrics) + "</tr>" for r in b.rows)
            parts.append(f"<h4>{html.escape(b.dataset)} / {html.escape(b.model)}</h4>"
                         f"<table><tr><th>rank</th><th>method</th>{head}</tr>{rows}</table>")
        return "".join(parts)


def mean_text(record: Any) -> str:
    """A board record's mean with three decimals, or "–" where it has none."""
    mean = getattr(record, "mean", None)
    return "–" if mean is None or not math.isfinite(mean) else f"{mean:.3f}"


def resolve_suite(harness: Harness, suite: str | Path | Mapping[str, Any],
                  overrides: Mapping[str, Any] | None = None) -> Suite:
    """A registered suite name, a path to a YAML file, or a dict in the YAML's layout, as a validated Suite.

    ``overrides``: dotted key -> value set on the suite before it is validated (:mod:`xaibench.suites.overrides`).
    """
    from xaibench.suites.suite import load_suite

    if isinstance(suite, Mapping):
        import tempfile

        import yaml

        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / f"{suite.get('name', 'suite')}.yaml"
            path.write_text(yaml.safe_dump(plain(suite), sort_keys=False), encoding="utf-8")
            return dataclasses.replace(load_suite(path, overrides), path="<dict>")
    name_or_path = str(suite)
    if name_or_path in harness.suites:
        return load_suite(harness.suites.get(name_or_path).path, overrides)
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.exists():
        if not path.exists():
            raise XaibenchError(f"suite file {path} does not exist")
        return load_suite(path, overrides)
    known = ", ".join(harness.suites.names()) or "none"
    raise XaibenchError(f"unknown suite {name_or_path!r}{did_you_mean(name_or_path, harness.suites.names())}; "
                        f"built-in suites: {known}; or give a path to a YAML file")


def plain(value: Any) -> Any:
    """``value`` with mappings, tuples and lists as plain dicts and lists (what YAML dumps)."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def run_suite(harness: Harness, suite: Suite, store: Store, options: RunOptions) -> Results:
    """Plan and run ``suite`` into the open ``store`` with ``options``: the CLI's ``run`` and :func:`run`."""
    from xaibench.running.runner import Runner

    runner = Runner(harness, suite, store, options)
    summary = runner.run(runner.plan())
    return Results(suite.name, Path(store.path), summary, runner)
