"""Completeness error, sensitivity-n and faithfulness correlation through the registered metrics, by hand.

On a linear logit ``z = w . x (+ b)`` the drop from occluding a set ``S`` is
``sum_{i in S} w_i (x_i - baseline_i)`` over every channel, so each score is computed
here with numpy: the occluded sets are the cell's seeded draw (``patch_sets`` from the
samples' seeds; their structure, ``n`` whole patches of
``patch x patch`` pixels, is checked on its own), the correlation is ``np.corrcoef``.
"""
from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from torch import nn
from xaibench_metrics.completeness import patch_sets

from xaibench.scoring.engine import Engine
from xaibench.contract.metric_inputs import MetricContext
from xaibench.contract.plugins import load_harness
from xaibench.authoring.testing import score_metric

MEAN = torch.tensor([0.25, 0.75])


class Affine(nn.Module):
    """logit_1 = w . x + b (every channel), logit_0 = 0."""

    def __init__(self, w: torch.Tensor, b: float = 0.0) -> None:
        super().__init__()
        self.w = nn.Parameter(w.clone())
        self.b = b

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = (x.flatten(1) * self.w.flatten()).sum(1) + self.b
        return torch.stack([torch.zeros_like(z), z], dim=1)


def _score(name: str, model: nn.Module, x: torch.Tensor, maps: torch.Tensor, seed: int = 0,
           **params: object) -> np.ndarray:
    spec = load_harness().metrics.get(name)
    engine = Engine(model, "cpu", batch_size=16)
    ctx = MetricContext(engine=engine, base_logits=engine.logits(x), sample_seeds=tuple(range(seed, seed + len(x))),
                        data_mean=MEAN)
    return np.asarray(score_metric(spec, ctx, x, torch.ones(len(x), dtype=torch.long), maps,
                                   **{**spec.defaults, **params}), dtype=np.float64)


def _case(seed: int = 0, n: int = 3, size: int = 8) -> tuple[Affine, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    model = Affine(torch.randn(2, size, size, generator=g), b=1.5)
    x = torch.rand(n, 2, size, size, generator=g)
    maps = torch.randn(n, size, size, generator=g)
    return model, x, maps


def _hand_correlation(model: Affine, x: torch.Tensor, maps: torch.Tensor, sets: torch.Tensor,
                      baseline: torch.Tensor) -> np.ndarray:
    """corr over the sets S of (sum_S a, sum_{i in S} w_i (x_i - b_i)), the logit drop of a linear model."""
    effect = (model.w.detach()[None] * (x - baseline)).sum(1).double().numpy()  # per pixel, channels summed
    a = maps.double().numpy()
    s = sets.numpy()
    return np.array([np.corrcoef((s[i] * a[i]).sum((1, 2)), (s[i] * effect[i]).sum((1, 2)))[0, 1]
                     for i in range(len(x))])


# -- completeness error ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("fill", ["zero", "mean"])
def test_completeness_error_is_relative_to_the_change_from_the_fill(fill: str) -> None:
    """f(x) - f(b) = w . (x - b) with b zeros or the training mean per channel: the contributions w (x - b)
    have error 0, half of them 1/2, those of the other fill's baseline a hand-computed error."""
    model, x, _ = _case(1)
    w = model.w.detach()
    zero, mean = torch.zeros_like(x), MEAN[None, :, None, None].expand_as(x)
    base, other = (zero, mean) if fill == "zero" else (mean, zero)
    exact = (w * (x - base)).sum(1)
    np.testing.assert_allclose(_score("completeness-error", model, x, exact, fill=fill), 0.0, atol=1e-5)
    np.testing.assert_allclose(_score("completeness-error", model, x, exact / 2, fill=fill), 0.5, atol=1e-5)
    wrong = (w * (x - other)).sum(1)
    delta = exact.sum((1, 2)).double()
    expected = ((wrong.sum((1, 2)).double() - delta).abs() / delta.abs()).numpy()
    np.testing.assert_allclose(_score("completeness-error", model, x, wrong, fill=fill), expected, rtol=1e-4)


def test_completeness_error_on_probabilities_uses_the_softmax_change() -> None:
    """``output: prob``: |sum a - (p(x) - p(b))| / |p(x) - p(b)| with p = sigmoid(w . x + 1.5)."""
    model, x, maps = _case(2)
    with torch.no_grad():
        p = torch.sigmoid(model(x)[:, 1].double())
        p0 = torch.sigmoid(model(torch.zeros_like(x))[:, 1].double())
    total = maps.double().sum((1, 2))
    expected = ((total - (p - p0)).abs() / (p - p0).abs()).numpy()
    np.testing.assert_allclose(_score("completeness-error", model, x, maps, output="prob"), expected, rtol=1e-5)


def test_completeness_error_is_undefined_unless_the_output_changes_by_more_than_eps() -> None:
    """One pixel moves the logit by 1.5e-6, 0.5e-6 and exactly 2^-20: with the default eps = 1e-6 the first is
    defined (a zero map's error is 1), the second NaN; with eps = 2^-20 a change of exactly eps is NaN."""
    model = Affine(torch.ones(1, 2, 2))
    x = torch.zeros(3, 1, 2, 2)
    x[0, 0, 0, 0], x[1, 0, 0, 0], x[2, 0, 0, 0] = 1.5e-6, 0.5e-6, 2.0**-20
    got = _score("completeness-error", model, x, torch.zeros(3, 2, 2))
    np.testing.assert_array_equal(got[:2], [1.0, np.nan])
    at_eps = _score("completeness-error", model, x, torch.zeros(3, 2, 2), eps=2.0**-20)
    np.testing.assert_array_equal(at_eps, [1.0, np.nan, np.nan])


@pytest.mark.parametrize("params, message", [
    ({"fill": "blur"}, "fill must be one of zero, mean, got 'blur'"),
    ({"output": "softmax"}, "output must be one of ('prob', 'logit')"),
])
def test_completeness_error_rejects_an_unknown_fill_or_output(params: dict, message: str) -> None:  # type: ignore[type-arg]
    model, x, maps = _case()
    with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
        _score("completeness-error", model, x, maps, **params)


# -- sensitivity-n --------------------------------------------------------------------------------------------

def test_patch_sets_occlude_n_whole_patches_and_a_short_axis_whole() -> None:
    """A 16 x 3 input with patch 4: the 3-pixel axis is one patch wide (4 cells of 4 x 3 pixels), so each of the
    sets occludes n = 2 cells, 24 pixels, every row all or nothing."""
    sets = patch_sets(tuple(range(5)), (16, 3), patch=4, n=2, sets=7)
    assert sets.shape == (5, 7, 16, 3) and sets.dtype == torch.bool
    assert (sets.sum((2, 3)) == 24).all()
    cells = sets.reshape(5, 7, 4, 12).float().mean(-1)  # rows 4k..4k+3, all 3 columns
    assert ((cells == 0) | (cells == 1)).all()


@pytest.mark.parametrize("fill", ["zero", "mean"])
def test_sensitivity_n_is_the_correlation_of_map_sums_and_logit_drops(fill: str) -> None:
    """Pearson correlation over the cell's seeded sets of n = 3 patches (2 x 2 px) between the map's sum and
    the logit drop; the same seed gives the same score, another seed other sets."""
    model, x, maps = _case(3)
    sets = patch_sets((5, 6, 7), (8, 8), patch=2, n=3, sets=16)
    baseline = torch.zeros_like(x) if fill == "zero" else MEAN[None, :, None, None].expand_as(x)
    expected = _hand_correlation(model, x, maps, sets, baseline)
    got = _score("sensitivity-n", model, x, maps, seed=5, n=3, patch=2, sets=16, fill=fill)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    np.testing.assert_array_equal(_score("sensitivity-n", model, x, maps, seed=5, n=3, patch=2, sets=16, fill=fill),
                                  got)
    assert not np.allclose(_score("sensitivity-n", model, x, maps, seed=6, n=3, patch=2, sets=16, fill=fill), got)


@pytest.mark.parametrize("n, message", [
    (0, "n must be between 1 and 15 patches for a (8, 8) input with patch 2"),
    (16, "n must be between 1 and 15 patches for a (8, 8) input with patch 2"),
])
def test_sensitivity_n_needs_at_least_one_patch_and_not_all(n: int, message: str) -> None:
    """n = 1 and n = 15 of the 16 patches are the extremes; 0 and 16 are refused with one line."""
    model, x, maps = _case(4)
    for fine in (1, 15):
        assert np.isfinite(_score("sensitivity-n", model, x, maps, n=fine, patch=2, sets=8)).all()
    with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
        _score("sensitivity-n", model, x, maps, n=n, patch=2, sets=8)


# -- faithfulness correlation ---------------------------------------------------------------------------------

@pytest.mark.parametrize("subset, n", [(0.1, 6), (0.02, 1)])
def test_faithfulness_correlation_occludes_round_subset_times_pixels_single_pixels(subset: float, n: int) -> None:
    """Bhatt et al.: sets of round(subset * H * W) single pixels (at least 1): 0.1 * 64 -> 6, 0.02 * 64 -> 1."""
    model, x, maps = _case(6)
    sets = patch_sets((2, 3, 4), (8, 8), patch=1, n=n, sets=20)
    assert (sets.sum((2, 3)) == n).all()
    expected = _hand_correlation(model, x, maps, sets, torch.zeros_like(x))
    got = _score("faithfulness-correlation", model, x, maps, seed=2, subset=subset, runs=20)
    np.testing.assert_allclose(got, expected, atol=1e-5)


@pytest.mark.parametrize("subset", [0.0, 1.0, 1.5])
def test_faithfulness_correlation_subset_is_a_fraction_strictly_inside_zero_one(subset: float) -> None:
    model, x, maps = _case()
    message = f"subset must be a fraction of the pixels in (0, 1), got {subset}"
    with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
        _score("faithfulness-correlation", model, x, maps, subset=subset)
