"""A metric defined against the method's baseline uses that baseline (issue 33, item 3).

Completeness (Sundararajan et al. 2017) holds for the baseline the attributions were computed from. On a linear
model ``f(x) = w . x + c`` Integrated Gradients is exact for any baseline ``b``: ``a = w * (x - b)``, so
``sum(a) = f(x) - f(b)``: the completeness error against the method's own baseline is 0 (float rounding), and
against another baseline ``b'`` it is ``|w . (b' - b)| / |f(x) - f(b')|``, a mismatch the metric would rank as
the method's fault. Those cells are not applicable; the default follows the method.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from conftest import load_tiny
from torch import nn

from xaibench import hookimpl
from xaibench.leaderboard import records, render
from xaibench.suites.plan import Resolved, metric_params, pairing_conflict
from xaibench.contract.plugins import load_harness
from xaibench.running.runner import Runner, RunOptions
from xaibench.contract.specs import DatasetSpec, ModelSpec, TrainRecipe
from xaibench.storage.store import Store
from xaibench.suites.suite import Entry, load_suite


def _linear(num_classes: int, in_channels: int, modality: str) -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(in_channels * 16 * 16, num_classes))


class LinearPlugin:
    @hookimpl
    def xaibench_register_datasets(self, register: Callable[[DatasetSpec], None]) -> None:
        register(DatasetSpec(name="tiny-squares", load=load_tiny, modality="image", has_masks=True,
                             description="left/right squares"))

    @hookimpl
    def xaibench_register_models(self, register: Callable[[ModelSpec], None]) -> None:
        register(ModelSpec(name="linear", build=_linear, modalities=frozenset({"image"}),
                           target_layer=lambda m: m[1], description="one linear layer",
                           recipe=TrainRecipe(epochs=2, batch_size=16, lr=1e-2, patience=0)))


SUITE = """
name: pairing
seed: 0
samples: 6
datasets: [tiny-squares]
models: [linear]
methods:
  - {name: integrated-gradients, label: ig-mean, params: {baseline: mean, n_steps: 4}}
  - {name: integrated-gradients, label: ig-zero, params: {n_steps: 4}}
  - {name: occlusion, label: occlusion-mean, params: {fill: mean, window: 4}}
metrics:
  - completeness-error
  - {name: completeness-error, label: ce-zero, params: {fill: zero}}
  - {name: completeness-error, label: ce-mean, params: {fill: mean}}
"""


def _resolved(kind: str, name: str, params: dict) -> Resolved:  # type: ignore[type-arg]
    entry = load_harness().registry(kind).entry(name)
    return Resolved(Entry(name, params, label=f"{name}-{kind}"), entry.spec, entry.plugin)


def test_the_metric_takes_the_methods_baseline_and_a_forced_other_one_is_not_applicable() -> None:
    ig_mean = _resolved("methods", "integrated-gradients", {"baseline": "mean"})
    ig = _resolved("methods", "integrated-gradients", {})
    occlusion = _resolved("methods", "occlusion", {"fill": "mean"})
    saliency = _resolved("methods", "saliency", {})
    default, zero = _resolved("metrics", "completeness-error", {}), _resolved("metrics", "completeness-error",
                                                                              {"fill": "zero"})
    assert metric_params(ig_mean, default)["fill"] == "mean" and metric_params(ig, default)["fill"] == "zero"
    assert metric_params(occlusion, default)["fill"] == "mean"  # occlusion calls its baseline `fill`
    assert metric_params(saliency, default)["fill"] == "zero"  # no baseline: the metric's own
    assert pairing_conflict(ig_mean, default) is None and pairing_conflict(ig, zero) is None
    why = pairing_conflict(ig_mean, zero)
    assert why == ("not applicable: metric 'completeness-error-metrics' is defined against the method's own baseline "
                   "(the reference input its attributions are relative to), and the suite sets its fill: zero where "
                   "method 'integrated-gradients-methods' uses baseline: mean (leave fill unset: the metric takes the "
                   "method's)")
    blur = _resolved("methods", "occlusion", {"fill": "blur"})
    assert "uses fill: blur, which the metric's fill cannot take (zero, mean)" in pairing_conflict(blur, default)
    sens = _resolved("metrics", "sensitivity-n", {"fill": "zero"})
    assert pairing_conflict(ig_mean, sens) is not None and metric_params(ig_mean, _resolved(
        "metrics", "sensitivity-n", {}))["fill"] == "mean"


def test_completeness_of_ig_is_scored_against_its_own_baseline_only(tmp_path: Path) -> None:
    """The issue's example on a linear model, where the expected completeness error is 0 by hand."""
    path = tmp_path / "pairing.yaml"
    path.write_text(SUITE)
    store = Store(tmp_path / "r.sqlite")
    runner = Runner(load_harness([("linear", LinearPlugin())]), load_suite(path), store, RunOptions(progress=False))
    assert not runner.run().failed
    recs = {(r.method, r.metric): r for r in records(store, "pairing")}
    scored = {k for k, r in recs.items() if r.status == "ok"}
    assert scored == {("ig-mean", "completeness-error"), ("ig-mean", "ce-mean"), ("ig-zero", "completeness-error"),
                      ("ig-zero", "ce-zero"), ("occlusion-mean", "completeness-error"), ("occlusion-mean", "ce-mean")}
    assert "sets its fill: zero where method 'ig-mean' uses baseline: mean" in recs[("ig-mean", "ce-zero")].detail
    assert "sets its fill: mean where method 'ig-zero' uses baseline: zero" in recs[("ig-zero", "ce-mean")].detail
    for method in ("ig-mean", "ig-zero"):  # exact on a linear model: error 0 up to float32 rounding
        values = np.array(list(store.scores(recs[(method, "completeness-error")].cell_key).values()))
        assert np.all(values < 1e-4), values
    # the default cell is the matching cell: the same parameters, so the same content key and the same scores
    assert recs[("ig-mean", "completeness-error")].cell_key == recs[("ig-mean", "ce-mean")].cell_key
    cell = store.cell(recs[("ig-mean", "completeness-error")].cell_key)
    assert cell.provenance["metric"]["params"]["fill"] == "mean"
    metrics = store.header("pairing")["metrics"]  # the board's metric table says whose baseline a cell used
    assert metrics["completeness-error"]["params"]["fill"] == "the method's baseline or fill"
    assert metrics["completeness-error"]["params"]["output"] == "the method's output (logit if it has none)"
    assert metrics["ce-zero"]["params"]["fill"] == "zero"
    board = render(store, "pairing")
    assert "not applicable: metric 'ce-zero' is defined against the method's own baseline" in board


@pytest.mark.parametrize("name", ["completeness-error", "sensitivity-n"])
def test_the_reference_metrics_declare_their_pairing(name: str) -> None:
    spec = load_harness().metrics.get(name)
    assert [(p.param, p.method_params, p.implied) for p in spec.pairs] == [("fill", ("baseline", "fill"), None),
                                                                          ("output", ("output",), "logit")]


def test_a_sum_of_logit_attributions_is_not_compared_with_a_change_of_probability() -> None:
    """Additive methods decompose the target logit: completeness on ``output: prob`` measures the softmax, not them."""
    ig = _resolved("methods", "integrated-gradients", {})
    prob = _resolved("metrics", "completeness-error", {"output": "prob"})
    assert metric_params(ig, _resolved("metrics", "completeness-error", {}))["output"] == "logit"
    assert "sets its output: prob where method 'integrated-gradients-methods' uses output: logit" in \
        pairing_conflict(ig, prob)
    assert pairing_conflict(ig, _resolved("metrics", "completeness-error", {"output": "logit"})) is None
