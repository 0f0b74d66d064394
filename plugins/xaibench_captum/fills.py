"""Fill values for occluded regions and baselines (seed 003: zero, dataset mean, blur, noise).

What replaces an occluded patch changes what occlusion measures: zeros create
out-of-distribution edges, the mean is neutral on average, a blurred copy keeps
low frequencies, and noise tests robustness. The study suites vary it.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from xaibench.specs import MethodContext

FILLS = ("zero", "mean", "blur", "noise")


def _gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    radius = max(1, int(round(3 * sigma)))
    t = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    k = torch.exp(-(t**2) / (2 * sigma**2))
    k = k / k.sum()
    c = x.shape[1]
    out = x
    for dim in range(2, x.dim()):
        shape = [1] * x.dim()
        shape[0], shape[dim] = c, k.numel()
        weight = k.reshape(shape[0], 1, *shape[2:])
        pad = [0] * (2 * (x.dim() - 2))
        pad[2 * (x.dim() - 1 - dim)] = pad[2 * (x.dim() - 1 - dim) + 1] = radius
        conv = F.conv2d if x.dim() == 4 else F.conv1d
        out = conv(F.pad(out, pad, mode="replicate"), weight, groups=c)
    return out


def fill_like(x: torch.Tensor, fill: str, ctx: MethodContext, sigma: float = 2.0, noise_std: float = 0.2) -> torch.Tensor:
    """A tensor shaped like ``x`` holding what occluded values are replaced with."""
    if fill == "zero":
        return torch.zeros_like(x)
    if fill == "mean":
        if ctx.data_mean is None:
            raise ValueError("fill 'mean' needs the dataset mean")
        return ctx.data_mean.to(x).reshape(1, -1, *[1] * (x.dim() - 2)).expand_as(x).clone()
    if fill == "blur":
        return _gaussian_blur(x, sigma)
    if fill == "noise":
        noise = torch.stack([
            torch.randn(x.shape[1:], generator=torch.Generator().manual_seed(s)) for s in ctx.sample_seeds
        ]).to(x)
        return x + noise_std * noise
    raise ValueError(f"fill must be one of {', '.join(FILLS)}, got {fill!r}")
