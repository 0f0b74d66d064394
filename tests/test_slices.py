"""Volumes in figures: orthogonal slices through the map's peak, and a volume gallery."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from xaibench.figures import charts as figures
from xaibench.figures.slices import orthogonal_slices, slice_point


def test_slices_go_through_the_peak_and_keep_each_plane() -> None:
    rng = np.random.default_rng(0)
    x = rng.random((1, 4, 5, 6))
    sal = np.zeros((4, 5, 6))
    sal[1, 3, 2] = -5.0  # the peak of |map|
    mask = np.zeros((4, 5, 6), dtype=bool)
    mask[1, 2:4, 1:3] = True
    x2d, s2d, m2d = orthogonal_slices(x, sal, mask)
    assert x2d.shape == (1, 5 + 1 + 4 + 1 + 4, 6) and s2d.shape == m2d.shape == (15, 6)
    np.testing.assert_array_equal(x2d[0, :5, :], x[0, 1])             # axial: the D=1 plane (H x W)
    np.testing.assert_array_equal(x2d[0, 6:10, :], x[0, :, 3, :])     # coronal: the H=3 plane (D x W)
    np.testing.assert_array_equal(x2d[0, 11:15, :5], x[0, :, :, 2])   # sagittal: the W=2 plane (D x H)
    assert s2d[0, 0] == 0 and s2d[3, 2] == -5.0 and s2d[6 + 1, 2] == -5.0 and s2d[11 + 1, 3] == -5.0
    np.testing.assert_array_equal(m2d[:5, :], mask[1])
    assert not m2d[5].any() and not m2d[11:15, 5].any()  # a separator row and the sagittal plane's padding column


def test_input_panels_go_through_the_mask_centre() -> None:
    mask = np.zeros((8, 8, 8), dtype=bool)
    mask[5:7, 1:3, 2:4] = True
    assert slice_point(None, mask, (8, 8, 8)) == (5, 1, 2)  # the 8 voxels tie: the first in C order
    ring = np.zeros((9, 9, 9), dtype=bool)
    ring[4, 1:8, 1:8] = True
    ring[4, 3:6, 3:6] = False  # a hollow square: its centre of mass (4, 4, 4) is outside the mask
    assert ring[slice_point(None, ring, (9, 9, 9))]
    assert slice_point(None, None, (8, 8, 8)) == (4, 4, 4)
    with pytest.raises(ValueError, match="does not match"):
        orthogonal_slices(np.zeros((1, 8, 8, 8)), np.zeros((8, 8)), None)


def test_volume_gallery_and_curves_are_written(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    x = rng.random((2, 1, 8, 10, 12)).astype(np.float32)
    masks = np.zeros((2, 8, 10, 12), dtype=bool)
    masks[:, 2:5, 3:6, 4:8] = True
    path = figures.gallery(x, masks, {"a": rng.random((2, 8, 10, 12)), "b": rng.random((2, 8, 10, 12))},
                           ["v0", "v1"], ["y=0", "y=1"], "vol", tmp_path / "g.png")
    assert 1_000 < path.stat().st_size < 300_000
