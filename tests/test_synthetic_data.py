"""Tests of the embedded synthetic ultrasound generator (numpy only, a few seconds)."""
from __future__ import annotations

import pathlib
import sys

import numpy as np
import pytest
from scipy import ndimage

_PLUGINS = str(pathlib.Path(__file__).resolve().parents[1] / "plugins")
if _PLUGINS not in sys.path:  # harmless when the package is installed
    sys.path.insert(0, _PLUGINS)

from xaibench_datasets.synthetic import CLASS_NAMES, REGION_TOP_LEVEL, generate  # noqa: E402

NORMAL, BENIGN, MALIGNANT = (CLASS_NAMES.index(c) for c in ("normal", "benign", "malignant"))


@pytest.fixture(scope="module")
def data64() -> dict[str, np.ndarray]:
    return generate(150, 64, seed=11)


def _lesion_classes(y: np.ndarray) -> np.ndarray:
    return (y == BENIGN) | (y == MALIGNANT)


def test_constants() -> None:
    assert CLASS_NAMES == ("normal", "benign", "malignant")
    assert REGION_TOP_LEVEL == 3


@pytest.mark.parametrize("size", [32, 64, 128])
def test_shapes_dtypes_ranges(size: int) -> None:
    d = generate(9, size, seed=3)
    assert set(d) == {"x", "y", "masks", "regions"}
    assert d["x"].shape == (9, 1, size, size) and d["x"].dtype == np.float32
    assert d["y"].shape == (9,) and d["y"].dtype == np.int64
    assert d["masks"].shape == (9, size, size) and d["masks"].dtype == np.bool_
    assert d["regions"].shape == (9, size, size) and d["regions"].dtype == np.int8
    assert np.isfinite(d["x"]).all()
    assert d["x"].min() >= 0.0 and d["x"].max() <= 1.0
    assert set(np.unique(d["y"]).tolist()) <= {0, 1, 2}


def test_empty_request() -> None:
    d = generate(0, 64, seed=0)
    assert d["x"].shape == (0, 1, 64, 64) and d["y"].shape == (0,)


@pytest.mark.parametrize(
    ("n", "size", "seed", "shortcut"), [(-1, 64, 0, 0.0), (3, 16, 0, 0.0), (3, 64, -1, 0.0), (3, 64, 0, 1.5)]
)
def test_rejects_bad_arguments(n: int, size: int, seed: int, shortcut: float) -> None:
    with pytest.raises(ValueError):
        generate(n, size, seed, shortcut=shortcut)


def test_deterministic_and_independent_of_n() -> None:
    a, b = generate(20, 64, seed=5), generate(20, 64, seed=5)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
    small = generate(5, 64, seed=5)
    for key in a:
        np.testing.assert_array_equal(small[key], a[key][:5])
    other = generate(5, 64, seed=6)
    assert not np.array_equal(other["x"], small["x"])


def test_classes_balanced() -> None:
    counts = np.bincount(generate(30, 32, seed=0)["y"], minlength=3)
    assert counts.tolist() == [10, 10, 10]


def test_masks_by_class(data64: dict[str, np.ndarray]) -> None:
    masks, y = data64["masks"], data64["y"]
    assert not masks[y == NORMAL].any()
    areas = masks.sum(axis=(1, 2))
    assert (areas[_lesion_classes(y)] > 0).all()
    # lesion "radius" roughly 10-25% of the image size, by equivalent-disc radius
    radius = np.sqrt(areas[_lesion_classes(y)] / np.pi) / 64
    assert radius.min() > 0.06 and radius.max() < 0.27


@pytest.mark.parametrize("size", [32, 64, 128])
def test_lesions_and_rims_stay_inside(size: int) -> None:
    regions = generate(60, size, seed=21)["regions"]
    border = np.concatenate([regions[:, 0], regions[:, -1], regions[:, :, 0], regions[:, :, -1]], axis=1)
    assert not (border >= 2).any()


def test_regions_levels(data64: dict[str, np.ndarray]) -> None:
    masks, regions, y = data64["masks"], data64["regions"], data64["y"]
    assert set(np.unique(regions).tolist()) <= {-1, 0, 1, 2, 3}
    np.testing.assert_array_equal(regions == REGION_TOP_LEVEL, masks)
    assert set(np.unique(regions[y == NORMAL]).tolist()) <= {-1, 0}
    lesion = _lesion_classes(y)
    assert (regions[lesion] == 2).any(axis=(1, 2)).all()  # every lesion has a rim
    assert (regions[lesion] == 1).any(axis=(1, 2)).all()  # and a posterior zone


def test_rim_is_a_thin_band_around_the_mask(data64: dict[str, np.ndarray]) -> None:
    for mask, regions in zip(data64["masks"], data64["regions"]):
        if mask.any():
            near = ~mask & (ndimage.distance_transform_edt(~mask) <= 2.0)  # max(1, 64 / 32)
            np.testing.assert_array_equal(regions == 2, near)


def test_posterior_zone_lies_below_the_lesion(data64: dict[str, np.ndarray]) -> None:
    for mask, regions in zip(data64["masks"], data64["regions"]):
        zone = regions == 1
        if zone.any():
            above = np.cumsum(mask, axis=0) > 0
            assert above[zone].all()


def test_marks_never_overlap_lesion(data64: dict[str, np.ndarray]) -> None:
    marks = data64["regions"] == -1
    assert not (marks & data64["masks"]).any()
    assert 0.3 < marks.any(axis=(1, 2)).mean() < 0.7  # about half the images carry marks


def test_marks_are_bright(data64: dict[str, np.ndarray]) -> None:
    marks = data64["regions"] == -1
    assert data64["x"][:, 0][marks].min() >= 0.84


def test_shortcut_changes_only_mark_frequency() -> None:
    plain, biased = generate(300, 32, seed=2), generate(300, 32, seed=2, shortcut=1.0)
    np.testing.assert_array_equal(plain["masks"], biased["masks"])
    np.testing.assert_array_equal(plain["y"], biased["y"])
    y = biased["y"]
    rate = [(biased["regions"][y == c] == -1).any(axis=(1, 2)).mean() for c in range(3)]
    assert rate[MALIGNANT] == 1.0
    assert 0.15 < rate[NORMAL] < 0.35 and 0.15 < rate[BENIGN] < 0.35
    plain_rate = [(plain["regions"][plain["y"] == c] == -1).any(axis=(1, 2)).mean() for c in range(3)]
    assert max(plain_rate) - min(plain_rate) < 0.25


def _auc(negative: np.ndarray, positive: np.ndarray) -> float:
    """Probability that a positive scores above a negative (ties count half)."""
    diff = positive[None, :] - negative[:, None]
    return float((diff > 0).mean() + 0.5 * (diff == 0).mean())


def test_benign_and_malignant_are_separable_by_shape_and_texture() -> None:
    d = generate(240, 64, seed=8)
    masks, y, x = d["masks"], d["y"], d["x"][:, 0]
    edges = (masks[:, 1:] != masks[:, :-1]).sum(axis=(1, 2)) + (masks[:, :, 1:] != masks[:, :, :-1]).sum(axis=(1, 2))
    area = np.maximum(masks.sum(axis=(1, 2)), 1)
    roughness = edges**2 / (4 * np.pi * area)  # isoperimetric ratio: 1 for a disc, larger when spiculated
    assert _auc(roughness[y == BENIGN], roughness[y == MALIGNANT]) > 0.95
    heterogeneity = np.array([x[i][m].std() / x[i][m].mean() if m.any() else 0.0 for i, m in enumerate(masks)])
    assert _auc(heterogeneity[y == BENIGN], heterogeneity[y == MALIGNANT]) > 0.9


def test_lesions_are_darker_than_surrounding_tissue(data64: dict[str, np.ndarray]) -> None:
    x, regions = data64["x"][:, 0], data64["regions"]
    for image, reg in zip(x, regions):
        if (reg == 3).any():
            assert image[reg == 3].mean() < image[reg == 0].mean()
