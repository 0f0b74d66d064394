"""SQLite results store (WAL): per-sample scores, per-cell summaries, provenance.

Keys are content addresses: a cell's key hashes everything that determines its
scores (dataset fingerprint, model checkpoint key, method and metric names,
versions and parameters, sample ids, seed, target rule), so a re-run finds its
finished cells and a changed suite never reuses stale ones. Each cell is written
in one transaction: a run killed at any point leaves only whole cells behind.
"""
from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

import numpy as np

from xaibench.base.errors import XaibenchError

SCHEMA_VERSION = "1"
DEFAULT_STORE = "xaibench-results/results.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS models (
    model_key TEXT PRIMARY KEY, dataset TEXT NOT NULL, model TEXT NOT NULL,
    checkpoint_sha256 TEXT NOT NULL, evaluation TEXT NOT NULL, provenance TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS cells (
    cell_key TEXT PRIMARY KEY, dataset TEXT NOT NULL, model TEXT NOT NULL,
    method TEXT NOT NULL, metric TEXT NOT NULL, status TEXT NOT NULL,
    mean REAL, ci_low REAL, ci_high REAL, n INTEGER NOT NULL, n_total INTEGER NOT NULL,
    error TEXT, provenance TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS scores (
    cell_key TEXT NOT NULL, sample_id TEXT NOT NULL, value REAL,
    PRIMARY KEY (cell_key, sample_id)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS plans (
    suite TEXT NOT NULL, position INTEGER NOT NULL, cell_key TEXT NOT NULL,
    dataset TEXT NOT NULL, model TEXT NOT NULL, model_key TEXT NOT NULL,
    method TEXT NOT NULL, metric TEXT NOT NULL, category TEXT NOT NULL,
    higher_is_better INTEGER NOT NULL, skip_reason TEXT,
    PRIMARY KEY (suite, position));
CREATE TABLE IF NOT EXISTS suites (suite TEXT PRIMARY KEY, header TEXT NOT NULL);
"""


@dataclass(frozen=True)
class CellResult:
    """One scored cell (dataset x model x method x metric) as stored.

    ``mean``, ``ci_low``, ``ci_high``: the mean over the samples with a defined score and
    its 95% percentile bootstrap CI (:func:`xaibench.scoring.stats.summarize`), in the metric's
    units; stored NaN/inf become None. ``n``: samples with a defined (finite) score;
    ``n_total``: samples evaluated. ``status`` is ``ok`` or ``failed`` (``error`` says why).
    """

    cell_key: str
    dataset: str
    model: str
    method: str
    metric: str
    status: str  # "ok" | "failed"
    mean: float | None
    ci_low: float | None
    ci_high: float | None
    n: int
    n_total: int
    error: str | None
    provenance: Mapping[str, Any]


@dataclass(frozen=True)
class PlanRow:
    """One cell of a suite's plan, in plan order: what the leaderboard shows, scored or not.

    ``skip_reason`` is set when the cell cannot apply (for example a localization
    metric on a dataset without masks); ``model_key`` identifies the trained model.
    """

    cell_key: str
    dataset: str
    model: str
    model_key: str
    method: str
    metric: str
    category: str
    higher_is_better: bool
    skip_reason: str | None


def _nullable(x: float | None) -> float | None:
    return None if x is None or not np.isfinite(x) else float(x)


class Store:
    """A results store at ``path``; safe to open from several processes at once."""

    def __init__(self, path: str | Path, timeout: float = 60.0) -> None:
        self.path = Path(path)
        self.timeout = timeout
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.db = sqlite3.connect(self.path, timeout=timeout, isolation_level=None)
            self._wal(time.monotonic() + timeout)
            self.db.execute("PRAGMA synchronous=NORMAL")
            with self.transaction():
                for statement in filter(str.strip, _SCHEMA.split(";")):
                    self.db.execute(statement)
                self.db.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (SCHEMA_VERSION,))
            version = self.db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            raise XaibenchError(f"{self.path}: not a usable xaibench store ({exc})") from None
        if version != SCHEMA_VERSION:
            raise XaibenchError(f"{self.path}: store schema {version} is not the supported {SCHEMA_VERSION}")

    def _wal(self, deadline: float) -> None:
        """Switch to WAL, waiting while another process holds the lock (until ``deadline``, monotonic seconds).

        SQLite answers a journal-mode change with SQLITE_BUSY at once, without the busy
        handler, while another connection is creating the same new store: two runs started
        together on one new store would otherwise fail with "database is locked".
        """
        while True:
            try:
                self.db.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def close(self) -> None:
        """Close the database connection."""
        self.db.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def transaction(self) -> "_Transaction":
        """A context manager around one write transaction (``BEGIN IMMEDIATE`` ... ``COMMIT``)."""
        return _Transaction(self)

    # -- writes ---------------------------------------------------------------------------
    def put_model(self, model_key: str, dataset: str, model: str, checkpoint_sha256: str,
                  evaluation: Mapping[str, Any], provenance: Mapping[str, Any]) -> None:
        """Record a trained model: checkpoint digest, test-split evaluation, provenance (replacing any earlier row)."""
        with self.transaction():
            self.db.execute(
                "INSERT OR REPLACE INTO models VALUES (?, ?, ?, ?, ?, ?)",
                (model_key, dataset, model, checkpoint_sha256, json.dumps(evaluation, sort_keys=True),
                 json.dumps(provenance, sort_keys=True)),
            )

    def put_cell(self, cell: CellResult, sample_ids: Sequence[str] = (), values: Iterable[float] = ()) -> None:
        """Write one cell and its per-sample scores atomically (replacing an earlier failure)."""
        with self.transaction():
            self.db.execute("DELETE FROM scores WHERE cell_key = ?", (cell.cell_key,))
            self.db.execute(
                "INSERT OR REPLACE INTO cells VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (cell.cell_key, cell.dataset, cell.model, cell.method, cell.metric, cell.status,
                 _nullable(cell.mean), _nullable(cell.ci_low), _nullable(cell.ci_high), cell.n, cell.n_total,
                 cell.error, json.dumps(cell.provenance, sort_keys=True, default=str)),
            )
            self.db.executemany(
                "INSERT INTO scores VALUES (?, ?, ?)",
                [(cell.cell_key, sid, _nullable(v)) for sid, v in zip(sample_ids, values)],
            )

    def put_plan(self, suite: str, rows: Sequence[PlanRow], header: Mapping[str, Any]) -> None:
        """Record the cells a suite consists of now; the leaderboard renders exactly these."""
        with self.transaction():
            self.db.execute("DELETE FROM plans WHERE suite = ?", (suite,))
            self.db.executemany(
                "INSERT INTO plans VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(suite, i, r.cell_key, r.dataset, r.model, r.model_key, r.method, r.metric, r.category,
                  int(r.higher_is_better), r.skip_reason) for i, r in enumerate(rows)],
            )
            self.db.execute("INSERT OR REPLACE INTO suites VALUES (?, ?)",
                            (suite, json.dumps(header, sort_keys=True, default=str)))

    # -- reads ----------------------------------------------------------------------------
    def finished(self, cell_keys: Iterable[str]) -> set[str]:
        """The subset of ``cell_keys`` already stored with status ``ok``."""
        keys = list(cell_keys)
        done: set[str] = set()
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            q = f"SELECT cell_key FROM cells WHERE status = 'ok' AND cell_key IN ({','.join('?' * len(chunk))})"
            done.update(k for (k,) in self.db.execute(q, chunk))
        return done

    def cell(self, cell_key: str) -> CellResult | None:
        """The stored cell ``cell_key``, or None if it was never stored."""
        row = self.db.execute("SELECT * FROM cells WHERE cell_key = ?", (cell_key,)).fetchone()
        if row is None:
            return None
        return CellResult(*row[:-1], provenance=json.loads(row[-1]))

    def scores(self, cell_key: str) -> dict[str, float]:
        """Per-sample scores of ``cell_key``: sample id -> value, sorted by id; undefined samples are NaN."""
        rows = self.db.execute("SELECT sample_id, value FROM scores WHERE cell_key = ? ORDER BY sample_id", (cell_key,))
        return {sid: (np.nan if v is None else v) for sid, v in rows}

    def plan(self, suite: str) -> list[PlanRow]:
        """The cells of ``suite``'s latest plan, in plan order (empty for an unknown suite)."""
        rows = self.db.execute(
            "SELECT cell_key, dataset, model, model_key, method, metric, category, higher_is_better, skip_reason "
            "FROM plans WHERE suite = ? ORDER BY position", (suite,)).fetchall()
        return [PlanRow(*r[:7], bool(r[7]), r[8]) for r in rows]

    def header(self, suite: str) -> dict[str, Any] | None:
        """The provenance header recorded with ``suite``'s latest plan (seed, versions, datasets...), or None."""
        row = self.db.execute("SELECT header FROM suites WHERE suite = ?", (suite,)).fetchone()
        return None if row is None else json.loads(row[0])

    def model_evaluation(self, model_key: str) -> dict[str, Any] | None:
        """The test-split evaluation of ``model_key`` (accuracy, precision, recall, F1, majority, n), or None."""
        row = self.db.execute("SELECT evaluation FROM models WHERE model_key = ?", (model_key,)).fetchone()
        return None if row is None else json.loads(row[0])

    def suites(self) -> list[str]:
        """The names of every suite with a plan in the store, sorted."""
        return [s for (s,) in self.db.execute("SELECT suite FROM suites ORDER BY suite")]

    def counts(self) -> dict[str, int]:
        """Row counts of the ``cells``, ``scores`` and ``models`` tables."""
        return {t: self.db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in ("cells", "scores", "models")}

    def iter_cells(self, suite: str) -> Iterator[tuple[PlanRow, CellResult | None]]:
        """Each plan row of ``suite`` with its stored cell (None when skipped or never run), in plan order."""
        for row in self.plan(suite):
            yield row, (None if row.skip_reason else self.cell(row.cell_key))


class _Transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT``: one writer at a time, others wait (busy timeout).

    Transactions are one cell long, so a concurrent run waits milliseconds; a writer that
    holds the lock past the timeout (a process stopped in a debugger) gets a clear refusal.
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        self.db = store.db

    def __enter__(self) -> None:
        try:
            self.db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
            raise XaibenchError(
                f"{self.store.path}: another process has held the store's write lock for over "
                f"{self.store.timeout:g}s ({exc}); let it finish, or pass another --store") from None

    def __exit__(self, exc_type: object, *rest: object) -> None:
        self.db.execute("ROLLBACK" if exc_type else "COMMIT")
