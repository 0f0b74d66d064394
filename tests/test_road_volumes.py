"""ROAD's noisy linear imputation on volumes: the 26-neighbour stencil, checked exactly.

1. On a one-slice volume ``(C, 1, H, W)`` the 3D imputation is the 2D one of Rong et al. (2022).
2. On a smooth test volume (a linear plus a harmonic quadratic function, both satisfying the
   discrete Laplace equation of any symmetric stencil) the imputed voxels reproduce the
   function exactly, and the result satisfies the discrete equation at every removed voxel.
"""
from __future__ import annotations

from fractions import Fraction

import numpy as np

from xaibench_metrics.road import NEIGHBOURS, linear_impute


def test_3d_stencil_weights_follow_rong_et_al_construction() -> None:
    """Inverse squared distance, normalised: 2D gives Rong et al.'s 1/6 and 1/12; 3D 3/44, 3/88, 1/44."""
    def by_distance(d: int) -> dict[int, set[Fraction]]:
        out: dict[int, set[Fraction]] = {}
        for offset, w in NEIGHBOURS[d]:
            out.setdefault(sum(c * c for c in offset), set()).add(Fraction(w).limit_denominator(1000))
        return out

    assert by_distance(2) == {1: {Fraction(1, 6)}, 2: {Fraction(1, 12)}}
    assert by_distance(3) == {1: {Fraction(3, 44)}, 2: {Fraction(3, 88)}, 3: {Fraction(1, 44)}}
    assert len(NEIGHBOURS[3]) == 26 and abs(sum(w for _, w in NEIGHBOURS[3]) - 1) < 1e-12


def test_one_slice_volume_reduces_to_the_2d_imputation() -> None:
    rng = np.random.default_rng(0)
    image = rng.random((2, 12, 14))
    removed = rng.random((12, 14)) < 0.4
    flat = linear_impute(image, removed)
    volume = linear_impute(image[:, None], removed[None])
    np.testing.assert_allclose(volume[:, 0], flat, rtol=0, atol=1e-12)
    assert not np.allclose(flat[:, removed], image[:, removed])  # something was imputed


def test_smooth_volume_solves_the_discrete_laplace_equation_exactly() -> None:
    d, h, w = np.meshgrid(np.arange(9.0), np.arange(10.0), np.arange(11.0), indexing="ij")
    smooth = 0.5 + 0.03 * d - 0.02 * h + 0.01 * w + 0.004 * (d * d + h * h - 2 * w * w) + 0.003 * d * h - 0.002 * h * w
    removed = np.zeros(smooth.shape, dtype=bool)
    removed[2:7, 3:8, 1:9] = True  # an interior block: every removed voxel's 26 neighbours exist
    removed[4, 1, 5] = True
    corrupted = np.where(removed, 0.0, smooth)[None]
    out = linear_impute(corrupted, removed)[0]
    np.testing.assert_allclose(out, smooth, rtol=0, atol=1e-10)
    # the discrete Laplace equation u(x) = sum_k w_k u(x + o_k) at every removed voxel
    for z, y, x in zip(*np.nonzero(removed)):
        mean = sum(wk * out[z + o[0], y + o[1], x + o[2]] for o, wk in NEIGHBOURS[3])
        assert abs(mean - out[z, y, x]) < 1e-10
    # a non-harmonic function is not reproduced: the test can fail
    bumpy = smooth + 0.05 * d * d
    assert np.abs(linear_impute(np.where(removed, 0.0, bumpy)[None], removed)[0] - bumpy).max() > 1e-3


def test_road_scores_volumes_through_the_registered_metric() -> None:
    """MoRF on a volume: mean p_c over the fractions of the imputed volumes, one score per sample."""
    import torch
    from test_metrics import Linear2
    from xaibench_metrics.road import road

    from xaibench.scoring.engine import Engine

    g = torch.Generator().manual_seed(0)
    model = Linear2(torch.randn(1, 3, 4, 5, generator=g)).eval()
    x, maps = torch.rand(2, 1, 3, 4, 5, generator=g), torch.rand(2, 3, 4, 5, generator=g)
    target = torch.ones(2, dtype=torch.long)
    got = road(x, target, maps, Engine(model, "cpu", 8), sample_seeds=(0, 1), fractions=(0.5,), noise=0.0)
    removed = torch.zeros(2, 3 * 4 * 5, dtype=torch.bool)
    removed.scatter_(1, maps.flatten(1).argsort(1, descending=True)[:, :30], True)
    expected = []
    for i in range(2):
        filled = linear_impute(x[i].double().numpy(), removed[i].reshape(3, 4, 5).numpy())
        expected.append(torch.softmax(model(torch.from_numpy(filled).float()[None]), 1)[0, 1].item())
    np.testing.assert_allclose(got, expected, rtol=1e-5)
