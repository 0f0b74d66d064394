"""What removed, occluded or baseline values are replaced with: the one vocabulary of fills.

``zero`` (zeros), ``mean`` (the training inputs' per-channel mean), ``blur`` (a
Gaussian blur of the input itself) and ``noise`` (the input plus per-sample seeded
Gaussian noise). What replaces an occluded patch changes what occlusion measures:
zeros create out-of-distribution edges, the mean is neutral on average, a blurred
copy keeps low frequencies, and noise tests robustness (seed 003's study varies it).
Methods (baselines of Integrated Gradients, Occlusion) and metrics (completeness,
deletion canvases) draw their fills from here.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

from xaibench.base.errors import XaibenchError

FILLS = ("zero", "mean", "blur", "noise")


def mean_fill(x: torch.Tensor, data_mean: torch.Tensor | None) -> torch.Tensor:
    """``data_mean`` ``(C,)`` broadcast to ``x``'s shape ``(N, C, *spatial)`` (a view: do not write into it).

    Raises :class:`~xaibench.base.errors.XaibenchError` when the call provides no training mean (a suite always does;
    from Python it is ``data_mean=``): one line that says what to pass.
    """
    if data_mean is None:
        raise XaibenchError("fill 'mean' needs the training data's per-channel mean: pass data_mean= (one value per "
                            "input channel), or choose another fill (zero, blur, noise)")
    return data_mean.to(x).reshape(1, -1, *[1] * (x.dim() - 2)).expand_as(x)


def blur(x: torch.Tensor, sigma: float, radius: int | None = None) -> torch.Tensor:
    """Separable Gaussian blur of ``(N, C, L)``, ``(N, C, H, W)`` or ``(N, C, D, H, W)`` inputs, per channel.

    ``sigma`` is the standard deviation in positions (pixels); ``radius`` the kernel's
    half-width (default ``round(3 sigma)``, at least 1; RISE's 11-tap kernel is radius 5);
    borders are replicated, so any input size works (torchvision's ``gaussian_blur``
    reflect-pads, which fails once the radius reaches the image size, and is 2D only).
    Equals ``scipy.ndimage.gaussian_filter(x, (0, 0, sigma, ...), mode="nearest",
    truncate=radius / sigma)``: the one blur of xaibench. Raises ValueError for ``sigma <= 0``,
    ``radius < 1`` or inputs of another rank.
    """
    if x.dim() not in (3, 4, 5):
        raise ValueError(f"blur takes (N, C, *spatial) inputs with 1 to 3 spatial axes, got shape {tuple(x.shape)}")
    if sigma <= 0:
        raise ValueError(f"blur sigma must be positive, got {sigma}")
    radius = max(1, int(round(3 * sigma))) if radius is None else int(radius)
    if radius < 1:
        raise ValueError(f"blur radius must be at least 1, got {radius}")
    t = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    k = torch.exp(-(t**2) / (2 * sigma**2))
    k = k / k.sum()
    c = x.shape[1]
    out = x
    for dim in range(2, x.dim()):
        shape = [1] * x.dim()
        shape[0], shape[dim] = c, k.numel()
        weight = k.reshape(1, 1, *shape[2:]).repeat(c, 1, *[1] * (x.dim() - 2))
        pad = [0] * (2 * (x.dim() - 2))
        pad[2 * (x.dim() - 1 - dim)] = pad[2 * (x.dim() - 1 - dim) + 1] = radius
        conv = {3: F.conv1d, 4: F.conv2d, 5: F.conv3d}[x.dim()]
        out = conv(F.pad(out, pad, mode="replicate"), weight, groups=c)
    return out


def fill_like(x: torch.Tensor, fill: str, data_mean: torch.Tensor | None = None,
              sample_seeds: Sequence[int] = (), sigma: float = 2.0, noise_std: float = 0.2,
              allowed: Sequence[str] = FILLS) -> torch.Tensor:
    """A new tensor shaped like ``x`` ``(N, C, *spatial)`` holding what occluded values are replaced with.

    ``noise`` draws each sample's noise from its seed in ``sample_seeds`` (one per
    sample), so a sample gets the same fill alone or in a batch. Raises
    :class:`ValueError` for a fill outside ``allowed`` and for ``mean`` without ``data_mean``.
    """
    if fill not in allowed:
        raise ValueError(f"fill must be one of {', '.join(allowed)}, got {fill!r}")
    if fill == "zero":
        return torch.zeros_like(x)
    if fill == "mean":
        return mean_fill(x, data_mean).clone()
    if fill == "blur":
        return blur(x, sigma)
    if len(sample_seeds) != x.shape[0]:
        raise ValueError(f"fill 'noise' needs one seed per sample, got {len(sample_seeds)} for {x.shape[0]} samples")
    noise = torch.stack([torch.randn(x.shape[1:], generator=torch.Generator().manual_seed(s)) for s in sample_seeds])
    return x + noise_std * noise.to(x)
