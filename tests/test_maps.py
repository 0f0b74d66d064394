"""Saliency-map helpers (xaibench.scoring.maps): values derived by hand, one map at a time and per map in a batch."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from xaibench.scoring.maps import normalize, reduce_channels, upsample


def test_upsample_linear_by_hand() -> None:
    """align_corners=False: output i samples the input at (i + 0.5) * 2 / 4 - 0.5, clamped at the edges."""
    got = upsample(torch.tensor([[0.0, 1.0]]), (4,))
    np.testing.assert_allclose(got.numpy(), [[0.0, 0.25, 0.75, 1.0]])


def test_upsample_bilinear_and_trilinear_by_hand() -> None:
    """Separable: the 2x2 map [[0, 1], [2, 3]] at 4x4 is the outer sum of the 1D interpolations."""
    w = np.array([0.0, 0.25, 0.75, 1.0])
    got = upsample(torch.tensor([[[0.0, 1.0], [2.0, 3.0]]]), (4, 4))
    np.testing.assert_allclose(got.numpy()[0], 2 * w[:, None] + w[None, :], rtol=1e-6)
    cube = torch.arange(8, dtype=torch.float32).reshape(1, 2, 2, 2)  # value 4d + 2h + w
    got = upsample(cube, (4, 4, 4))
    np.testing.assert_allclose(got.numpy()[0], 4 * w[:, None, None] + 2 * w[None, :, None] + w[None, None, :],
                               rtol=1e-6)


def test_upsample_to_the_same_size_returns_the_maps_and_refuses_a_wrong_rank() -> None:
    maps = torch.rand(2, 3, 5)
    assert upsample(maps, (3, 5)) is maps
    assert upsample(torch.rand(1, 3), (5,)).shape == (1, 5)
    with pytest.raises(ValueError, match=r"^map of shape \(2, 3\) cannot be resized to \(4, 4\)$"):
        upsample(torch.rand(2, 3), (4, 4))


def test_normalize_scales_each_map_on_its_own() -> None:
    """Two maps of different ranges in one batch: each is divided by its own maximum (minus its own minimum)."""
    maps = torch.tensor([[[1.0, 2.0], [3.0, 4.0]], [[10.0, 20.0], [30.0, 20.0]]])
    np.testing.assert_allclose(normalize(maps, "positive").numpy(),
                               [[[0.25, 0.5], [0.75, 1.0]], [[1 / 3, 2 / 3], [1.0, 2 / 3]]], rtol=1e-6)
    np.testing.assert_allclose(normalize(maps, "positive", subtract_min=True).numpy(),
                               [[[0.0, 1 / 3], [2 / 3, 1.0]], [[0.0, 0.5], [1.0, 0.5]]], rtol=1e-6)
    np.testing.assert_allclose(normalize(-maps, "abs").numpy(), normalize(maps, "positive").numpy(), rtol=1e-6)
    np.testing.assert_allclose(normalize(maps - 25, "raw").numpy(),
                               normalize(maps, "positive", subtract_min=True).numpy(), rtol=1e-6)


def test_normalize_defaults_to_the_positive_part_divided_by_the_maximum() -> None:
    """By hand: negative values become 0 (not |v|), and the minimum is not subtracted."""
    np.testing.assert_allclose(normalize(torch.tensor([[-2.0, 1.0, 2.0, 4.0]])).numpy(), [[0.0, 0.25, 0.5, 1.0]])
    np.testing.assert_allclose(normalize(torch.tensor([[1.0, 2.0, 4.0]])).numpy(), [[0.25, 0.5, 1.0]])


def test_normalize_keeps_a_tiny_range_and_zeroes_an_all_zero_map() -> None:
    """A range of 1e-20 is still a range (the map is rescaled exactly); an all-negative map under ``positive``
    is all zero and stays zero (no division by zero, no NaN)."""
    tiny = torch.tensor([[0.0, 1e-20, 2e-20, 4e-20]])
    np.testing.assert_allclose(normalize(tiny, "positive").numpy(), [[0.0, 0.25, 0.5, 1.0]], rtol=1e-6)
    got = normalize(torch.tensor([[[-1.0, -2.0]], [[0.0, 0.0]]]), "positive")
    assert got.dtype == torch.float32 and got.shape == (2, 1, 2)
    np.testing.assert_array_equal(got.numpy(), 0.0)
    const = torch.full((1, 2, 2), 3.0)  # uniform relevance without min-max scaling, no ranking with it
    np.testing.assert_array_equal(normalize(const, "positive").numpy(), 1.0)
    np.testing.assert_array_equal(normalize(const, "raw").numpy(), 0.0)
    with pytest.raises(ValueError, match=r"^sign must be one of \('abs', 'positive', 'raw'\), got 'signed'$"):
        normalize(tiny, "signed")


def test_reduce_channels_by_hand() -> None:
    attr = torch.tensor([[[1.0, -2.0]], [[-3.0, 1.0]]]).permute(1, 0, 2)  # (N=1, C=2, L=2): channels (1,-2), (-3,1)
    np.testing.assert_allclose(reduce_channels(attr).numpy(), [[-2.0, -1.0]])
    np.testing.assert_allclose(reduce_channels(attr, "abs").numpy(), [[4.0, 3.0]])
    np.testing.assert_allclose(reduce_channels(attr, "max_abs").numpy(), [[3.0, 2.0]])
    with pytest.raises(ValueError, match=r"^channel reduction must be sum, abs or max_abs, got 'mean'$"):
        reduce_channels(attr, "mean")
