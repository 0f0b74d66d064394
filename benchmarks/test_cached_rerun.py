"""Benchmark 4: a cached re-run of the ``quick`` suite vs. its first run, and adding one method.

In process (the Runner API, as a notebook or the Ray executor uses it) and through
the real CLI (which adds interpreter and library start-up to both runs). Target: the
cached re-run at least 20x faster; adding a method costs only that method's cells.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from conftest import report
from xaibench.contract.plugins import load_harness
from xaibench.running.runner import RunOptions, Runner
from xaibench.storage.store import Store
from xaibench.suites.suite import load_suite


def _run(suite_path: Path, store_path: Path, home: Path) -> tuple[float, int]:
    start = time.perf_counter()
    with Store(store_path) as store:
        runner = Runner(load_harness(), load_suite(suite_path), store, RunOptions(progress=False, home=home))
        summary = runner.run()
    return time.perf_counter() - start, summary.computed


def test_cached_rerun_in_process(tmp_path: Path, benchmark) -> None:  # type: ignore[no-untyped-def]
    quick = Path(load_harness().suites.get("quick").path)
    first, computed = _run(quick, tmp_path / "s.sqlite", tmp_path / "home")
    assert computed > 0
    benchmark.pedantic(_run, args=(quick, tmp_path / "s.sqlite", tmp_path / "home"), rounds=3, iterations=1)
    again = benchmark.stats.stats.median
    report("quick suite, in process", "first run / cached re-run", first / again, ">= 20")

    text = quick.read_text().replace("  - random\n", "  - random\n  - centre\n")
    extended = tmp_path / "quick.yaml"
    extended.write_text(text)
    added, computed = _run(extended, tmp_path / "s.sqlite", tmp_path / "home")
    n_metrics = len(load_suite(quick).metrics)
    assert computed == n_metrics, "adding one method must compute exactly its cells"
    report("quick suite + one method", "time / first run (one of 5 methods)", added / first, "~ its share of cells")


def test_cached_rerun_cli(tmp_path: Path) -> None:
    env = {**os.environ, "XAIBENCH_HOME": str(tmp_path / "home")}

    def cli() -> float:
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "xaibench", "run", "--suite", "quick", "--no-progress"], cwd=tmp_path,
                       env=env, check=True, capture_output=True)
        return time.perf_counter() - start

    first = cli()
    again = min(cli() for _ in range(2))
    report("quick suite, CLI", "first run / cached re-run", first / again, ">= 20 (start-up bound)")
