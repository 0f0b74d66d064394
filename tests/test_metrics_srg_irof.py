"""Symmetric Relevance Gain and IROF: analytic cases, curves drawn by hand, Quantus 0.6's IROF on the same segments."""
from __future__ import annotations

import inspect
import warnings
from unittest import mock

import numpy as np
import pytest
import torch
from torch import nn
from xaibench_metrics.irof import irof_curves, segment_ranks, superpixels

from xaibench.scoring.engine import Engine
from xaibench.contract.plugins import load_harness
from xaibench.contract.metric_inputs import MetricContext
from xaibench.authoring.testing import score_metric

N, C, H, W = 5, 3, 16, 16


def _model(constant: bool = False, channels: int = C) -> nn.Module:
    torch.manual_seed(0)
    m = nn.Sequential(nn.Conv2d(channels, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * H * W, 3))
    if constant:
        with torch.no_grad():
            m[3].weight.zero_()
    return m.eval()


def _data(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(seed)
    return (torch.from_numpy(rng.random((N, C, H, W)).astype(np.float32)),
            torch.from_numpy(rng.random((N, H, W)).astype(np.float32)))


def _score(name: str, model: nn.Module, x: torch.Tensor, maps: torch.Tensor, **params: object) -> np.ndarray:
    """The registered metric through the seam, as the runner calls it."""
    spec = load_harness().metrics.get(name)
    engine = Engine(model, "cpu", batch_size=7)
    base = engine.logits(x)
    ctx = MetricContext(engine=engine, base_logits=base, data_mean=x.mean(dim=(0, 2, 3)),
                        sample_seeds=tuple(range(x.shape[0])))
    return np.asarray(score_metric(spec, ctx, x, base.argmax(1), maps, **{**spec.defaults, **params}), dtype=np.float64)


def _prob(model: nn.Module, x: torch.Tensor, target: int) -> float:
    with torch.no_grad():
        return float(torch.softmax(model(x[None]), 1)[0, target])


def test_srg_is_lif_minus_mif_area_of_curves_drawn_by_hand() -> None:
    model, (x, maps) = _model(), _data()
    steps, p = 8, H * W
    targets = model(x).argmax(1)
    expected = []
    for i in range(N):
        areas = []
        for order in (np.argsort(maps[i].numpy().ravel(), kind="stable"), np.argsort(-maps[i].numpy().ravel(), kind="stable")):
            curve = []
            for s in range(steps + 1):
                flat = x[i].reshape(C, -1).clone()
                flat[:, order[: round(s * p / steps)]] = 0.0
                curve.append(_prob(model, flat.reshape(C, H, W), int(targets[i])))
            areas.append(np.trapezoid(curve, dx=1.0 / steps))
        expected.append(areas[0] - areas[1])
    np.testing.assert_allclose(_score("srg", model, x, maps, steps=steps, fill="zero"), expected, atol=1e-6)


def test_srg_is_deletion_auc_of_the_negated_map_minus_that_of_the_map() -> None:
    model, (x, maps) = _model(), _data(1)
    srg = _score("srg", model, x, maps, steps=16, fill="zero")
    deletion = [_score("deletion-auc", model, x, m, steps=16, fill="zero") for m in (-maps, maps)]
    np.testing.assert_allclose(srg, deletion[0] - deletion[1], atol=1e-12)
    assert (srg != 0).all()


def test_srg_with_a_blur_fill_removes_pixels_to_scipys_gaussian_blur() -> None:
    """``fill: blur``, ``blur_sigma`` 1: the canvas is scipy's Gaussian filter of the input (sigma 1 pixel, radius
    round(3 sigma) = 3, borders replicated); SRG is the area of the curve for the negated map minus the map's."""
    from scipy.ndimage import gaussian_filter

    from xaibench.scoring.curves import perturbation_curve

    model, (x, maps) = _model(), _data(6)
    engine = Engine(model, "cpu", batch_size=7)
    targets = engine.logits(x).argmax(1)
    canvas = torch.from_numpy(gaussian_filter(x.numpy(), sigma=(0, 0, 1.0, 1.0), mode="nearest", truncate=3.0))
    mif, lif = (perturbation_curve(engine, x, targets, m, "deletion", canvas, 8) for m in (maps, -maps))
    expected = np.trapezoid(lif, dx=1 / 8, axis=1) - np.trapezoid(mif, dx=1 / 8, axis=1)
    srg = _score("srg", model, x, maps, steps=8, fill="blur", blur_sigma=1.0)
    np.testing.assert_allclose(srg, expected, atol=1e-6)
    assert (np.abs(srg) > 1e-4).all()


def test_srg_costs_two_curves_of_steps_passes_per_sample() -> None:
    """The curves' common first point, the input itself, is the runner's pass: 2 * steps new passes per sample."""
    spec, model, (x, maps) = load_harness().metrics.get("srg"), _model(), _data(7)
    engine = Engine(model, "cpu", batch_size=7)
    ctx = MetricContext(engine=engine, base_logits=engine.logits(x), data_mean=x.mean(dim=(0, 2, 3)),
                        sample_seeds=tuple(range(N)))
    before = engine.passes
    score_metric(spec, ctx, x, ctx.base_logits.argmax(1), maps, **{**spec.defaults, "steps": 4})
    assert engine.passes - before == 2 * 4 * N


def test_srg_of_a_map_that_orders_nothing_or_a_model_that_ignores_the_input_is_zero() -> None:
    model, (x, maps) = _model(), _data(2)
    np.testing.assert_array_equal(_score("srg", model, x, torch.ones(N, H, W)), np.zeros(N))
    np.testing.assert_allclose(_score("srg", _model(constant=True), x, maps), np.zeros(N), atol=1e-12)


def test_irof_of_a_model_that_ignores_the_input_is_zero_and_curves_start_at_one() -> None:
    x, maps = _data(3)
    np.testing.assert_allclose(_score("irof", _model(constant=True), x, maps), np.zeros(N), atol=1e-12)
    model = _model()
    engine = Engine(model, "cpu", batch_size=7)
    base = engine.logits(x)
    curves = irof_curves(x, base.argmax(1), maps, engine, base, fill="zero")
    segments = superpixels(x)
    assert [len(c) - 1 for c in curves] == [len(np.unique(s)) for s in segments]
    assert all(c[0] == 1.0 for c in curves)
    expected = [1.0 - np.trapezoid(c, dx=1.0 / (len(c) - 1)) for c in curves]
    np.testing.assert_allclose(_score("irof", model, x, maps, fill="zero"), expected, rtol=0, atol=0)


def test_irof_refuses_signals() -> None:
    with pytest.raises(ValueError, match=r"^IROF segments images \(N, C, H, W\); got inputs of shape \(2, 1, 30\)$"):
        superpixels(torch.zeros(2, 1, 30))
    assert load_harness().metrics.get("irof").modalities == frozenset({"image"})


def test_irof_removes_segments_in_decreasing_order_of_mean_relevance() -> None:
    """By hand: segment 0 (one pixel of 3, mean 3) goes first, then segment 2 (one pixel of 2), then segment 1
    (four pixels of 1: the largest total relevance, 4, but the lowest mean)."""
    segments = np.array([[[0, 1, 1], [1, 1, 2]]])
    maps = np.array([[[3.0, 1.0, 1.0], [1.0, 1.0, 2.0]]])
    ranks, counts = segment_ranks(maps, segments)
    np.testing.assert_array_equal(ranks, [[[0, 2, 2], [2, 2, 1]]])
    np.testing.assert_array_equal(counts, [3])


def test_irof_superpixels_are_labelled_0_to_s_minus_1() -> None:
    x, _ = _data(5)
    for labels in superpixels(x):
        np.testing.assert_array_equal(np.unique(labels), np.arange(len(np.unique(labels))))


def test_irof_helpers_default_to_the_registered_metrics_defaults() -> None:
    """A direct call of the segmentation or the curves segments as the metric does (Quantus's SLIC defaults)."""
    defaults = load_harness().metrics.get("irof").defaults
    checked = 0
    for helper in (superpixels, irof_curves):
        for key, param in inspect.signature(helper).parameters.items():
            if key in defaults and param.default is not inspect.Parameter.empty:
                assert param.default == defaults[key] and type(param.default) is type(defaults[key]), (helper, key)
                checked += 1
    assert checked == 5  # n_segments and compactness twice, fill once


quantus = pytest.importorskip("quantus", reason="quantus (test extra) is not installed")


def test_irof_curves_equal_quantus() -> None:
    """Quantus 0.6 returns S - trapz(c_1..c_S) (unnormalised, without c_0) on the same SLIC segments.

    One channel: Quantus 0.6's IROF fails on RGB input (its mask has one channel, the image three)."""
    warnings.filterwarnings("ignore", module="quantus")
    model, (x, maps) = _model(channels=1), _data(4)
    x = x[:, :1].contiguous()
    engine = Engine(model, "cpu", batch_size=7)
    base = engine.logits(x)
    targets = base.argmax(1)
    curves = irof_curves(x, targets, maps, engine, base, fill="zero")
    with mock.patch.object(np, "trapz", np.trapezoid, create=True):  # Quantus 0.6 calls np.trapz, gone in numpy 2
        theirs = np.asarray(quantus.IROF(perturb_baseline=0.0, return_aggregate=False, disable_warnings=True)(
            model=model, x_batch=x.numpy(), y_batch=targets.numpy(), a_batch=maps[:, None].numpy(), device="cpu"))
    expected = [len(c) - 1 - np.trapezoid(c[1:]) for c in curves]
    np.testing.assert_allclose(theirs, expected, rtol=1e-5)
