"""RISE (Petsiuk, Das & Saenko, BMVC 2018; arXiv 1806.07421), for images and signals.

Each mask is an ``s x s`` (images) or ``s`` (signals) grid of independent
Bernoulli(p) cells, upsampled (bi)linearly to ``(s + 1) * cell`` with
``cell = ceil(size / s)`` and cropped back to the input size at a random
shift in ``[0, cell)`` per axis, so mask edges fall anywhere. The saliency of a
pixel is the score of the masked inputs weighted by the mask,

    S(x) = 1 / (N * p) * sum_i f_c(x * M_i) * M_i(x),

where ``f_c`` is the softmax probability of the target class (``output: prob``, as
in the paper) or its logit.

Masks come from each sample's own seed (``ctx.sample_seeds``), so a sample gets
the same map alone or inside any batch. Only the low-resolution grids and
shifts are stored; full-size masks are built once per chunk of (sample, mask)
pairs, which :meth:`xaibench.scoring.engine.Engine.masked_score_sum` streams into full
batches of ``ctx.pass_batch`` (the engine's calibrated batch) across samples:
memory stays bounded.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from xaibench.scoring.engine import Engine
from xaibench.scoring.maps import upsample
from xaibench.contract.specs import MethodContext


def mask_grids(seeds: tuple[int, ...], n_masks: int, grid: int, p: float, spatial: tuple[int, ...]
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """Per sample: Bernoulli(p) grids ``(N, M, *[grid] * d)`` and crop shifts ``(N, M, d)``."""
    cells = [math.ceil(s / grid) for s in spatial]
    grids, shifts = [], []
    for seed in seeds:
        g = torch.Generator().manual_seed(seed)
        grids.append(torch.rand((n_masks,) + (grid,) * len(spatial), generator=g) < p)
        shifts.append(torch.stack([torch.randint(c, (n_masks,), generator=g) for c in cells], dim=1))
    return torch.stack(grids), torch.stack(shifts)


def build_masks(grids: torch.Tensor, shifts: torch.Tensor, spatial: tuple[int, ...]) -> torch.Tensor:
    """Upsample ``(B, *[grid] * d)`` grids to ``(grid + 1) * cell`` and crop ``(B, *spatial)`` at ``shifts``."""
    grid = grids.shape[1]
    big = tuple((grid + 1) * math.ceil(s / grid) for s in spatial)
    out = upsample(grids.float(), big)
    b = out.shape[0]
    for axis, size in enumerate(spatial):
        index = shifts[:, axis, None] + torch.arange(size, device=out.device)  # (B, size)
        view = [b] + [1] * len(spatial)
        view[axis + 1] = size
        target_shape = list(out.shape)
        target_shape[axis + 1] = size
        out = out.gather(axis + 1, index.reshape(view).expand(target_shape))
    return out


def rise(model: nn.Module, x: torch.Tensor, target: torch.Tensor, ctx: MethodContext,
         n_masks: int = 1000, grid: int = 8, p: float = 0.5, output: str = "prob") -> torch.Tensor:
    """RISE saliency ``(N, *spatial)``; all (sample, mask) pairs in batches of ``ctx.pass_batch``."""
    if n_masks < 1 or grid < 1 or not 0.0 < p < 1.0:
        raise ValueError(f"RISE needs n_masks >= 1, grid >= 1 and 0 < p < 1; got {n_masks}, {grid}, {p}")
    spatial = tuple(int(s) for s in x.shape[2:])
    if any(grid > s for s in spatial):
        raise ValueError(f"grid {grid} is finer than the input {spatial}")
    grids, shifts = mask_grids(ctx.sample_seeds, n_masks, grid, p, spatial)
    grids, shifts = grids.to(x.device), shifts.to(x.device)

    n = x.shape[0]
    pair_sample = torch.arange(n * n_masks, device=x.device) // n_masks

    def masks(idx: torch.Tensor) -> torch.Tensor:
        return build_masks(grids[idx // n_masks, idx % n_masks], shifts[idx // n_masks, idx % n_masks], spatial)

    saliency = Engine(model, x.device, ctx.pass_batch).masked_score_sum(x, masks, pair_sample, pair_sample, n,
                                                                        target, output)
    return saliency / (n_masks * p)
