"""ROAD's noise-free linear imputation (Rong et al. 2022, Sec. 4) and its removal masks, by hand.

A removed pixel is the mean of its in-bounds neighbours weighted 1/6 (direct) and 1/12
(diagonal); with one removed pixel that is a closed form, with one kept pixel the only
solution is that pixel's value everywhere. The parameter errors are the lines a user sees.
"""
from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from xaibench_metrics.road import linear_impute, removal_masks


def test_one_removed_pixel_is_the_weighted_mean_of_its_eight_neighbours() -> None:
    image = np.arange(2 * 4 * 5, dtype=np.float64).reshape(2, 4, 5) ** 1.5  # not linear: the weights matter
    removed = np.zeros((4, 5), dtype=bool)
    removed[1, 2] = True
    got = linear_impute(image, removed)
    direct = image[:, 0, 2] + image[:, 2, 2] + image[:, 1, 1] + image[:, 1, 3]
    diagonal = image[:, 0, 1] + image[:, 0, 3] + image[:, 2, 1] + image[:, 2, 3]
    np.testing.assert_allclose(got[:, 1, 2], direct / 6 + diagonal / 12, rtol=1e-12)
    keep = ~removed
    np.testing.assert_array_equal(got[:, keep], image[:, keep])
    np.testing.assert_array_equal(linear_impute(image, np.zeros((4, 5), dtype=bool)), image)  # nothing removed


def test_a_single_kept_pixel_fills_every_removed_pixel_with_its_value() -> None:
    """Every removed pixel equals the weighted mean of its neighbours: the constant is the only solution."""
    image = np.random.default_rng(0).random((3, 6, 7))
    removed = np.ones((6, 7), dtype=bool)
    removed[4, 1] = False
    got = linear_impute(image, removed)
    np.testing.assert_allclose(got, np.broadcast_to(image[:, 4:5, 1:2], image.shape), rtol=1e-10)


@pytest.mark.parametrize("spatial, message", [
    ((3, 3), "cannot impute an input whose every pixel is removed"),
    ((2, 2, 2, 2), "noisy linear imputation supports 1D, 2D and 3D inputs, got spatial shape (2, 2, 2, 2)"),
])
def test_linear_imputation_refuses_a_fully_removed_input_and_unsupported_ranks(spatial, message) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
        linear_impute(np.ones((1, *spatial)), np.ones(spatial, dtype=bool))


@pytest.mark.parametrize("fractions, order, message", [
    ((0.0, 0.5), "morf", "fractions must lie strictly between 0 and 1, got [0.0, 0.5]"),
    ((0.5, 1.0), "lerf", "fractions must lie strictly between 0 and 1, got [0.5, 1.0]"),
    ((), "morf", "fractions must lie strictly between 0 and 1, got []"),
    ((0.5,), "random", "order must be one of ('morf', 'lerf'), got 'random'"),
])
def test_removal_masks_refuse_fractions_outside_zero_one_and_unknown_orders(fractions, order, message) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
        removal_masks(torch.rand(1, 4, 4), fractions, order)
