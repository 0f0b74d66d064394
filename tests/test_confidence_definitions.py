"""Average Drop / Increase in Confidence (Grad-CAM++, Sec. 5.1): every variant's covering pinned by hand.

The registered ``dic``/``iic`` metrics and their ``-mask`` (binary mask ``L >= threshold``) and
``-important`` (cover ``1 - L``: remove what the map marks) variants, on a model whose
target probability is ``sigmoid(w . x)`` (``Linear2``); the kept image is derived from the integer map
directly (min-max scaling of ``{0, 1, 2}`` gives ``L = {0, 0.5, 1}``), not from the metric's code.
"""
from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from test_metrics import Linear2
from torch import nn

from xaibench.scoring.engine import Engine
from xaibench.contract.metric_inputs import MetricContext
from xaibench.contract.plugins import load_harness
from xaibench.authoring.testing import score_metric


def _score(name: str, model: nn.Module, x: torch.Tensor, maps: torch.Tensor, **params: object) -> np.ndarray:
    spec = load_harness().metrics.get(name)
    engine = Engine(model, "cpu", batch_size=8)
    ctx = MetricContext(engine=engine, base_logits=engine.logits(x))
    target = torch.ones(len(x), dtype=torch.long)
    return np.asarray(score_metric(spec, ctx, x, target, maps, **{**spec.defaults, **params}), dtype=np.float64)


def _case() -> tuple[Linear2, torch.Tensor, torch.Tensor]:
    """Positive weights and inputs, maps of integers 0, 1, 2 (each present in every sample)."""
    g = torch.Generator().manual_seed(7)
    model = Linear2(torch.rand(1, 4, 4, generator=g) + 0.5)
    x = torch.rand(5, 1, 4, 4, generator=g) + 0.1
    maps = torch.randint(0, 3, (5, 4, 4), generator=g).float()
    maps[:, 0, 0], maps[:, 0, 1], maps[:, 0, 2] = 0.0, 1.0, 2.0
    return model, x, maps


def _drop_and_increase(model: nn.Module, x: torch.Tensor, keep: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """100 * max(0, p - q) / p and 100 * 1[q > p], with p = p_c(x), q = p_c(x * keep)."""
    with torch.no_grad():
        p = torch.sigmoid(model(x)[:, 1]).double()
        q = torch.sigmoid(model(x * keep[:, None])[:, 1]).double()
    return (100 * (p - q).clamp(min=0) / p).numpy(), (100 * (q > p).double()).numpy()


@pytest.mark.parametrize("name, keep_of", [
    ("dic", lambda m: m / 2),                       # darken by L = m / 2
    ("dic-important", lambda m: 1 - m / 2),         # darken by 1 - L
    ("dic-mask", lambda m: (m >= 1).float()),       # keep L >= 0.5: a pixel at exactly 0.5 is kept
    ("dic-mask-important", lambda m: (m < 1).float()),
])
def test_average_drop_variants_cover_the_image_as_defined(name, keep_of) -> None:  # type: ignore[no-untyped-def]
    """Each variant's kept image, from the map's integers by hand: darkening multiplies by L (or 1 - L), the
    mask keeps L >= threshold (0.5, the pixels of value 1 included) or its complement."""
    model, x, maps = _case()
    drop, _ = _drop_and_increase(model, x, keep_of(maps))
    assert (drop > 0).all()  # every variant covers something that matters
    np.testing.assert_allclose(_score(name, model, x, maps), drop, rtol=1e-5)


def test_mask_threshold_keeps_the_pixels_at_the_threshold() -> None:
    """``threshold`` is the registered parameter: 0.25 keeps value 1 (L = 0.5) too, 0.75 only value 2 (L = 1)."""
    model, x, maps = _case()
    for threshold, keep in ((0.5, maps >= 1), (0.75, maps >= 2), (0.25, maps >= 1)):
        drop, _ = _drop_and_increase(model, x, keep.float())
        np.testing.assert_allclose(_score("dic-mask", model, x, maps, threshold=threshold), drop, rtol=1e-5)
    assert not np.allclose(_score("dic-mask", model, x, maps, threshold=0.5),
                           _score("dic-mask", model, x, maps, threshold=0.75))


def test_increase_in_confidence_counts_strict_increases_only() -> None:
    """IiC = 100 * 1[p_c(x * L) > p_c(x)]: the model reads only pixel (0, 0), weight -1. Sample 0's map peaks
    there (L = 1: the model sees the same input, p unchanged, no increase); sample 1's map is lowest there
    (L = 0: the logit rises from -x_00 to 0, an increase)."""
    w = torch.zeros(1, 3, 3)
    w[0, 0, 0] = -1.0
    model = Linear2(w)
    x = torch.full((2, 1, 3, 3), 0.6)
    maps = torch.rand(2, 3, 3, generator=torch.Generator().manual_seed(0)) * 0.5 + 0.25
    maps[0, 0, 0], maps[1, 0, 0] = 1.0, 0.0
    np.testing.assert_array_equal(_score("iic", model, x, maps), [0.0, 100.0])
    np.testing.assert_array_equal(_score("dic", model, x, maps), [0.0, 0.0])


@pytest.mark.parametrize("param, value, message", [
    ("cover", "sideways", "cover must be one of ('nonessential', 'important'), got 'sideways'"),
    ("fill", "blur", "fill must be one of ('darken', 'zero'), got 'blur'"),
])
def test_confidence_rejects_an_unknown_cover_or_fill(param: str, value: str, message: str) -> None:
    model, x, maps = _case()
    with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
        _score("dic", model, x, maps, **{param: value})
