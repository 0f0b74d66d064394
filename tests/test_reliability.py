"""Interrupted and concurrent runs through the real CLI: SIGKILL, Ctrl-C, two writers, determinism.

One driver process (tests/faults.py) forks a child per ``xaibench run``, so the dozen
runs below cost one interpreter start. The fault plugin kills a run at exact points
(in training, inside a method, at the start of a cell after k commits), a SIGINT
interrupts one, and every store is checked as the killed process left it.
"""
from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

import faults
import pytest

TESTS = Path(__file__).parent

SUITE = """
name: crash
seed: 0
samples: 8
datasets: [squares]
models: [probe-cnn]
methods: [probe, random, {name: probe, label: probe-sq, params: {power: 2}}, ground-truth]
metrics: [mass, dic, iic]
"""
N_CELLS, N_SAMPLES = 12, 8

#: (name, trip, cells in the store afterwards, models in the store afterwards).
CHAIN = [
    ("kill-in-training", "train:10:kill", 0, 0),
    ("kill-in-first-method", "explain:1:kill", 0, 1),
    ("kill-at-cell-4", "score:2:kill", 3, 1),
    ("kill-in-third-method", "explain:1:kill", 6, 1),
    ("sigint-at-cell-10", "score:2:pause", 9, 1),
    ("resume", "", 12, 1),
]


def open_checked(path: Path) -> sqlite3.Connection:
    """Open a store as a killed process left it; assert SQLite finds it intact and without duplicates."""
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    for table, key in (("cells", "cell_key"), ("scores", "cell_key, sample_id"), ("models", "model_key")):
        dups = db.execute(f"SELECT {key}, COUNT(*) FROM {table} GROUP BY {key} HAVING COUNT(*) > 1").fetchall()
        assert dups == [], f"duplicate rows in {table}"
    return db


def counts(db: sqlite3.Connection) -> tuple[int, int, int]:
    return tuple(db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in ("cells", "scores", "models"))


@pytest.fixture(scope="module")
def driven(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, dict]]:  # type: ignore[type-arg]
    tmp = tmp_path_factory.mktemp("reliability")
    site = faults.make_distribution(tmp / "site")
    suite = tmp / "crash.yaml"
    suite.write_text(textwrap.dedent(SUITE).lstrip())
    log = tmp / "ticks.log"

    def run(name: str, store: str, home: str, trip: str = "", **extra: object) -> dict:  # type: ignore[type-arg]
        argv = ["run", "--suite", str(suite), "--store", str(tmp / store), "--out", str(tmp / "lb" / name),
                "--no-progress", "--no-figures"]
        env = {"XAIBENCH_HOME": str(tmp / home), faults.TRIP_ENV: trip, faults.LOG_ENV: str(log)}
        return {"name": name, "argv": argv, "env": env, "snapshot": [str(tmp / store)], **extra}

    steps = [[run("reference", "ref.sqlite", "home-ref")]]
    steps += [[run(name, "chain.sqlite", "home-chain", trip, interrupt_when_paused=trip.endswith("pause"))]
              for name, trip, _, _ in CHAIN]
    steps += [[run("concurrent-a", "shared.sqlite", "home-shared"), run("concurrent-b", "shared.sqlite", "home-shared")]]
    plan = tmp / "plan.json"
    plan.write_text(json.dumps({"steps": steps, "out": str(tmp), "results": str(tmp / "results.json")}))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(TESTS)]),
           "XAIBENCH_DISABLE_PLUGINS": faults.other_plugins()}
    proc = subprocess.run([sys.executable, str(TESTS / "faults.py"), str(plan)], env=env, capture_output=True,
                          text=True, timeout=240, check=False)
    assert proc.returncode == 0, proc.stderr
    results = {r["name"]: r for r in json.loads((tmp / "results.json").read_text())}
    ticks: dict[int, Counter[str]] = {}
    for line in log.read_text().splitlines():
        pid, kind, _ = line.split()
        ticks.setdefault(int(pid), Counter())[kind] += 1
    for r in results.values():
        r["ticks"] = ticks.get(r["pid"], Counter())
    return tmp, results


def test_sigkill_at_every_point_leaves_a_store_that_opens_cleanly_and_resumes_exactly(driven) -> None:  # type: ignore[no-untyped-def]
    tmp, results = driven
    for name, trip, cells, models in CHAIN:
        r = results[name]
        if trip.endswith("kill"):
            assert r["returncode"] == -9, (name, r["stderr"])
        db = open_checked(tmp / f"{name}.chain.snapshot.sqlite")
        assert counts(db) == (cells, cells * N_SAMPLES, models), name
        assert db.execute("SELECT COUNT(*) FROM cells WHERE status != 'ok'").fetchone()[0] == 0
        assert db.execute("SELECT COUNT(*) FROM plans").fetchone()[0] == N_CELLS
    checkpoints = list((tmp / "home-chain" / "models").glob("*.pt"))
    assert len(checkpoints) == 1, "a killed training leaves no checkpoint; the next run saves exactly one"

    # Only unfinished work was redone: the model was trained once after the kill in training
    # and reused afterwards; each cell's probe metric ran once, plus once per killed cell.
    assert results["kill-in-first-method"]["ticks"]["train"] > 0
    for name in ("kill-at-cell-4", "kill-in-third-method", "sigint-at-cell-10", "resume"):
        assert results[name]["ticks"]["train"] == 0, name
    assert [results[n]["ticks"]["score"] for n, *_ in CHAIN[2:]] == [2, 1, 2, 1]
    assert [results[n]["ticks"]["explain"] for n, *_ in CHAIN[1:]] == [1, 1, 1, 1, 0]
    assert "computed 3 cells (0 saliency maps, 0 models trained), reused 9" in results["resume"]["stdout"]


def test_ctrl_c_stops_cleanly_and_says_how_to_resume(driven) -> None:  # type: ignore[no-untyped-def]
    tmp, results = driven
    r = results["sigint-at-cell-10"]
    assert r["returncode"] == 130
    assert "interrupted: every finished cell is saved in the store; resume with the same command: xaibench run " \
           f"--suite {tmp / 'crash.yaml'} --store {tmp / 'chain.sqlite'}" in r["stderr"]
    assert "Traceback" not in r["stderr"]


def test_resumed_and_concurrent_runs_give_byte_identical_leaderboards(driven) -> None:  # type: ignore[no-untyped-def]
    tmp, _ = driven
    reference = (tmp / "lb" / "reference" / "crash.md").read_bytes()
    scores = reference.split(b"### Metric agreement")[0]  # the results table (the trust table may say "not run")
    assert b"**failed**" not in scores and b"not run" not in scores
    for name in ("resume", "concurrent-a", "concurrent-b"):
        assert (tmp / "lb" / name / "crash.md").read_bytes() == reference, name


def test_two_runs_on_one_store_at_once_both_succeed_without_corruption(driven) -> None:  # type: ignore[no-untyped-def]
    tmp, results = driven
    for name in ("concurrent-a", "concurrent-b"):
        assert results[name]["returncode"] == 0, results[name]["stderr"]
    db = open_checked(tmp / "concurrent-a.shared.snapshot.sqlite")
    assert counts(db) == (N_CELLS, N_CELLS * N_SAMPLES, 1)
    assert db.execute("SELECT COUNT(*) FROM plans").fetchone()[0] == N_CELLS


def test_provenance_records_what_reproduces_a_cell(driven) -> None:  # type: ignore[no-untyped-def]
    tmp, _ = driven
    db = sqlite3.connect(tmp / "resume.chain.snapshot.sqlite")
    ref = sqlite3.connect(tmp / "reference.ref.snapshot.sqlite")
    rows = db.execute("SELECT cell_key, method, metric, mean, provenance FROM cells ORDER BY cell_key").fetchall()
    assert [r[:4] for r in rows] == ref.execute("SELECT cell_key, method, metric, mean FROM cells ORDER BY cell_key").fetchall()
    prov = {(m, t): json.loads(p) for _, m, t, _, p in rows}
    p = prov[("probe-sq", "mass")]
    assert {"xaibench", "torch", "numpy", "python", "seed", "device", "target", "batch_size", "dataset",
            "dataset_fingerprint", "samples", "model", "model_key", "method", "metric", "plugin_versions"} <= set(p)
    assert p["method"] == {"plugin": "probe", "version": "1", "params": {"power": 2}}
    assert p["dataset"]["plugin"] == "squares" and p["samples"]["first"] == N_SAMPLES
    assert p["model"]["plugin"] == "probe-cnn" and p["seed"] == 0 and p["target"] == "predicted"
    assert p["plugin_versions"]["faults"] == f"{faults.DIST_NAME} {faults.DIST_VERSION}"
    model = db.execute("SELECT checkpoint_sha256, provenance FROM models").fetchone()
    assert len(model[0]) == 64 and json.loads(model[1])["train"] == {}


def test_sigkill_inside_a_cell_transaction_keeps_the_earlier_version(tmp_path: Path) -> None:
    """Killed between a cell's row and its scores: the transaction rolls back, the old failure stays."""
    store = tmp_path / "s.sqlite"
    code = f"""
import os, signal
from xaibench.storage.store import CellResult, Store

def cell(status, error):
    return CellResult("k", "d", "m", "me", "mt", status, 0.5 if status == "ok" else None, None, None, 1, 2, error, {{}})

s = Store({str(store)!r})
s.put_cell(cell("failed", "boom"))

class KillOnScores:
    def __init__(self, db): self.db = db
    def execute(self, *a): return self.db.execute(*a)
    def executemany(self, sql, rows):
        if "scores" in sql:
            os.kill(os.getpid(), signal.SIGKILL)
        return self.db.executemany(sql, rows)

s.db = KillOnScores(s.db)
s.put_cell(cell("ok", None), ["a", "b"], [1.0, 0.0])
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == -9, proc.stderr
    db = open_checked(store)
    assert db.execute("SELECT status, error FROM cells").fetchall() == [("failed", "boom")]
    assert counts(db) == (1, 0, 0)
