"""RISE (Petsiuk et al. 2018): its masks, its estimator, and a model whose answer is known."""
from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
from torch import nn

from xaibench.contract.specs import MethodContext
from xaibench.authoring.testing import one_thread
from xaibench_rise.rise import build_masks, mask_grids, rise


@pytest.fixture(autouse=True)
def _single_thread() -> Iterator[None]:
    with one_thread():
        yield


def test_masks_are_shifted_upsampled_bernoulli_grids() -> None:
    grids, shifts = mask_grids((5, 6), n_masks=200, grid=4, p=0.5, spatial=(16, 16))
    assert grids.shape == (2, 200, 4, 4) and shifts.shape == (2, 200, 2)
    assert 0.4 < grids.float().mean() < 0.6 and shifts.min() >= 0 and shifts.max() < 4
    masks = build_masks(grids[0], shifts[0], (16, 16))
    assert masks.shape == (200, 16, 16) and masks.min() >= 0 and masks.max() <= 1
    # a grid of ones is all ones whatever the shift; seeds reproduce the grids
    assert torch.allclose(build_masks(torch.ones(3, 4, 4, dtype=torch.bool), shifts[0, :3], (16, 16)), torch.ones(3, 16, 16))
    again, _ = mask_grids((5,), 200, 4, 0.5, (16, 16))
    assert torch.equal(again[0], grids[0])
    assert build_masks(grids[0, :, :2, 0], shifts[0, :, :1], (16,)).shape == (200, 16)  # 1D


def test_saliency_is_the_score_weighted_mean_of_masks_over_full_batches() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 3)).eval()
    x, target = torch.rand(3, 1, 8, 8), torch.tensor([0, 2, 1])
    ctx = MethodContext(layer=None, batch_size=7, sample_seeds=(11, 12, 13))  # 7 does not divide 3 * 50
    got = rise(model, x, target, ctx, n_masks=50, grid=4, p=0.3)
    grids, shifts = mask_grids(ctx.sample_seeds, 50, 4, 0.3, (8, 8))
    for i in range(3):
        m = build_masks(grids[i], shifts[i], (8, 8))
        with torch.no_grad():
            p = torch.softmax(model(x[i] * m[:, None]), 1)[:, target[i]]
        assert torch.allclose(got[i], (p[:, None, None] * m).sum(0) / (50 * 0.3), atol=1e-5)


class _RegionLogit(nn.Module):
    """Class 0's logit is the input's mean over one region; class 1's is a constant."""

    def __init__(self, region: tuple[slice, ...]) -> None:
        super().__init__()
        self.region = region

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        inside = x[(slice(None), 0) + self.region].flatten(1).mean(1)
        return torch.stack([inside, torch.zeros_like(inside)], 1)


def test_rise_points_at_the_region_the_model_reads_in_2d_and_1d() -> None:
    for spatial, region in (((24, 24), (slice(16, 20), slice(4, 8))), ((40,), (slice(30, 34),))):
        x = torch.ones((2, 1) + spatial)
        ctx = MethodContext(layer=None, batch_size=64, sample_seeds=(1, 2))
        s = rise(_RegionLogit(region), x, torch.zeros(2, dtype=torch.long), ctx, n_masks=300, grid=4, output="logit")
        inside = torch.zeros(spatial, dtype=torch.bool)
        inside[region] = True
        assert s[:, inside].mean() > 1.2 * s[:, ~inside].mean()  # far from the region: E[f] E[M] / p
        near = torch.zeros(spatial, dtype=torch.bool)  # the region grown by 3 px: masks are smooth at 1/4 scale
        near[tuple(slice(r.start - 3, r.stop + 3) for r in region)] = True
        assert near.flatten()[s.flatten(1).argmax(1)].all()
