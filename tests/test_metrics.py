"""Metric definitions against analytic expectations on models whose outputs we know."""
from __future__ import annotations

import inspect

import numpy as np
import torch
from torch import nn

from xaibench.scoring.engine import Engine
from xaibench.contract.plugins import load_harness
from xaibench.contract.specs import MethodContext
from xaibench.contract.metric_inputs import MetricContext
from xaibench.authoring.testing import score_metric


class Linear2(nn.Module):
    """logit_1 = w . x, logit_0 = 0: every quantity is computable by hand."""

    def __init__(self, w: torch.Tensor) -> None:
        super().__init__()
        self.w = nn.Parameter(w.clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = (x.flatten(1) * self.w.flatten()).sum(1)
        return torch.stack([torch.zeros_like(z), z], dim=1)


def _ctx(model: nn.Module, x: torch.Tensor, seed: int = 0) -> MetricContext:
    engine = Engine(model, "cpu", batch_size=5)
    return MetricContext(engine=engine, base_logits=engine.logits(x), sample_seeds=tuple(range(seed, seed + len(x))))


def test_average_drop_and_increase_match_the_formula() -> None:
    torch.manual_seed(0)
    w = torch.rand(1, 4, 4)
    model = Linear2(w)
    x = torch.rand(6, 1, 4, 4)
    target = torch.ones(6, dtype=torch.long)
    sal = torch.rand(6, 4, 4)
    h = load_harness()
    dic = score_metric(h.metrics.get("dic"), _ctx(model, x), x, target, sal, **h.metrics.get("dic").defaults)
    iic = score_metric(h.metrics.get("iic"), _ctx(model, x), x, target, sal, **h.metrics.get("iic").defaults)
    lo = sal.reshape(6, -1)
    low = lo.min(1, keepdim=True).values  # min-max scaling of the heat map (Grad-CAM++'s explanation map)
    L = ((lo - low) / (lo.max(1, keepdim=True).values - low)).reshape(6, 1, 4, 4)
    p = torch.sigmoid(model(x)[:, 1])
    q = torch.sigmoid(model(x * L)[:, 1])
    np.testing.assert_allclose(dic, (100 * (p - q).clamp(min=0) / p).detach().numpy(), rtol=1e-5)
    np.testing.assert_allclose(iic, (100 * (q > p).float()).numpy())


def test_integrated_gradients_on_a_linear_model_is_complete() -> None:
    """IG is exactly x * w on a linear model, so the completeness error is 0."""
    torch.manual_seed(1)
    model = Linear2(torch.randn(1, 4, 4))
    x = torch.rand(5, 1, 4, 4)
    target = torch.ones(5, dtype=torch.long)
    h = load_harness()
    ctx = MethodContext(layer=None, batch_size=8, sample_seeds=(0,) * 5)
    sal = h.methods.get("integrated-gradients").explain(model, x, target, ctx, n_steps=8)
    err = score_metric(h.metrics.get("completeness-error"), _ctx(model, x), x, target, sal)
    np.testing.assert_allclose(err, 0.0, atol=1e-5)
    assert (score_metric(h.metrics.get("completeness-error"), _ctx(model, x), x, target, 2 * sal) > 0.99).all()


def test_exact_occlusion_effect_has_zero_completeness_error_and_perfect_sensitivity_n() -> None:
    """For a linear model, each patch's occlusion effect is additive: occlusion is complete."""
    torch.manual_seed(2)
    model = Linear2(torch.randn(1, 8, 8))
    x = torch.rand(4, 1, 8, 8)
    target = torch.ones(4, dtype=torch.long)
    h = load_harness()
    ctx = MethodContext(layer=None, batch_size=16, sample_seeds=(0,) * 4)
    sal = h.methods.get("occlusion").explain(model, x, target, ctx, window=2)
    err = score_metric(h.metrics.get("completeness-error"), _ctx(model, x), x, target, sal)
    np.testing.assert_allclose(err, 0.0, atol=1e-5)
    sens = score_metric(h.metrics.get("sensitivity-n"), _ctx(model, x, seed=3), x, target, sal,
                                               n=4, patch=2, sets=16)
    np.testing.assert_allclose(sens, 1.0, atol=1e-6)
    shuffled = sal.flatten(1)[:, torch.randperm(64)].reshape(4, 8, 8)
    assert (score_metric(h.metrics.get("sensitivity-n"), _ctx(model, x, seed=3), x, target, shuffled,
                                                 n=4, patch=2, sets=16) < 0.9).all()


def test_hit_rate_is_nan_on_empty_masks_and_one_for_the_oracle() -> None:
    h = load_harness()
    masks = torch.zeros(3, 32, 32, dtype=torch.bool)
    masks[1, 4:8, 4:8] = True
    masks[2, 20:30, 1:5] = True
    ctx = MetricContext(engine=None, base_logits=torch.zeros(0))
    score = score_metric(h.metrics.get("hit-rate"), ctx, maps=masks.float(), masks=masks)
    assert np.isnan(score[0]) and (score[1:] == 1).all()


def test_engine_streams_full_batches_across_samples() -> None:
    calls = []

    class Probe(nn.Module):
        def forward(self, x):  # type: ignore[no-untyped-def]
            calls.append(x.shape[0])
            return torch.zeros(x.shape[0], 2)

    x = torch.zeros(3, 1, 4, 4)
    engine = Engine(Probe(), batch_size=4)
    out = engine.perturbed_scores(lambda s, t: x[s], n_samples=3, n_steps=5, target=torch.zeros(3, dtype=torch.long))
    assert out.shape == (3, 5) and calls == [4, 4, 4, 3] and engine.passes == 15


def test_every_metric_of_the_issue_is_registered_with_category_direction_and_citation() -> None:
    import sys

    from xaibench.contract.specs import METRIC_CATEGORIES

    expected = {
        "faithfulness": ["dic", "iic", "dic-mask", "iic-mask", "dic-important", "iic-important", "dic-mask-important",
                         "iic-mask-important", "deletion-auc", "insertion-auc", "road-morf", "road-lerf",
                         "completeness-error", "sensitivity-n", "faithfulness-correlation", "infidelity"],
        "localization": ["hit-rate", "graded-hit-rate", "energy-pointing-game", "relevance-mass", "relevance-rank",
                         "attribution-localisation", "iou", "dice", "coverage", "iou-threshold", "dice-threshold",
                         "coverage-threshold"],
        "randomization": ["mprt-spearman", "mprt-ssim"],
        "complexity": ["sparseness", "entropy"],
    }
    h = load_harness()
    for category, names in expected.items():
        assert category in METRIC_CATEGORIES
        for name in names:
            spec = h.metrics.get(name)
            assert spec.category == category and spec.citation and spec.description, name
            score = inspect.unwrap(spec.score)  # a lazily named function: the function itself
            docs = (score.__doc__ or "") + (sys.modules[score.__module__].__doc__ or "")
            assert spec.citation.split()[0] in docs, f"{name}: the paper's definition is not documented with the code"
    assert not h.metrics.get("deletion-auc").higher_is_better and h.metrics.get("insertion-auc").higher_is_better
    assert not h.metrics.get("road-morf").higher_is_better and h.metrics.get("road-lerf").higher_is_better


def test_curves_reuse_the_unperturbed_pass() -> None:
    """The curve point that is the input itself comes from the runner's pass, not a new one."""
    from xaibench.scoring.curves import perturbation_curve

    torch.manual_seed(0)
    model = Linear2(torch.randn(1, 6, 6))
    x, saliency = torch.rand(4, 1, 6, 6), torch.rand(4, 6, 6)
    target = torch.ones(4, dtype=torch.long)
    engine = Engine(model, "cpu", batch_size=5)
    base = engine.select(engine.logits(x), target, "prob")
    for mode in ("deletion", "insertion"):
        fresh = perturbation_curve(engine, x, target, saliency, mode, torch.zeros_like(x), 9)
        engine.passes = 0
        reused = perturbation_curve(engine, x, target, saliency, mode, torch.zeros_like(x), 9, input_scores=base)
        assert engine.passes == 4 * 9
        np.testing.assert_allclose(reused, fresh, atol=1e-6)
