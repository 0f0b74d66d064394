"""The SQLite store: atomic cells, replacement of failures, plans, WAL."""
from __future__ import annotations

import math
from pathlib import Path

from xaibench.storage.store import CellResult, PlanRow, Store


def _cell(key: str, status: str = "ok", mean: float | None = 0.5) -> CellResult:
    return CellResult(key, "d", "m", "me", "mt", status, mean, 0.4, 0.6, 3, 4, None if status == "ok" else "boom",
                      {"seed": 0})


def test_cells_and_scores_round_trip(tmp_path: Path) -> None:
    with Store(tmp_path / "s.sqlite") as s:
        s.put_cell(_cell("k1"), ["a", "b", "c", "d"], [1.0, 0.0, float("nan"), 0.5])
        assert s.cell("k1").mean == 0.5 and s.cell("k1").provenance == {"seed": 0}
        scores = s.scores("k1")
        assert scores["a"] == 1.0 and math.isnan(scores["c"])
        assert s.finished(["k1", "k2"]) == {"k1"}
        assert s.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_failed_cell_is_replaced_not_duplicated(tmp_path: Path) -> None:
    with Store(tmp_path / "s.sqlite") as s:
        s.put_cell(_cell("k", status="failed", mean=None))
        assert s.finished(["k"]) == set()
        s.put_cell(_cell("k"), ["a"], [1.0])
        s.put_cell(_cell("k"), ["a"], [1.0])
        assert s.counts() == {"cells": 1, "scores": 1, "models": 0}
        assert s.cell("k").status == "ok"


def test_plan_and_header_round_trip_and_reopen(tmp_path: Path) -> None:
    rows = [PlanRow("k1", "d", "m", "mk", "me", "mt", "localization", True, None),
            PlanRow("k2", "d", "m", "mk", "me", "mt2", "faithfulness", False, "no masks")]
    with Store(tmp_path / "s.sqlite") as s:
        s.put_plan("suite", rows, {"seed": 1})
    with Store(tmp_path / "s.sqlite") as s:
        assert s.plan("suite") == rows
        assert s.header("suite") == {"seed": 1}
        assert s.suites() == ["suite"]


def test_not_a_database_gives_a_clear_error(tmp_path: Path) -> None:
    import pytest

    from xaibench.base.errors import XaibenchError

    bad = tmp_path / "bad.sqlite"
    bad.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(XaibenchError, match="not a usable xaibench store"):
        Store(bad)


def test_a_writer_waits_for_a_short_lock_and_refuses_clearly_after_the_timeout(tmp_path: Path) -> None:
    import sqlite3
    import threading

    import pytest

    from xaibench.base.errors import XaibenchError

    path = tmp_path / "s.sqlite"
    Store(path).close()
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")  # another run in the middle of writing a cell
    threading.Timer(0.3, lambda: other.execute("COMMIT")).start()
    with Store(path, timeout=10) as s:
        s.put_cell(_cell("k"), ["a"], [1.0])  # waits for the other writer, then commits
        assert s.counts()["cells"] == 1
    other.execute("BEGIN IMMEDIATE")
    with pytest.raises(XaibenchError, match="held the store's write lock for over 0.2s"):
        Store(path, timeout=0.2)  # opening writes the schema, so it already refuses
    other.execute("ROLLBACK")
    with Store(path) as s:
        assert s.finished(["k", "k2"]) == {"k"}
