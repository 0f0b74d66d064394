"""End to end: the real ``xaibench`` command on the ``quick`` suite, as a user runs it."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


def xaibench(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "xaibench", *args], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"}, timeout=300)


@pytest.mark.slow
def test_quick_suite_end_to_end(tmp_path: Path) -> None:
    first = xaibench("run", "--suite", "quick", "--no-progress", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "leaderboard written to leaderboards/quick.md" in first.stdout
    board = (tmp_path / "leaderboards" / "quick.md").read_text()
    assert "## synthetic-lesions × small-cnn" in board and "hit-rate ↑" in board

    second = xaibench("run", "--suite", "quick", "--no-progress", cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    assert "nothing recomputed" in second.stdout
    assert (tmp_path / "leaderboards" / "quick.md").read_text() == board

    check = xaibench("leaderboard", "--suite", "quick", "--check", cwd=tmp_path)
    assert check.returncode == 0, check.stderr
    (tmp_path / "leaderboards" / "quick.md").write_text(board + "\nedited\n")
    stale = xaibench("leaderboard", "--suite", "quick", "--check", cwd=tmp_path)
    assert stale.returncode == 1 and "is stale" in stale.stderr

    results = json.loads(xaibench("results", "--suite", "quick", "--format", "json", cwd=tmp_path).stdout)
    # completeness presumes additive attributions: not applicable (skipped, not ranked) to CAMs and baselines
    assert results and all(r["status"] == "ok" or (r["status"] == "skipped" and r["metric"] == "completeness-error"
                                                   and r["method"] in ("gradcam", "random", "ground-truth"))
                           for r in results)
    assert set(results[0]) == {"dataset", "model", "method", "metric", "mean", "ci_low", "ci_high", "n", "status",
                               "seconds", "maps_seconds", "training_seconds"}


def test_plugins_json_shape(tmp_path: Path) -> None:
    out = xaibench("plugins", "--json", cwd=tmp_path)
    data = json.loads(out.stdout)
    assert set(data) >= {"datasets", "models", "methods", "metrics", "suites"}
    names = {m["name"]: m for m in data["metrics"]}
    assert names["hit-rate"]["category"] == "localization" and names["hit-rate"]["higher_is_better"] is True
    assert all({"name", "plugin"} <= set(item) for kind in ("datasets", "methods") for item in data[kind])


def test_user_errors_print_one_line_without_traceback(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("name: x\nmetircs: []\n")
    out = xaibench("run", "--suite", str(tmp_path / "bad.yaml"), cwd=tmp_path)
    assert out.returncode == 2
    assert "bad.yaml:2: unknown key 'metircs' (did you mean 'metrics'?)" in out.stderr
    assert "Traceback" not in out.stderr
    out = xaibench("run", "--suite", "quik", cwd=tmp_path)
    assert out.returncode == 2 and "did you mean 'quick'" in out.stderr
    debug = xaibench("--debug", "run", "--suite", "quik", cwd=tmp_path)
    assert "Traceback" in debug.stderr
