"""Model-parameter randomization (Adebayo et al. 2018): maps that ignore the weights fail, gradients pass."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn
from xaibench_metrics.randomization import cascade_stages, randomizable_layers, similarity

from xaibench.engine import Engine
from xaibench.plugins import load_harness
from xaibench.metric_inputs import MetricContext
from xaibench.testing import score_metric


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1), nn.ReLU(),
                         nn.Flatten(), nn.Linear(4 * 12 * 12, 2)).eval()


def _gradient(model: nn.Module, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    x = x.clone().requires_grad_(True)
    model(x).gather(1, target[:, None]).sum().backward()
    return x.grad[:, 0].detach()


def _ctx(model: nn.Module, x: torch.Tensor, target: torch.Tensor, method, seen: list) -> MetricContext:  # type: ignore[no-untyped-def]
    def explain(m: nn.Module) -> torch.Tensor:
        seen.append(m)
        return method(m, x, target)

    engine = Engine(model, "cpu", batch_size=8)
    return MetricContext(engine=engine, base_logits=engine.logits(x), seed=3,
                         model=lambda: copy.deepcopy(model), explain=explain)


@pytest.mark.parametrize("name", ["mprt-spearman", "mprt-ssim"])
def test_a_map_that_ignores_the_model_fails_and_the_gradient_passes(name: str) -> None:
    model = _model()
    x = torch.rand(4, 1, 12, 12, generator=torch.Generator().manual_seed(1))
    target = torch.tensor([0, 1, 0, 1])
    spec = load_harness().metrics.get(name)
    assert spec.category == "randomization" and not spec.higher_is_better

    def input_only(m: nn.Module, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:  # an "edge detector"
        return x[:, 0] * 2.0

    before = {k: v.clone() for k, v in model.state_dict().items()}
    seen: list = []
    frozen = input_only(model, x, target)
    ignoring = score_metric(spec, _ctx(model, x, target, input_only, seen), x, target, frozen, **spec.defaults)
    np.testing.assert_allclose(ignoring, 1.0, atol=1e-9)
    assert len(seen) == spec.defaults["steps"]

    grads = score_metric(spec, _ctx(model, x, target, _gradient, []), x, target, _gradient(model, x, target),
                       **spec.defaults)
    assert (grads < 0.9).all()
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # only the copy is randomized


def test_cascade_runs_top_down_and_ends_fully_randomized() -> None:
    model = _model()
    assert randomizable_layers(model) == ["5", "2", "0"]
    assert cascade_stages(3, 3) == [1, 2, 3]
    assert cascade_stages(10, 3) == [4, 7, 10]
    assert cascade_stages(2, 5) == [1, 2]


def test_similarity_rules_for_constant_maps() -> None:
    """A randomized CAM that ReLU zeroed has no ranking: undefined (NaN), never the best score 0."""
    a = np.random.default_rng(0).random((2, 8, 8))
    b = a.copy()
    b[1] = 0.0  # a randomized CAM that ReLU zeroed
    s = similarity(a, b, "spearman")
    assert s[0] == pytest.approx(1.0) and np.isnan(s[1])
    assert np.isnan(similarity(np.zeros((1, 8, 8)), a[:1], "ssim")[0])
    assert np.isfinite(similarity(a[:1], b[1:], "ssim")[0])  # SSIM is defined against a constant map


def test_an_inverted_map_is_as_similar_as_the_map_itself() -> None:
    """|rho|: an anti-correlated map (the same structure, inverted) must not score better than an independent one."""
    a = np.random.default_rng(1).random((1, 8, 8))
    assert similarity(a, 1.0 - a, "spearman")[0] == pytest.approx(1.0)
    assert similarity(a, 1.0 - a, "ssim")[0] == pytest.approx(abs(
        __import__("skimage.metrics", fromlist=["x"]).structural_similarity(a[0], 1.0 - a[0], data_range=1.0)))


def test_mprt_averages_the_absolute_similarity_over_every_stage_of_the_cascade() -> None:
    """Stage maps with hand-known Spearman: the score is their mean of |rho|, not the last stage's, not signed."""
    from scipy.stats import spearmanr

    model = _model()  # 3 randomizable layers: steps=3 gives three stages
    x = torch.rand(1, 1, 12, 12, generator=torch.Generator().manual_seed(2))
    reference = torch.rand(1, 12, 12, generator=torch.Generator().manual_seed(3))
    other = torch.rand(1, 12, 12, generator=torch.Generator().manual_seed(4))
    stage_maps = [reference.clone(), 1.0 - reference, other]  # rho = 1, -1, r
    r = spearmanr(reference.ravel(), other.ravel()).statistic
    assert 0.02 < abs(r) < 0.5
    seen: list = []
    ctx = _ctx(model, x, torch.tensor([0]), lambda m, x, t: stage_maps[len(seen) - 1], seen)
    spec = load_harness().metrics.get("mprt-spearman")
    got = score_metric(spec, ctx, x, torch.tensor([0]), reference, **{**spec.defaults, "steps": 3})
    assert len(seen) == 3
    assert got[0] == pytest.approx((1.0 + 1.0 + abs(r)) / 3, abs=1e-12)


def test_data_randomization_separates_model_dependent_maps_from_input_maps(tmp_path, tiny_plugin) -> None:  # type: ignore[no-untyped-def]
    """A map that is the input itself survives label permutation (similarity 1); gradients do not."""
    from xaibench import leaderboard
    from xaibench.plugins import load_harness
    from xaibench.runner import Runner, RunOptions
    from xaibench.store import Store
    from xaibench.suite import load_suite

    suite = tmp_path / "s.yaml"
    suite.write_text("name: drt\nseed: 0\nsamples: 8\ndatasets: [tiny]\nmodels: [tiny-cnn]\n"
                     "methods: [input-times-one, saliency]\nmetrics: [data-randomization]\n")
    with Store(tmp_path / "r.sqlite") as store:
        summary = Runner(load_harness([("tiny", tiny_plugin)]), load_suite(suite), store,
                         RunOptions(progress=False, home=tmp_path / "home")).run()
        assert not summary.failed, summary.failed
        scores = {r.method: r.mean for r in leaderboard.records(store, "drt")}
    assert scores["input-times-one"] == pytest.approx(1.0)
    assert scores["saliency"] < 0.9
    assert len(list((tmp_path / "home" / "models").glob("*.pt"))) == 2  # the model and its label-randomized twin
