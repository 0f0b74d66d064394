"""Declared metric bounds: ordered on every built-in metric, and a score beyond them fails its cell."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TINY_SUITE

from xaibench import hookimpl, leaderboard
from xaibench.contract.plugins import load_harness
from xaibench.running.runner import Runner, RunOptions
from xaibench.contract.specs import MetricSpec
from xaibench.storage.store import Store
from xaibench.suites.suite import load_suite


def test_every_builtin_metric_declares_ordered_bounds() -> None:
    metrics = load_harness().metrics
    for name in metrics.names():
        low, high = metrics.get(name).bounds
        assert low is None or high is None or low < high, name
    assert metrics.get("hit-rate").bounds == (0.0, 1.0) and metrics.get("dic").bounds == (0.0, 100.0)


class _Bounded:
    @hookimpl
    def xaibench_register_metrics(self, register):  # type: ignore[no-untyped-def]
        def at_bounds(maps: torch.Tensor) -> np.ndarray:
            # 0 and 1 at the bounds, allowed; so is 1 computed in float32 one ulp too high (1 + 1.2e-7: rounding)
            top = np.nextafter(np.float32(1.0), np.float32(2.0)).astype(np.float64)
            return np.where(np.arange(len(maps)) % 2 == 1, top, 0.0)

        def beyond(maps: torch.Tensor) -> np.ndarray:
            return np.r_[1.5, np.zeros(len(maps) - 1)]

        for name, score in (("at-bounds", at_bounds), ("beyond", beyond)):
            register(MetricSpec(name=name, score=score, category="complexity", higher_is_better=True,
                                description=name, bounds=(0.0, 1.0)))


def test_a_score_beyond_the_declared_bounds_fails_its_cell_with_the_numbers(tmp_path: Path, tiny_plugin) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "suite.yaml").write_text(TINY_SUITE.replace("[dic, iic, hit-rate]", "[at-bounds, beyond]")
                                         .replace(", random, {name: ground-truth, label: oracle}", ""))
    harness = load_harness([("tiny", tiny_plugin), ("bounded", _Bounded())])
    with Store(tmp_path / "r.sqlite") as store:
        summary = Runner(harness, load_suite(tmp_path / "suite.yaml"), store, RunOptions(progress=False)).run()
        recs = {r.metric: r for r in leaderboard.records(store, "tiny")}
    assert recs["at-bounds"].status == "ok" and recs["at-bounds"].mean == pytest.approx(0.5, abs=1e-7)
    assert recs["beyond"].status == "failed"
    assert "outside its declared bounds (0.0, 1.0): max 1.5" in recs["beyond"].detail
    assert len(summary.failed) == 1
