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


def _maps_and_masks(seed: int, levels: int, p: float, n: int = 6, shape: tuple[int, ...] = (9, 7)):
    """Few distinct levels (many ties), one empty and one full mask, one constant map."""
    rng = np.random.default_rng(seed)
    sal = rng.integers(0, levels, size=(n, *shape)).astype(np.float32)
    sal[1] = 2.0
    masks = _masks(rng, n, shape, p)
    masks[0] = False
    masks[2] = True
    return sal, masks


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), levels=st.integers(1, 6), p=st.floats(0.0, 1.0))
def test_relevance_mass_and_rank_kernels_equal_reference(seed: int, levels: int, p: float) -> None:
    sal, masks = _maps_and_masks(seed, levels, p)
    mass = kernels.relevance_mass(sal, masks)
    np.testing.assert_allclose(mass, kernels.relevance_mass_ref(sal, masks), rtol=1e-6, equal_nan=True)
    rank = kernels.rank_accuracy(sal, masks)
    np.testing.assert_allclose(rank, kernels.rank_accuracy_ref(sal, masks), rtol=1e-9, equal_nan=True)
    assert np.isnan(mass[0]) and np.isnan(rank[0])
    assert rank[2] == 1.0  # a full mask holds every top pixel
    area = masks[1].mean()
    if masks[1].any():  # a constant map scores chance: its share of mass and of the top-|M| is the area
        np.testing.assert_allclose([mass[1], rank[1]], [area, area], rtol=1e-6)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), levels=st.integers(1, 6), p=st.floats(0.0, 1.0),
       k=st.floats(0.01, 1.0), threshold=st.floats(0.0, 6.0))
def test_overlap_kernels_equal_reference(seed: int, levels: int, p: float, k: float, threshold: float) -> None:
    sal, masks = _maps_and_masks(seed, levels, p)
    for got, want in ((kernels.overlap_top_k(sal, masks, k), kernels.overlap_top_k_ref(sal, masks, k)),
                      (kernels.overlap_threshold(sal, masks, threshold), kernels.overlap_threshold_ref(sal, masks, threshold))):
        for name in kernels.OVERLAPS:
            np.testing.assert_allclose(got[name], want[name], rtol=1e-9, equal_nan=True, err_msg=name)
            assert np.isnan(got[name][0])


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), levels=st.integers(1, 6))
def test_graded_hit_kernel_equals_reference(seed: int, levels: int) -> None:
    rng = np.random.default_rng(seed)
    sal = rng.integers(0, levels, size=(6, 8, 8)).astype(np.float32)
    regions = rng.integers(-1, 4, size=(6, 8, 8)).astype(np.int8)
    regions[0] = np.minimum(regions[0], 0)  # no relevant region: undefined
    got = kernels.graded_hit(sal, regions, 3)
    np.testing.assert_allclose(got, kernels.graded_hit_ref(sal, regions, 3), rtol=1e-9, equal_nan=True)
    assert np.isnan(got[0]) and np.all((got[1:] >= -1 / 3) & (got[1:] <= 1))


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), points=st.integers(2, 70))
def test_auc_kernel_equals_trapezoid(seed: int, points: int) -> None:
    curves = np.random.default_rng(seed).random((5, points))
    np.testing.assert_allclose(kernels.auc(curves), kernels.auc_ref(curves), rtol=1e-12)
    np.testing.assert_allclose(kernels.auc(np.ones((2, points))), 1.0)


def test_every_kernel_rejects_nan_and_bad_shapes_clearly() -> None:
    sal = np.zeros((2, 4, 4), np.float32)
    sal[1, 0, 0] = np.nan
    masks = np.ones((2, 4, 4), bool)
    calls = [lambda: kernels.relevance_mass(sal, masks), lambda: kernels.rank_accuracy(sal, masks),
             lambda: kernels.overlap_top_k(sal, masks, 0.1), lambda: kernels.overlap_threshold(sal, masks, 0.5),
             lambda: kernels.graded_hit(sal, masks.astype(np.int8), 3)]
    for call in calls:
        with pytest.raises(kernels.KernelInputError, match="NaN"):
            call()
    with pytest.raises(kernels.KernelInputError, match="NaN"):
        kernels.auc(np.array([[0.0, np.nan]]))
    with pytest.raises(kernels.KernelInputError, match="do not match"):
        kernels.relevance_mass(np.zeros((2, 4, 4), np.float32), np.ones((2, 4, 5), bool))
    with pytest.raises(kernels.KernelInputError, match="non-negative"):
        kernels.relevance_mass(-np.ones((1, 4, 4), np.float32), np.ones((1, 4, 4), bool))


def test_random_map_relevance_mass_and_rank_equal_the_mask_area_fraction() -> None:
    rng = np.random.default_rng(2)
    n = 2000
    masks = np.zeros((n, 20, 20), dtype=bool)
    masks[:, 2:12, 3:15] = True  # area fraction 120/400 = 0.3
    sal = rng.random((n, 20, 20), dtype=np.float32)
    mass = kernels.relevance_mass(sal, masks)
    rank = kernels.rank_accuracy(sal, masks)
    assert abs(mass.mean() - 0.3) < 0.002  # the mass share concentrates fast (400 uniform pixels per map)
    assert abs(rank.mean() - 0.3) < 4 * np.sqrt(0.3 * 0.7 / 120 / n)
    assert abs(kernels.overlap_top_k(sal, masks, 0.2)["coverage"].mean() - 0.2) < 0.005
