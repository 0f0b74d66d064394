"""Mask kernels: numba == numpy reference, and analytic calibration."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xaibench import kernels


def _masks(rng: np.random.Generator, n: int, shape: tuple[int, ...], p: float) -> np.ndarray:
    return rng.random((n, *shape)) < p


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), levels=st.integers(1, 6), p=st.floats(0.0, 1.0), tol=st.floats(0, 4))
def test_pointing_game_kernel_equals_reference(seed: int, levels: int, p: float, tol: float) -> None:
    rng = np.random.default_rng(seed)
    sal = rng.integers(0, levels, size=(6, 9, 7)).astype(np.float32)  # few levels: many ties
    masks = _masks(rng, 6, (9, 7), p)
    masks[0] = False  # always one empty mask
    dist = kernels.distance_to_mask(masks)
    got = kernels.pointing_game(sal, dist, tol)
    np.testing.assert_allclose(got, kernels.pointing_game_ref(sal, dist, tol), equal_nan=True)
    assert np.isnan(got[0])


def test_random_map_hits_with_the_mask_area_fraction() -> None:
    rng = np.random.default_rng(0)
    n = 4000
    masks = np.zeros((n, 20, 20), dtype=bool)
    masks[:, 5:10, 5:13] = True  # area fraction 40/400 = 0.1
    got = kernels.pointing_game(rng.random((n, 20, 20), dtype=np.float32), kernels.distance_to_mask(masks), 0.0)
    se = np.sqrt(0.1 * 0.9 / n)
    assert abs(got.mean() - 0.1) < 4 * se


def test_oracle_map_scores_one_and_constant_map_scores_chance() -> None:
    rng = np.random.default_rng(1)
    masks = _masks(rng, 50, (16, 16), 0.2)
    dist = kernels.distance_to_mask(masks)
    assert np.all(kernels.pointing_game(masks.astype(np.float32), dist, 0.0) == 1.0)
    const = kernels.pointing_game(np.ones((50, 16, 16), np.float32), dist, 0.0)
    np.testing.assert_allclose(const, masks.reshape(50, -1).mean(1))


def test_tolerance_counts_near_misses() -> None:
    masks = np.zeros((1, 1, 30), dtype=bool)
    masks[0, 0, 10] = True
    sal = np.zeros((1, 1, 30), np.float32)
    sal[0, 0, 13] = 1.0
    dist = kernels.distance_to_mask(masks)
    assert kernels.pointing_game(sal, dist, 2.9)[0] == 0.0
    assert kernels.pointing_game(sal, dist, 3.0)[0] == 1.0


def test_nan_maps_are_rejected_with_a_clear_error() -> None:
    sal = np.zeros((2, 4, 4), np.float32)
    sal[1, 0, 0] = np.nan
    with pytest.raises(kernels.KernelInputError, match="NaN"):
        kernels.pointing_game(sal, np.zeros((2, 4, 4), np.float32), 0.0)
