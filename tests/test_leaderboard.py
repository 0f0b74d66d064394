"""Leaderboard rendering from a hand-built store: values, CIs, ranks, directions, failures."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from xaibench import leaderboard
from xaibench.errors import XaibenchError
from xaibench.leaderboard import _ranks
from xaibench.store import CellResult, PlanRow, Store


def _store(tmp_path: Path) -> Store:
    s = Store(tmp_path / "s.sqlite")
    methods = {"good": (0.9, 5.0), "bad": (0.1, 50.0), "broken": (None, None)}
    rows = []
    for me, (hit, drop) in methods.items():
        for mt, hib, v in (("hit-rate", True, hit), ("dic", False, drop)):
            key = f"{me}-{mt}"
            rows.append(PlanRow(key, "ds", "net", "mk", me, mt, "x", hib, None))
            status = "failed" if v is None else "ok"
            s.put_cell(CellResult(key, "ds", "net", me, mt, status, v, None if v is None else v - 0.05,
                                  None if v is None else v + 0.05, 10, 12, "ValueError: nope" if v is None else None, {}))
    rows.append(PlanRow("skip", "ds", "net", "mk", "good", "hit-rate-2", "x", True, "dataset 'ds' has no masks"))
    s.put_plan("demo", rows, {"seed": 7, "samples": 12, "target": "predicted", "versions": {"torch": "x"},
                              "metrics": {"hit-rate": {"category": "localization", "higher_is_better": True,
                                                       "description": "a | b", "citation": "Z"}}})
    s.put_model("mk", "ds", "net", "sha", {"accuracy": 0.9, "precision": 0.8, "recall": 0.7, "f1": 0.75, "n": 20,
                                            "majority": 0.5}, {})
    return s


def test_render_shows_values_ranks_arrows_and_failures(tmp_path: Path) -> None:
    with _store(tmp_path) as s:
        md = leaderboard.render(s, "demo")
    assert "| rank   | method   | hit-rate ↑" in md
    assert "dic ↓" in md
    good = next(line for line in md.splitlines() if "| good" in line)
    bad = next(line for line in md.splitlines() if "| bad" in line)
    assert good.startswith("| 1 ") and bad.startswith("| 2 ")
    assert "0.900 [0.850, 0.950]" in good and "5.000 [4.950, 5.050]" in good
    assert "**failed**" in md and "broken / dic failed: ValueError: nope" in md
    assert "n/a" in md and "dataset 'ds' has no masks" in md
    assert "accuracy 0.900" in md
    assert "a \\| b" in md  # pipes in descriptions cannot break the table


def test_render_is_deterministic_and_check_detects_staleness(tmp_path: Path) -> None:
    with _store(tmp_path) as s:
        path = leaderboard.write(s, "demo", tmp_path / "lb")
        assert leaderboard.render(s, "demo") == path.read_text()
        assert leaderboard.is_stale(s, "demo", tmp_path / "lb")[0] is False
        path.write_text(path.read_text().replace("0.900", "0.901"))
        assert leaderboard.is_stale(s, "demo", tmp_path / "lb")[0] is True


def test_export_json_and_csv(tmp_path: Path) -> None:
    with _store(tmp_path) as s:
        rows = json.loads(leaderboard.export(s, "demo", "json"))
        csv = leaderboard.export(s, "demo", "csv")
    assert set(rows[0]) == {"dataset", "model", "method", "metric", "mean", "ci_low", "ci_high", "n", "status"}
    assert {r["status"] for r in rows} == {"ok", "failed", "skipped"}
    assert csv.splitlines()[0] == "dataset,model,method,metric,mean,ci_low,ci_high,n,status"


def test_unknown_suite_in_store(tmp_path: Path) -> None:
    with _store(tmp_path) as s, pytest.raises(XaibenchError, match="suites in it: demo"):
        leaderboard.render(s, "other")


def test_ranks_share_ties_and_respect_direction() -> None:
    assert _ranks([0.5, 0.9, 0.5, None], True) == [2.5, 1.0, 2.5, None]
    assert _ranks([3.0, 1.0, 2.0], False) == [3.0, 1.0, 2.0]
