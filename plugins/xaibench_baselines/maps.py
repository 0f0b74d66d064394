"""The calibration baselines' maps: chance (uniform noise), a centre bias and the annotated mask."""
from __future__ import annotations

import torch
from torch import nn

from xaibench.contract.specs import MethodContext


def random_map(model: nn.Module, x: torch.Tensor, target: torch.Tensor, ctx: MethodContext) -> torch.Tensor:
    """Uniform noise, seeded per sample (the same map alone or inside a batch)."""
    maps = [torch.rand(x.shape[2:], generator=torch.Generator().manual_seed(s)) for s in ctx.sample_seeds]
    return torch.stack(maps).to(x.device)


def centre_map(model: nn.Module, x: torch.Tensor, target: torch.Tensor, ctx: MethodContext,
               sigma: float = 0.25) -> torch.Tensor:
    """An isotropic Gaussian at the centre; ``sigma`` is a fraction of each side."""
    axes = [torch.linspace(-0.5, 0.5, n, device=x.device) for n in x.shape[2:]]
    grids = torch.meshgrid(*axes, indexing="ij")
    bump = torch.exp(-sum(g**2 for g in grids) / (2 * sigma**2))
    return bump.expand(x.shape[0], *bump.shape).clone()


def ground_truth(model: nn.Module, x: torch.Tensor, target: torch.Tensor, ctx: MethodContext) -> torch.Tensor:
    """The lesion mask itself: the upper bound for localization metrics."""
    if ctx.masks is None:
        raise ValueError("the ground-truth baseline needs masks")
    return ctx.masks.to(x.device, torch.float32)
