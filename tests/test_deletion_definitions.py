"""RISE deletion and insertion (Petsiuk et al. 2018, Sec. 4.1) through the registered metrics, by hand.

On a linear two-class model (``p_c = sigmoid(w . x)``) with one pixel moved per step
(``steps`` = the number of pixels) and a map without ties, the curve is computed here
pixel by pixel: deletion sets the most salient pixels to the canvas (zeros, the training
mean per channel, or RISE's blur), insertion puts them back onto it. The blurred canvas is
scipy's ``gaussian_filter`` (borders replicated), the AUC numpy's trapezoid rule on [0, 1].
"""
from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from scipy import ndimage
from test_metrics import Linear2

from xaibench.scoring.engine import Engine
from xaibench.contract.metric_inputs import MetricContext
from xaibench.contract.plugins import load_harness
from xaibench.authoring.testing import score_metric

N, C, SIDE = 3, 2, 6
P = SIDE * SIDE
MEAN = torch.tensor([0.25, 0.75])


def _case() -> tuple[Linear2, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(11)
    model = Linear2(torch.randn(C, SIDE, SIDE, generator=g)).eval()
    x = torch.rand(N, C, SIDE, SIDE, generator=g)
    maps = torch.randperm(N * P, generator=g).reshape(N, SIDE, SIDE).float()  # no ties
    return model, x, maps


def _score(name: str, model: Linear2, x: torch.Tensor, maps: torch.Tensor, **params: object) -> np.ndarray:
    spec = load_harness().metrics.get(name)
    engine = Engine(model, "cpu", batch_size=16)
    ctx = MetricContext(engine=engine, base_logits=engine.logits(x), data_mean=MEAN,
                        sample_seeds=tuple(range(len(x))))
    return np.asarray(score_metric(spec, ctx, x, torch.ones(len(x), dtype=torch.long), maps,
                                   **{**spec.defaults, "steps": P, **params}), dtype=np.float64)


def _hand_auc(model: Linear2, x: torch.Tensor, maps: torch.Tensor, canvas: np.ndarray, mode: str) -> np.ndarray:
    """AUC over [0, 1] of p_c with the k most salient pixels (all channels) deleted / inserted, k = 0..P."""
    w = model.w.detach().double().numpy().reshape(C, -1)
    out = []
    for i in range(len(x)):
        order = np.argsort(-maps[i].numpy().reshape(-1))
        start, end = x[i].double().numpy().reshape(C, -1), canvas[i].reshape(C, -1)
        if mode == "insertion":
            start, end = end, start
        current, curve = start.copy(), []
        for k in range(P + 1):
            if k:
                current[:, order[k - 1]] = end[:, order[k - 1]]
            curve.append(1 / (1 + np.exp(-(w * current).sum())))
        out.append(np.trapezoid(curve, np.linspace(0, 1, P + 1)))
    return np.asarray(out)


def _blurred(x: torch.Tensor, size: int, sigma: float) -> np.ndarray:
    """RISE's canvas: a Gaussian of half-width ``size // 2`` pixels, borders replicated (scipy)."""
    return ndimage.gaussian_filter(x.double().numpy(), (0, 0, sigma, sigma), mode="nearest",
                                   truncate=(size // 2) / sigma)


@pytest.mark.parametrize("fill", ["zero", "mean", "blur"])
def test_deletion_auc_sets_removed_pixels_to_its_fill(fill: str) -> None:
    """Zero fill (RISE), the training mean per channel, or the 11-tap sigma-5 blur RISE uses for insertion."""
    model, x, maps = _case()
    canvas = {"zero": np.zeros(x.shape), "mean": np.broadcast_to(MEAN.double().numpy()[None, :, None, None], x.shape),
              "blur": _blurred(x, 11, 5.0)}[fill]
    np.testing.assert_allclose(_score("deletion-auc", model, x, maps, fill=fill),
                               _hand_auc(model, x, maps, canvas, "deletion"), rtol=0, atol=2e-6)


@pytest.mark.parametrize("size, sigma", [(11, 5.0), (3, 1.0), (9, 2.0)])
def test_insertion_auc_restores_pixels_onto_a_gaussian_of_the_given_width(size: int, sigma: float) -> None:
    """RISE's default canvas (kernel 11, sigma 5) and other odd widths down to 3: radius = size // 2."""
    model, x, maps = _case()
    np.testing.assert_allclose(_score("insertion-auc", model, x, maps, blur_size=size, blur_sigma=sigma),
                               _hand_auc(model, x, maps, _blurred(x, size, sigma), "insertion"), rtol=0, atol=2e-6)


@pytest.mark.parametrize("params, message", [
    ({"blur_size": 4}, "blur_size is the kernel's odd width in pixels (at least 3), got 4"),
    ({"blur_size": 1}, "blur_size is the kernel's odd width in pixels (at least 3), got 1"),
    ({"fill": "noise"}, "fill must be one of ('zero', 'mean', 'blur'), got 'noise'"),
])
def test_insertion_rejects_an_even_or_too_small_kernel_and_an_unknown_fill(params: dict, message: str) -> None:  # type: ignore[type-arg]
    model, x, maps = _case()
    with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
        _score("insertion-auc", model, x, maps, **params)
