"""The plugin seams: a metric receives exactly what it declares, a method gets masks only if it declares them."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TINY_SUITE

from xaibench import hookimpl, leaderboard
from xaibench.contract.plugins import load_harness
from xaibench.running.runner import Runner, RunOptions
from xaibench.contract.specs import MethodSpec, MetricSpec
from xaibench.storage.store import Store
from xaibench.suites.suite import load_suite

SEEN: dict[str, object] = {}


def _maps_only(maps: torch.Tensor) -> np.ndarray:
    SEEN["maps-only"] = {"maps"}
    return maps.flatten(1).abs().sum(1).cpu().numpy()


def _reexplained(**kwargs: object) -> np.ndarray:
    """|E(2x) - 2 E(x)| per sample: 0 for the linear method input-times-one explained on doubled inputs."""
    SEEN["reexplain"] = set(kwargs)
    inputs, maps, explain = kwargs["inputs"], kwargs["maps"], kwargs["explain"]
    again = explain(inputs=2 * inputs)  # type: ignore[operator]
    return (again - 2 * maps).flatten(1).abs().amax(1).cpu().numpy()  # type: ignore[operator]


def _peek(model, x, target, ctx):  # type: ignore[no-untyped-def]
    SEEN["masks-given"] = ctx.masks is not None
    return x[:, 0].clone()


class Seams:
    @hookimpl
    def xaibench_register_methods(self, register):  # type: ignore[no-untyped-def]
        register(MethodSpec(name="peek", explain=_peek, modalities=frozenset({"image"}), description="records ctx"))

    @hookimpl
    def xaibench_register_metrics(self, register):  # type: ignore[no-untyped-def]
        register(MetricSpec(name="maps-only", score=_maps_only, category="complexity", higher_is_better=True,
                            description="sum of |map|"))
        register(MetricSpec(name="reexplain", score=_reexplained, category="faithfulness", higher_is_better=False,
                            needs=frozenset({"inputs", "targets", "maps", "explain"}), description="re-explains"))


def test_metrics_get_their_needs_methods_get_masks_only_when_declared(tmp_path: Path, tiny_plugin) -> None:  # type: ignore[no-untyped-def]
    SEEN.clear()
    text = TINY_SUITE.replace("methods: [", "methods: [peek, ").replace("metrics: [", "metrics: [maps-only, reexplain, ")
    (tmp_path / "suite.yaml").write_text(text)
    harness = load_harness([("tiny", tiny_plugin), ("seams", Seams())])
    with Store(tmp_path / "r.sqlite") as store:
        summary = Runner(harness, load_suite(tmp_path / "suite.yaml"), store, RunOptions(progress=False)).run()
        assert not summary.failed, summary.failed
        recs = {(r.method, r.metric): r for r in leaderboard.records(store, "tiny")}
    assert SEEN["maps-only"] == {"maps"}
    assert SEEN["reexplain"] == {"inputs", "targets", "maps", "explain"}
    assert recs[("input-times-one", "reexplain")].mean == 0.0  # re-explained on the doubled inputs
    assert SEEN["masks-given"] is False  # the tiny dataset has masks; peek did not declare them
    assert recs[("oracle", "hit-rate")].mean == 1.0  # the ground-truth method declares masks and gets them


def test_a_metric_spec_refuses_unknown_or_untaken_needs() -> None:
    with pytest.raises(ValueError, match="'saliency'"):
        MetricSpec(name="m", score=_maps_only, category="complexity", higher_is_better=True, description="",
                   needs=frozenset({"saliency"}))
    with pytest.raises(ValueError, match="does not take"):
        MetricSpec(name="m", score=_maps_only, category="complexity", higher_is_better=True, description="",
                   needs=frozenset({"maps", "engine"}))
    with pytest.raises(ValueError, match="'boxes'"):
        MethodSpec(name="m", explain=_peek, modalities=frozenset({"image"}), description="", needs=frozenset({"boxes"}))
