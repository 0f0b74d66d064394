"""Mask kernels: numba == numpy reference, and analytic calibration."""
from __future__ import annotations

import numpy as np
import oracles
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xaibench.scoring import kernels


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
    got = oracles.pointing_game(sal, dist, tol)
    np.testing.assert_allclose(got, oracles.pointing_game_ref(sal, dist, tol), equal_nan=True)
    assert np.isnan(got[0])


def test_random_map_hits_with_the_mask_area_fraction() -> None:
    rng = np.random.default_rng(0)
    n = 4000
    masks = np.zeros((n, 20, 20), dtype=bool)
    masks[:, 5:10, 5:13] = True  # area fraction 40/400 = 0.1
    got = oracles.pointing_game(rng.random((n, 20, 20), dtype=np.float32), kernels.distance_to_mask(masks), 0.0)
    se = np.sqrt(0.1 * 0.9 / n)
    assert abs(got.mean() - 0.1) < 4 * se


def test_oracle_map_scores_one_and_constant_map_scores_chance() -> None:
    rng = np.random.default_rng(1)
    masks = _masks(rng, 50, (16, 16), 0.2)
    dist = kernels.distance_to_mask(masks)
    assert np.all(oracles.pointing_game(masks.astype(np.float32), dist, 0.0) == 1.0)
    const = oracles.pointing_game(np.ones((50, 16, 16), np.float32), dist, 0.0)
    np.testing.assert_allclose(const, masks.reshape(50, -1).mean(1))


def test_tolerance_counts_near_misses() -> None:
    masks = np.zeros((1, 1, 30), dtype=bool)
    masks[0, 0, 10] = True
    sal = np.zeros((1, 1, 30), np.float32)
    sal[0, 0, 13] = 1.0
    dist = kernels.distance_to_mask(masks)
    assert oracles.pointing_game(sal, dist, 2.9)[0] == 0.0
    assert oracles.pointing_game(sal, dist, 3.0)[0] == 1.0


def test_nan_maps_are_rejected_with_a_clear_error() -> None:
    sal = np.zeros((2, 4, 4), np.float32)
    sal[1, 0, 0] = np.nan
    with pytest.raises(kernels.KernelInputError, match="NaN"):
        oracles.pointing_game(sal, np.zeros((2, 4, 4), np.float32), 0.0)


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
    mass = oracles.relevance_mass(sal, masks)
    np.testing.assert_allclose(mass, oracles.relevance_mass_ref(sal, masks), rtol=1e-6, equal_nan=True)
    rank = oracles.rank_accuracy(sal, masks)
    np.testing.assert_allclose(rank, oracles.rank_accuracy_ref(sal, masks), rtol=1e-9, equal_nan=True)
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
    for got, want in ((oracles.overlap_top_k(sal, masks, k), oracles.overlap_top_k_ref(sal, masks, k)),
                      (kernels.overlap_threshold(sal, masks, threshold), oracles.overlap_threshold_ref(sal, masks, threshold))):
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
    np.testing.assert_allclose(got, oracles.graded_hit_ref(sal, regions, 3), rtol=1e-9, equal_nan=True)
    assert np.isnan(got[0]) and np.all((got[1:] >= -1 / 3) & (got[1:] <= 1))


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), points=st.integers(2, 70))
def test_auc_kernel_equals_trapezoid(seed: int, points: int) -> None:
    curves = np.random.default_rng(seed).random((5, points))
    np.testing.assert_allclose(kernels.auc(curves), oracles.auc_ref(curves), rtol=1e-12)
    np.testing.assert_allclose(kernels.auc(np.ones((2, points))), 1.0)


def test_every_kernel_rejects_nan_and_bad_shapes_clearly() -> None:
    sal = np.zeros((2, 4, 4), np.float32)
    sal[1, 0, 0] = np.nan
    masks = np.ones((2, 4, 4), bool)
    calls = [lambda: oracles.relevance_mass(sal, masks), lambda: oracles.rank_accuracy(sal, masks),
             lambda: oracles.overlap_top_k(sal, masks, 0.1), lambda: kernels.overlap_threshold(sal, masks, 0.5),
             lambda: kernels.graded_hit(sal, masks.astype(np.int8), 3)]
    for call in calls:
        with pytest.raises(kernels.KernelInputError, match="NaN"):
            call()
    with pytest.raises(kernels.KernelInputError, match="NaN"):
        kernels.auc(np.array([[0.0, np.nan]]))
    with pytest.raises(kernels.KernelInputError, match="do not match"):
        oracles.relevance_mass(np.zeros((2, 4, 4), np.float32), np.ones((2, 4, 5), bool))
    with pytest.raises(kernels.KernelInputError, match="non-negative"):
        oracles.relevance_mass(-np.ones((1, 4, 4), np.float32), np.ones((1, 4, 4), bool))


def test_random_map_relevance_mass_and_rank_equal_the_mask_area_fraction() -> None:
    rng = np.random.default_rng(2)
    n = 2000
    masks = np.zeros((n, 20, 20), dtype=bool)
    masks[:, 2:12, 3:15] = True  # area fraction 120/400 = 0.3
    sal = rng.random((n, 20, 20), dtype=np.float32)
    mass = oracles.relevance_mass(sal, masks)
    rank = oracles.rank_accuracy(sal, masks)
    assert abs(mass.mean() - 0.3) < 0.002  # the mass share concentrates fast (400 uniform pixels per map)
    assert abs(rank.mean() - 0.3) < 4 * np.sqrt(0.3 * 0.7 / 120 / n)
    assert abs(oracles.overlap_top_k(sal, masks, 0.2)["coverage"].mean() - 0.2) < 0.005


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), levels=st.sampled_from([2, 5, 1000, 0]), k=st.floats(0.001, 0.6))
def test_fused_kernel_equals_references_on_large_maps(seed: int, levels: int, k: float) -> None:
    """Maps of 3600 pixels: the top-k cuts go through the sampled floor (and its fallback), not a full scan.

    ``levels=0`` draws continuous values; few levels make long runs of ties at the cut.
    """
    rng = np.random.default_rng(seed)
    shape = (8, 60, 60)
    sal = (rng.random(shape) if levels == 0 else rng.integers(0, levels, shape)).astype(np.float32)
    sal[1] = np.repeat(np.linspace(0, 1, 60, dtype=np.float32)[None], 60, 0)  # smooth ramp: structured samples
    masks = np.zeros(shape, dtype=bool)
    for i in range(1, 8):
        r, c = rng.integers(0, 40, 2)
        h, w = rng.integers(1, 40, 2)
        masks[i, r : r + h, c : c + w] = True
    dist = kernels.distance_to_mask(masks)
    got = kernels.mask_scores(sal, masks, (k,), tolerance=2.0, dist=dist)
    np.testing.assert_allclose(got.pointing, oracles.pointing_game_ref(sal, dist, 2.0), equal_nan=True)
    np.testing.assert_allclose(got.mass, oracles.relevance_mass_ref(sal, masks), rtol=1e-6, equal_nan=True)
    np.testing.assert_allclose(got.rank, oracles.rank_accuracy_ref(sal, masks), rtol=1e-9, equal_nan=True)
    want = oracles.overlap_top_k_ref(sal, masks, k)
    for name in kernels.OVERLAPS:
        np.testing.assert_allclose(got.top_k[k][name], want[name], rtol=1e-9, equal_nan=True, err_msg=name)


def test_a_map_that_fools_the_sampled_floor_still_scores_exactly() -> None:
    """Every sampled pixel high, fewer of them than k: the floor is too high and the row is rescanned."""
    p = 100 * 100
    sal = np.random.default_rng(0).random((1, p), dtype=np.float32)
    sal[0, :: p // kernels._SAMPLE] = 2.0  # exactly the positions the floor samples
    masks = np.zeros((1, p), bool)
    masks[0, : p // 3] = True
    got = kernels.mask_scores(sal, masks, (0.05,))
    np.testing.assert_allclose(got.rank, oracles.rank_accuracy_ref(sal, masks), rtol=1e-12)
    np.testing.assert_allclose(got.top_k[0.05]["iou"], oracles.overlap_top_k_ref(sal, masks, 0.05)["iou"], rtol=1e-12)


def test_fused_kernel_flags_signed_maps_and_rejects_nan() -> None:
    masks = np.ones((2, 4, 4), bool)
    signed = kernels.mask_scores(np.full((2, 4, 4), -1.0, np.float32), masks)
    assert signed.negative and not kernels.mask_scores(np.ones((2, 4, 4), np.float32), masks).negative
    bad = np.zeros((2, 4, 4), np.float32)
    bad[1, 2, 2] = np.inf
    with pytest.raises(kernels.KernelInputError, match="NaN or infinite"):
        kernels.mask_scores(bad, masks)


@pytest.mark.parametrize("dy, dx", [(1, 2), (3, 1), (1, 1), (2, 2)])
def test_a_peak_exactly_at_the_tolerance_hits(dy: int, dx: int) -> None:
    """Distance sqrt(dy^2 + dx^2) <= tolerance sqrt(dy^2 + dx^2): a hit, though float32 rounds the distance."""
    masks = np.zeros((1, 12, 12), dtype=bool)
    masks[0, 3, 3] = True
    sal = np.zeros((1, 12, 12), dtype=np.float32)
    sal[0, 3 + dy, 3 + dx] = 1.0
    tol = float(np.hypot(dy, dx))
    dist = kernels.distance_to_mask(masks)
    assert kernels.mask_scores(sal, masks, tolerance=tol, dist=dist).pointing[0] == 1.0
    assert kernels.mask_scores(sal, masks, tolerance=tol * (1 - 1e-6), dist=dist).pointing[0] == 0.0


def test_every_kernel_error_is_one_line_naming_the_shapes_or_values() -> None:
    """The messages a user sees at the boundary, whole (anchored), with the offending shape or value."""
    import re

    sal = np.zeros((2, 4, 4), np.float32)
    bad = sal.copy()
    bad[1, 0, 0] = np.nan
    masks = np.ones((2, 4, 4), bool)
    cases = [
        (lambda: kernels.as_rows(np.zeros(3)), "saliency maps must be (N, *spatial), got shape (3,)"),
        (lambda: kernels.overlap_threshold(bad, masks, 0.5), "saliency maps contain NaN or infinite values"),
        (lambda: kernels.mask_scores(bad, masks), "saliency maps contain NaN or infinite values"),
        (lambda: kernels.mask_scores(sal, np.ones((2, 4, 5), bool)),
         "masks of shape (2, 4, 5) do not match saliency maps of shape (2, 4, 4)"),
        (lambda: kernels.mask_scores(sal, masks, tolerance=1.0, dist=np.zeros((2, 4, 5), np.float32)),
         "distance maps of shape (2, 4, 5) do not match saliency maps of shape (2, 4, 4)"),
        (lambda: kernels.mask_scores(sal, masks, (0.0,)), "top-k fraction must be in (0, 1], got 0.0"),
        (lambda: kernels.mask_scores(sal, masks, (1.5,)), "top-k fraction must be in (0, 1], got 1.5"),
        (lambda: kernels.graded_hit(sal, masks.astype(np.int8), 0), "the region map's top level must be positive, got 0"),
        (lambda: kernels.graded_hit(sal, np.ones((2, 4, 5), np.int8), 3),
         "region maps of shape (2, 4, 5) do not match saliency maps of shape (2, 4, 4)"),
        (lambda: kernels.auc(np.zeros((2, 1))), "curves must be (N, S) with S >= 2 points, got shape (2, 1)"),
        (lambda: kernels.auc(np.zeros(3)), "curves must be (N, S) with S >= 2 points, got shape (3,)"),
        (lambda: kernels.auc(np.array([[0.0, np.inf]])), "curves contain NaN or infinite values"),
    ]
    for call, message in cases:
        with pytest.raises(kernels.KernelInputError, match=f"^{re.escape(message)}$"):
            call()


def _structured_maps(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Six 48 x 48 maps (P = 2304 > ``_SAMPLE``: the floor samples every 2nd pixel) that take the fused kernel's
    other paths: distinct values packed into one histogram bin, ties at the cut, a ramp, signed values, tied peaks."""
    rng = np.random.default_rng(seed)
    shape = (6, 48, 48)
    sal = rng.random(shape).astype(np.float32)  # 0: distinct values
    sal[1] = 0.5 + 1e-4 * rng.random((48, 48))  # 1: all but two values inside one of 1024 bins
    sal[1, 0, 0], sal[1, 47, 47] = 0.0, 1.0
    sal[2] = rng.integers(0, 5, (48, 48))  # 2: five levels, long ties at every cut
    sal[3] = np.linspace(0, 1, 48, dtype=np.float32)[None]  # 3: a ramp, equal within columns
    sal[4] = -1.0 - rng.random((48, 48))  # 4: all negative (the histogram's low end below zero), total below zero
    sal[5] = 0.0  # 5: three tied peaks, one inside the mask, one 2 px from it, one far
    masks = np.zeros(shape, dtype=bool)
    for i in range(6):
        r, c = rng.integers(0, 30, 2)
        h, w = rng.integers(3, 18, 2)
        masks[i, r : r + h, c : c + w] = True
    masks[5] = False
    masks[5, 10:20, 10:20] = True
    sal[5, 15, 15] = sal[5, 15, 21] = sal[5, 40, 40] = 1.0
    return sal, masks


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fused_kernel_equals_references_on_structured_maps(seed: int) -> None:
    """Every score of :func:`kernels.mask_scores` equals the numpy reference on maps taking every path of the kernel
    (fast with or without numba). Relevance mass at 1e-5: without numba the row sums accumulate in float32."""
    sal, masks = _structured_maps(seed)
    dist = kernels.distance_to_mask(masks)
    fractions = (0.005, 0.2)  # k = 12 and 461: the sampled floor holds (k = P, below, skips it)
    got = kernels.mask_scores(sal, masks, fractions, tolerance=2.0, dist=dist)
    np.testing.assert_allclose(got.pointing, oracles.pointing_game_ref(sal, dist, 2.0), rtol=1e-12)
    assert got.pointing[5] == pytest.approx(2 / 3)
    np.testing.assert_allclose(got.mass, oracles.relevance_mass_ref(sal, masks), rtol=1e-5, equal_nan=True)
    assert np.isnan(got.mass[4]) and got.negative
    np.testing.assert_allclose(got.rank, oracles.rank_accuracy_ref(sal, masks), rtol=1e-9)
    for f in fractions:
        want = oracles.overlap_top_k_ref(sal, masks, f)
        for name in kernels.OVERLAPS:
            np.testing.assert_allclose(got.top_k[f][name], want[name], rtol=1e-9, err_msg=f"{name} at {f}")
    whole = kernels.mask_scores(sal, masks, (1.0,))  # tolerance 0: the peak in the mask itself; k = P: every pixel
    np.testing.assert_allclose(whole.pointing, oracles.pointing_game_ref(sal, dist, 0.0), rtol=1e-12)
    assert whole.pointing[5] == pytest.approx(1 / 3)
    area = masks.reshape(6, -1).mean(1)
    np.testing.assert_allclose(whole.top_k[1.0]["coverage"], 1.0)
    np.testing.assert_allclose(whole.top_k[1.0]["iou"], area)
    np.testing.assert_allclose(whole.top_k[1.0]["dice"], 2 * area / (1 + area))


def test_quickselect_returns_the_rth_smallest_value() -> None:
    """``_select(a, r)`` (the floor's and the top-k cut's selection) is ``sort(a)[r]`` for every ``r``: ties,
    sorted and reversed runs, the extreme at either end."""
    rng = np.random.default_rng(3)
    arrays = [rng.integers(0, 4, n).astype(np.float32) for n in (1, 2, 3, 5, 8, 13)]
    arrays += [rng.random(n).astype(np.float32) for n in (2, 7, 16)]
    arrays += [np.arange(9, dtype=np.float32), np.arange(9, dtype=np.float32)[::-1].copy(),
               np.array([9, 1, 2, 3, 4, 5], np.float32), np.array([0, 5, 4, 3, 2, 1], np.float32),
               np.array([3, 3, 1, 3, 3], np.float32), np.full(6, 2.0, np.float32)]
    for a in arrays:
        want = np.sort(a)
        for r in range(len(a)):
            assert kernels._select(a.copy(), r) == want[r], (a, r)


def test_the_sampled_floor_keeps_at_least_k_and_not_much_more_of_a_random_row() -> None:
    """``_floor(row, k)`` (module doc): at least ``k`` values clear it (else the row is rescanned whole) and, the
    point of sampling, few more: at most ``2k + 5%`` of the row here, where a floor of -inf would keep all of it."""
    rng = np.random.default_rng(4)
    for p in (2304, 10000):
        for q in (0.001, 0.05, 0.3):
            k = round(q * p)
            for _ in range(3):
                row = rng.random(p).astype(np.float32)
                kept = int((row >= kernels._floor(row, k)).sum())
                assert k <= kept <= 2 * k + 0.05 * p, (p, k, kept)


def test_one_pixel_maps_and_a_single_negative_pixel() -> None:
    """1 x 1 maps: one candidate, the peak is the pixel (a hit, mass and rank 1 where it is in the mask, 0 or NaN
    elsewhere). A map whose only negative value is its first pixel is flagged signed."""
    sal = np.array([[[2.0]], [[2.0]], [[0.5]]], np.float32)
    masks = np.array([[[True]], [[False]], [[True]]])
    got = kernels.mask_scores(sal, masks, (1.0,))
    np.testing.assert_array_equal(got.pointing, [1.0, np.nan, 1.0])
    np.testing.assert_array_equal(got.mass, [1.0, np.nan, 1.0])
    np.testing.assert_array_equal(got.rank, [1.0, np.nan, 1.0])
    np.testing.assert_array_equal(got.top_k[1.0]["iou"], [1.0, np.nan, 1.0])
    signed = np.ones((1, 4, 4), np.float32)
    signed[0, 0, 0] = -1.0
    assert kernels.mask_scores(signed, np.ones((1, 4, 4), bool)).negative
    balanced = np.array([[[1.0, -1.0, 0.0]]], np.float32)  # sums to exactly 0: no share of a mass (NaN, not inf)
    assert np.isnan(kernels.mask_scores(balanced, np.array([[[True, False, False]]])).mass[0])


def test_the_pointing_tolerance_defaults_to_the_mask_itself_and_computes_missing_distances() -> None:
    """A peak 1 px right of a one-pixel lesion: a miss by default (tolerance 0), a hit at tolerance 1 whether the
    distances are given or computed from the masks; the scores are read-only (shared between metric cells)."""
    import dataclasses

    masks = np.zeros((1, 7, 7), dtype=bool)
    masks[0, 3, 3] = True
    sal = np.zeros((1, 7, 7), np.float32)
    sal[0, 3, 4] = 1.0
    assert kernels.mask_scores(sal, masks).pointing[0] == 0.0
    assert kernels.mask_scores(sal, masks, tolerance=1.0).pointing[0] == 1.0
    assert kernels.mask_scores(sal, masks, tolerance=0.5).pointing[0] == 0.0
    scores = kernels.mask_scores(sal, masks, tolerance=1.0, dist=kernels.distance_to_mask(masks))
    assert scores.pointing[0] == 1.0
    with pytest.raises(dataclasses.FrozenInstanceError):
        scores.pointing = np.zeros(1)  # type: ignore[misc]


def test_graded_hit_on_binary_regions_and_one_pixel_maps() -> None:
    """Top level 1 (a plain lesion mask as regions): the graded hit is the pointing game's tied-peak fraction;
    a 1 x 1 map scores its pixel's level; no positive level anywhere gives NaN."""
    sal = np.array([[[0.0, 3.0, 3.0, 1.0]], [[5.0, 0.0, 0.0, 0.0]], [[1.0, 1.0, 1.0, 1.0]]], np.float32)
    regions = np.array([[[0, 1, 0, 1]], [[0, 1, 1, 1]], [[0, 0, 0, 0]]], np.int8)
    np.testing.assert_array_equal(kernels.graded_hit(sal, regions, 1), [0.5, 0.0, np.nan])
    one = np.array([[[2.0]], [[2.0]]], np.float32)
    np.testing.assert_array_equal(kernels.graded_hit(one, np.array([[[3]], [[-1]]], np.int8), 3), [1.0, np.nan])
