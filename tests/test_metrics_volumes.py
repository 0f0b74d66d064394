"""Metrics on volumes (maps (N, D, H, W)): each against an independent value.

Perturbation metrics on a volume must equal the same metric on the image obtained by
stacking its slices (a linear model reads both identically, and voxel ranks flatten in
the same order), so the 2D path, peer-tested elsewhere, is the reference. Mask metrics
are checked against hand-computed geometry and the calibration facts: a uniformly random
map hits with the mask's volume fraction (tolerance 0), the mask itself scores 1.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage
from test_metrics import Linear2
from torch import nn
from xaibench_metrics.completeness import patch_sets
from xaibench_metrics.randomization import similarity

from xaibench.scoring import kernels
from xaibench.scoring.curves import perturbation_curve
from xaibench.scoring.engine import Engine
from xaibench.contract.plugins import load_harness
from xaibench.contract.specs import DataBundle, MethodContext, Samples
from xaibench.contract.metric_inputs import MetricContext
from xaibench.authoring.testing import score_metric

HARNESS = load_harness()
D, H, W = 4, 6, 5


def _ctx(model: nn.Module, x: torch.Tensor) -> MetricContext:
    engine = Engine(model.eval(), "cpu", batch_size=5)
    return MetricContext(engine=engine, base_logits=engine.logits(x), sample_seeds=tuple(range(x.shape[0])),
                         data_mean=x.mean(dim=[0] + list(range(2, x.dim()))))


def _score(name: str, model: nn.Module, x: torch.Tensor, maps: torch.Tensor, **params: object) -> np.ndarray:
    spec = HARNESS.metrics.get(name)
    assert "volume" in spec.modalities
    target = torch.ones(x.shape[0], dtype=torch.long)
    return score_metric(spec, _ctx(model, x), inputs=x, targets=target, maps=maps, **{**spec.defaults, **params})


@pytest.mark.parametrize(("name", "params"), [
    ("dic", {}), ("iic", {}), ("dic-mask", {}), ("dic-important", {}), ("iic-mask-important", {}),
    ("deletion-auc", {"steps": 10}), ("completeness-error", {}), ("faithfulness-correlation", {"runs": 16}),
])
def test_perturbation_metrics_on_a_volume_equal_the_stacked_image(name: str, params: dict) -> None:
    g = torch.Generator().manual_seed(1)
    w = torch.randn(1, D, H, W, generator=g)
    x = torch.rand(3, 1, D, H, W, generator=g)
    maps = torch.randn(3, D, H, W, generator=g)
    volume = _score(name, Linear2(w), x, maps, **params)
    image = _score(name, Linear2(w.reshape(1, D * H, W)), x.reshape(3, 1, D * H, W), maps.reshape(3, D * H, W),
                   **params)
    assert np.isfinite(volume).all()
    np.testing.assert_allclose(volume, image, rtol=1e-6, atol=1e-9)


def test_insertion_on_a_volume_starts_from_the_3d_blur() -> None:
    g = torch.Generator().manual_seed(2)
    w, x, maps = torch.randn(1, 8, 8, 8, generator=g), torch.rand(2, 1, 8, 8, 8, generator=g), torch.rand(2, 8, 8, 8)
    model = Linear2(w)
    canvas = torch.from_numpy(ndimage.gaussian_filter(x.double().numpy(), (0, 0, 5.0, 5.0, 5.0), mode="nearest",
                                                      truncate=1.0)).float()
    expected = kernels.auc(perturbation_curve(Engine(model.eval(), "cpu", 5), x, torch.ones(2, dtype=torch.long),
                                              maps, "insertion", canvas, 8))
    np.testing.assert_allclose(_score("insertion-auc", model, x, maps, steps=8), expected, rtol=1e-5)


def test_sensitivity_n_occludes_cubes_on_volumes() -> None:
    sets = patch_sets((0, 1), (8, 8, 8), patch=4, n=3, sets=5)
    assert sets.shape == (2, 5, 8, 8, 8)
    assert (sets.flatten(2).sum(2) == 3 * 4**3).all()
    cubes = sets.reshape(2, 5, 2, 4, 2, 4, 2, 4).float().mean(dim=(3, 5, 7))
    assert ((cubes == 0) | (cubes == 1)).all()  # each 4^3 cube is occluded whole or not at all
    g = torch.Generator().manual_seed(4)
    score = _score("sensitivity-n", Linear2(torch.randn(1, 8, 8, 8, generator=g)), torch.rand(2, 1, 8, 8, 8, generator=g),
                   torch.rand(2, 8, 8, 8, generator=g), n=3, patch=4, sets=8)
    assert np.isfinite(score).all()


def _mask_metric(name: str, maps: torch.Tensor, masks: torch.Tensor, **params: object) -> np.ndarray:
    spec = HARNESS.metrics.get(name)
    assert "volume" in spec.modalities
    return score_metric(spec, MetricContext(engine=None, base_logits=None), maps=maps, masks=masks,
                        **{**spec.defaults, **params})


def test_pointing_tolerance_is_in_voxels_scaled_like_2d() -> None:
    """15 px at 224 scales to 15 * 32 / 224 = 2.14 voxels at 32^3; the distance is 3D Euclidean."""
    masks = torch.zeros(3, 32, 32, 32, dtype=torch.bool)
    masks[:, 16, 16, 16] = True
    maps = torch.zeros(3, 32, 32, 32)
    maps[0, 16, 16, 18] = 1  # 2 voxels away: within 2.14
    maps[1, 16, 18, 18] = 1  # 2.83 voxels away: outside
    maps[2, 18, 16, 16] = 1  # 2 voxels away along depth
    assert _mask_metric("hit-rate", maps, masks).tolist() == [1.0, 0.0, 1.0]
    assert _mask_metric("hit-rate", maps, masks, tolerance=0).tolist() == [0.0, 0.0, 0.0]
    assert np.isnan(_mask_metric("hit-rate", maps[:1], torch.zeros_like(masks[:1]))).all()


def _cube_masks(n: int) -> torch.Tensor:
    masks = torch.zeros(n, 8, 8, 8, dtype=torch.bool)
    masks[:, 2:6, 2:6, 4:6] = True  # 32 of 512 voxels: fraction 1/16
    return masks


def test_random_map_hits_with_the_mask_volume_fraction() -> None:
    n = 3000
    masks = _cube_masks(n)
    ctx = MethodContext(layer=None, batch_size=64, sample_seeds=tuple(range(n)))
    maps = HARNESS.methods.get("random").explain(None, torch.zeros(n, 1, 8, 8, 8), None, ctx)
    hits = _mask_metric("hit-rate", maps, masks, tolerance=0)
    fraction, sd = 1 / 16, (1 / 16 * 15 / 16 / n) ** 0.5
    assert abs(hits.mean() - fraction) < 4 * sd
    assert abs(_mask_metric("relevance-mass", maps, masks).mean() - fraction) < 0.005


@pytest.mark.parametrize("name", ["hit-rate", "relevance-mass", "relevance-rank", "energy-pointing-game",
                                  "attribution-localisation", "iou-threshold", "dice-threshold"])
def test_ground_truth_scores_one_on_volumes(name: str) -> None:
    masks = _cube_masks(2)
    ctx = MethodContext(layer=None, batch_size=2, sample_seeds=(0, 1), masks=masks)
    maps = HARNESS.methods.get("ground-truth").explain(None, torch.zeros(2, 1, 8, 8, 8), None, ctx)
    assert _mask_metric(name, maps, masks).tolist() == [1.0, 1.0]


def test_overlap_of_a_shifted_cube_by_hand() -> None:
    masks = _cube_masks(1)
    maps = torch.zeros(1, 8, 8, 8)
    maps[0, 2:6, 2:6, 5:7] = 1  # half of the 32-voxel box overlaps: |A & B| = 16, |A | B| = 48
    assert _mask_metric("iou-threshold", maps, masks).tolist() == pytest.approx([16 / 48])
    assert _mask_metric("dice-threshold", maps, masks).tolist() == pytest.approx([2 * 16 / 64])
    assert _mask_metric("relevance-mass", maps, masks).tolist() == pytest.approx([0.5])


def test_graded_hit_rate_reads_the_3d_region_level() -> None:
    regions = torch.zeros(1, 8, 8, 8, dtype=torch.int8)
    regions[0, 3, 3, 3], regions[0, 5, 5, 5] = 3, 2
    maps = torch.zeros(1, 8, 8, 8)
    maps[0, 5, 5, 5] = 1
    spec = HARNESS.metrics.get("graded-hit-rate")
    split = Samples(x=torch.zeros(1, 1, 8, 8, 8), y=torch.zeros(1, dtype=torch.long), ids=("a",))
    bundle = DataBundle(split, split, split, class_names=("a",), modality="volume", region_top_level=3)
    assert "volume" in spec.modalities
    assert spec.score(maps=maps, regions=regions, dataset=bundle).tolist() == pytest.approx([2 / 3])


def test_complexity_and_randomization_similarities_on_volumes() -> None:
    one = torch.zeros(1, 4, 4, 4)
    one[0, 1, 2, 3] = 1
    assert HARNESS.metrics.get("sparseness").score(maps=one).tolist() == pytest.approx([1 - 1 / 64])
    assert HARNESS.metrics.get("entropy").score(maps=torch.ones(1, 4, 4, 4)).tolist() == pytest.approx([np.log(64)])
    a = np.random.default_rng(0).random((2, 8, 8, 8))
    assert similarity(a, a, "ssim") == pytest.approx([1.0, 1.0])
    assert similarity(a, a, "spearman") == pytest.approx([1.0, 1.0])
    assert (similarity(a, 1 - a, "spearman") == pytest.approx([1.0, 1.0]))  # absolute: inversion is no escape


def test_a_planar_metric_is_refused_on_volumes() -> None:
    assert "volume" not in HARNESS.metrics.get("irof").modalities
