"""Faithfulness metrics against hand computations on models whose outputs we know."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage
from test_metrics import Linear2
from torch import nn
from xaibench_metrics.road import linear_impute, removal_masks, road

from xaibench.scoring.curves import perturbation_curve
from xaibench.scoring.engine import Engine
from xaibench.contract.plugins import load_harness
from xaibench.contract.metric_inputs import MetricContext
from xaibench.authoring.testing import score_metric


@pytest.fixture(scope="module")
def harness():  # type: ignore[no-untyped-def]
    return load_harness()


def _ctx(model: nn.Module, x: torch.Tensor, batch_size: int = 7) -> MetricContext:
    engine = Engine(model.eval(), "cpu", batch_size=batch_size)
    return MetricContext(engine=engine, base_logits=engine.logits(x), data_mean=x.mean(dim=(0, 2, 3)),
                         sample_seeds=tuple(range(x.shape[0])))


def _setup(seed: int = 0, n: int = 3, size: int = 6):  # type: ignore[no-untyped-def]
    g = torch.Generator().manual_seed(seed)
    model = Linear2(torch.randn(1, size, size, generator=g))
    x = torch.rand(n, 1, size, size, generator=g)
    return model, x, torch.ones(n, dtype=torch.long)


def test_deletion_curve_matches_a_step_by_step_hand_computation() -> None:
    model, x, target = _setup()
    sal = torch.rand(3, 6, 6)
    curve = perturbation_curve(_ctx(model, x).engine, x, target, sal, "deletion", torch.zeros_like(x), steps=12)
    for i in range(3):
        order = torch.argsort(-sal[i].flatten(), stable=True)
        for k in range(13):
            xi = x[i].clone().flatten()
            xi[order[: 3 * k]] = 0.0
            want = torch.sigmoid((xi * model.w.detach().flatten()).sum())
            assert curve[i, k] == pytest.approx(float(want), abs=1e-6)


def test_exact_contributions_give_the_best_deletion_and_insertion_auc(harness) -> None:  # type: ignore[no-untyped-def]
    """On a linear model, removing pixels by w_i x_i (inserting by w_i (x_i - blur_i)) moves the logit fastest."""
    model, x, target = _setup(1, n=4)
    w = model.w.detach()
    deletion, insertion = harness.metrics.get("deletion-auc"), harness.metrics.get("insertion-auc")
    best_del = score_metric(deletion, _ctx(model, x), x, target, (w * x[:, 0]), steps=36)
    # RISE's canvas (11-tap Gaussian, sigma 5, borders replicated), computed by scipy
    canvas = torch.from_numpy(ndimage.gaussian_filter(x.numpy(), (0, 0, 5.0, 5.0), mode="nearest", truncate=1.0))
    best_ins = score_metric(insertion, _ctx(model, x), x, target, (w * (x - canvas)[:, 0]), steps=36)
    for seed in range(3):
        other = torch.rand(4, 6, 6, generator=torch.Generator().manual_seed(seed))
        assert (best_del <= score_metric(deletion, _ctx(model, x), x, target, other, steps=36) + 1e-9).all()
        assert (best_ins >= score_metric(insertion, _ctx(model, x), x, target, other, steps=36) - 1e-9).all()


def test_perturbation_batches_stay_full_across_samples_and_steps() -> None:
    model, x, target = _setup(n=5)
    ctx = _ctx(model, x, batch_size=16)
    before = ctx.engine.passes
    harness_spec = load_harness().metrics.get("insertion-auc")
    score_metric(harness_spec, ctx, x, target, torch.rand(5, 6, 6), steps=8)
    assert ctx.engine.passes - before == 5 * 8  # 9 curve points; the unperturbed one is ctx.base_logits


def test_noisy_linear_imputation_is_exact_on_linear_images_in_every_channel() -> None:
    """A linear ramp satisfies the neighbour-mean equations: interior holes are filled exactly, per channel."""
    yy, xx = np.meshgrid(np.arange(12.0), np.arange(10.0), indexing="ij")
    image = np.stack([0.3 * yy - 0.1 * xx + 1, 0.05 * xx, -0.2 * yy])  # RGB, 3 different ramps
    removed = np.zeros((12, 10), bool)
    removed[2:10, 3:8] = True
    removed[5, 1] = True
    np.testing.assert_allclose(linear_impute(image, removed), image, atol=1e-10)


def test_road_removes_the_ranked_fraction_and_flips_for_lerf() -> None:
    sal = torch.arange(20.0).reshape(1, 4, 5)
    morf = removal_masks(sal, (0.25, 0.5), "morf")
    lerf = removal_masks(sal, (0.25,), "lerf")
    assert morf[0, 0].flatten().nonzero().flatten().tolist() == [15, 16, 17, 18, 19]
    assert int(morf[0, 1].sum()) == 10
    assert lerf[0, 0].flatten().nonzero().flatten().tolist() == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        removal_masks(sal, (1.0,), "morf")


def test_road_on_rgb_input_scores_each_sample(harness) -> None:  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 64, 3))
    x = torch.rand(3, 3, 8, 8)
    target = torch.tensor([0, 1, 2])
    spec = harness.metrics.get("road-morf")
    got = score_metric(spec, _ctx(model, x), x, target, torch.rand(3, 8, 8), **spec.defaults)
    assert got.shape == (3,) and np.isfinite(got).all() and ((got > 0) & (got < 1)).all()


def test_faithfulness_correlation_is_one_for_exact_contributions(harness) -> None:  # type: ignore[no-untyped-def]
    model, x, target = _setup(2, n=3, size=8)
    spec = harness.metrics.get("faithfulness-correlation")
    exact = (model.w.detach() * x[:, 0])
    got = score_metric(spec, _ctx(model, x), x, target, exact, subset=0.1, runs=20, output="logit")
    np.testing.assert_allclose(got, 1.0, atol=1e-6)
    assert spec.defaults["output"] == "logit"  # the default: the float32 softmax saturates (issue 15)
    prob = score_metric(spec, _ctx(model, x), x, target, exact, **{**spec.defaults, "output": "prob"})
    assert (prob > 0.5).all()  # monotone in the logit, so still strongly correlated on probabilities


def test_confidence_variants_flip_direction_when_the_important_part_is_covered(harness) -> None:  # type: ignore[no-untyped-def]
    expected = {"dic": False, "iic": True, "dic-mask": False, "iic-mask": True,
                "dic-important": True, "iic-important": False, "dic-mask-important": True, "iic-mask-important": False}
    for name, higher in expected.items():
        spec = harness.metrics.get(name)
        assert spec.higher_is_better is higher and spec.category == "faithfulness", name
    model, x, target = _setup(3, n=4)
    exact = (model.w.detach() * x[:, 0])
    ctx = _ctx(model, x)
    # The map of exact positive contributions: removing the part it marks loses more than keeping it does.
    kept = score_metric(harness.metrics.get("dic-mask"), ctx, x, target, exact, **harness.metrics.get("dic-mask").defaults)
    removed = score_metric(harness.metrics.get("dic-mask-important"),
        ctx, x, target, exact, **harness.metrics.get("dic-mask-important").defaults)
    assert (removed >= kept).all() and (removed > kept).any()


def test_road_noise_is_seeded_per_sample() -> None:
    torch.manual_seed(4)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 64, 3))
    x = torch.rand(2, 3, 8, 8)
    target, sal = torch.tensor([0, 1]), torch.rand(2, 8, 8)
    noisy = [road(x, target, sal, _ctx(model, x).engine, (5, 9), noise=0.05) for _ in range(2)]
    clean = road(x, target, sal, _ctx(model, x).engine, (5, 9), noise=0.0)
    np.testing.assert_array_equal(noisy[0], noisy[1])
    assert not np.allclose(noisy[0], clean, atol=1e-9)
    # a sample's noise is its seed's: alone, or second in the batch, it scores the same
    alone = road(x[1:], target[1:], sal[1:], _ctx(model, x[1:]).engine, (9,), noise=0.05)
    np.testing.assert_allclose(alone, noisy[0][1:], rtol=1e-12)
    swapped = road(x.flip(0), target.flip(0), sal.flip(0), _ctx(model, x).engine, (9, 5), noise=0.05)
    np.testing.assert_allclose(swapped, noisy[0][::-1], rtol=1e-12)


def test_the_one_blur_equals_scipys_gaussian_filter_in_1d_and_2d() -> None:
    """``fills.blur`` is a Gaussian with replicated borders: scipy's ``gaussian_filter(mode="nearest")``."""
    from xaibench.scoring.fills import blur

    gen = torch.Generator().manual_seed(0)
    for shape, sigma, radius in (((2, 3, 9, 7), 2.0, None), ((2, 1, 6, 6), 5.0, 5), ((3, 2, 17), 1.5, 4)):
        x = torch.rand(*shape, generator=gen, dtype=torch.float64)
        r = max(1, round(3 * sigma)) if radius is None else radius
        want = ndimage.gaussian_filter(x.numpy(), (0, 0) + (sigma,) * (len(shape) - 2), mode="nearest",
                                       truncate=r / sigma)
        np.testing.assert_allclose(blur(x, sigma, radius).numpy(), want, atol=1e-12)
