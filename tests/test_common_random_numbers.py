"""Common random numbers: every method of one dataset x model faces the same random draws.

Perturbation draws (sensitivity-n's patch sets, faithfulness correlation's subsets,
infidelity's noise, ROAD's imputation noise, the robustness metrics' noise) are seeded by
the dataset, model, metric and samples, and randomized models (MPRT, eMPRT, sMPRT) by the
dataset and model only, never by the method: two methods that return the same map get the
same score on every registered metric, through the runner.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from xaibench import hookimpl, leaderboard
from xaibench.contract.plugins import load_harness
from xaibench.running.runner import Runner, RunOptions
from xaibench.contract.specs import MethodSpec
from xaibench.storage.store import Store
from xaibench.suites.suite import load_suite


def _gradient_times_input(model, x, target, ctx):  # type: ignore[no-untyped-def]
    """A map that depends on the model (so the randomization metrics see the randomized models)."""
    x = x.detach().clone().requires_grad_(True)
    model(x).gather(1, target[:, None]).sum().backward()
    return (x.grad * x).sum(1).detach()


class Twins:
    """Two methods with different names and the same map."""

    @hookimpl
    def xaibench_register_methods(self, register):  # type: ignore[no-untyped-def]
        for name in ("twin-a", "twin-b"):
            register(MethodSpec(name=name, explain=_gradient_times_input, modalities=frozenset({"image"}),
                                description="gradient x input", additive=True))


def test_two_methods_with_the_same_map_get_the_same_scores_on_every_metric(  # type: ignore[no-untyped-def]
        tmp_path: Path, tiny_plugin) -> None:
    harness = load_harness([("tiny", tiny_plugin), ("twins", Twins())])
    # every metric but data randomization, whose one random part is the label-randomized model: trained once per
    # dataset x model and cached under the model's key, so shared by construction (and costly to train here); the
    # segmentation metrics are not applicable to this classifier (tests/test_segmentation_suite.py runs them)
    metrics = [m for m in harness.metrics.names()
               if m != "data-randomization" and "segmentation" not in harness.metrics.get(m).needs]
    entries = ", ".join("{name: sensitivity-n, params: {patch: 4}}" if m == "sensitivity-n" else m for m in metrics)
    suite = tmp_path / "s.yaml"
    suite.write_text("name: crn\nseed: 0\nsamples: 4\ndatasets: [tiny]\nmodels: [tiny-cnn]\n"
                     f"methods: [twin-a, twin-b]\nmetrics: [{entries}]\n")
    with Store(tmp_path / "r.sqlite") as store:
        summary = Runner(harness, load_suite(suite), store, RunOptions(progress=False, home=tmp_path / "home")).run()
        assert not summary.failed, summary.failed
        recs = {(r.method, r.metric): r for r in leaderboard.records(store, "crn")}
        scored = []
        for metric in metrics:
            a, b = recs[("twin-a", metric)], recs[("twin-b", metric)]
            assert a.status == b.status, metric
            if a.status != "ok":
                continue
            va, vb = store.scores(a.cell_key), store.scores(b.cell_key)
            np.testing.assert_array_equal(np.array(list(va.values())), np.array(list(vb.values())), err_msg=metric)
            assert (a.mean, a.ci_low, a.ci_high) == (b.mean, b.ci_low, b.ci_high) or a.n == 0, metric
            scored.append(metric)
    random_draws = {"sensitivity-n", "faithfulness-correlation", "infidelity", "road-morf", "road-lerf",
                    "mprt-spearman", "mprt-ssim", "emprt", "smprt", "random-logit"}
    assert random_draws <= set(scored), random_draws - set(scored)
    assert len(scored) >= len(metrics) - 3, sorted(set(metrics) - set(scored))
