"""LIME and KernelSHAP on SLIC superpixels (captum ``Lime`` / ``KernelShap``, scikit-image ``slic``).

Both explain an image through interpretable features: its superpixels, switched on (the
input's pixels) or off (the baseline's pixels). The superpixels are SLICO, the zero-parameter
mode of SLIC (Achanta et al., SLIC Superpixels Compared to State-of-the-Art Superpixel Methods,
IEEE TPAMI 2012; SLICO as its authors publish it, https://www.epfl.ch/labs/ivrl/research/slic-superpixels/;
scikit-image's ``slic(..., slic_zero=True)``), on each image min-max scaled to [0, 1] over all its
channels, its channels as they are (no Lab conversion), the colour distance the root mean square
over the channels. So the segmentation is the same for any value range (8 or 16 bit, [0, 1],
standardized, negative values) and the same for a grey image and its RGB twin (R = G = B).

SLICO measures a pixel's squared colour distance to a superpixel in units of the larger of
``compactness ** 2`` and the largest squared colour distance inside that superpixel at the
previous iteration (its spatial distance in units of the seeds' grid step): the weight of colour
adapts to each superpixel's own contrast, so superpixels follow edges on clean images and stay
compact on speckle. ``compactness`` (default 0.1, a tenth of the image's range) is the floor:
colour differences below it never outweigh one grid step; ``compactness >= 1`` is plain SLIC
with that compactness, close to a grid. A constant image gives the regular grid of the seeds
(49 superpixels, 7 x 7, for ``n_segments: 50`` at 64 x 64). An image cut into fewer than
:data:`xaibench_captum.checks.MIN_SUPERPIXELS` (2) superpixels (``n_segments: 2`` on a square
image: one seed) stops the run with one line naming ``n_segments``: one superpixel makes every
LIME map constant and leaves KernelSHAP no coalition between the empty and the full one.

Random coalitions come from each sample's seed (``ctx.sample_seeds``, through
:func:`xaibench_captum.stochastic.attribute`), so a sample's map is the same alone or in a batch.

- LIME (Ribeiro et al., "Why Should I Trust You?", KDD 2016, Sec. 3.3-3.4), with the ``lime``
  package's image defaults: 1000 samples, a ridge regression (alpha 1) weighted by the kernel
  ``sqrt(exp(-d^2 / 0.25^2))`` of the cosine distance ``d`` between the coalition and the
  all-on vector. captum draws each superpixel on or off with probability 1/2. Every pixel gets
  its superpixel's weight. Not additive: a local surrogate with an intercept, whose weights
  need not sum to any output change.
- KernelSHAP (Lundberg & Lee, A Unified Approach to Interpreting Model Predictions, NeurIPS 2017,
  Sec. 4.1): Shapley values of the superpixels by the Shapley-kernel weighted linear regression;
  captum gives the all-on and all-off coalitions weight 1e6, so the weights sum to
  ``f(x) - f(baseline)`` up to the solver's tolerance: additive. With ``per_pixel`` (default) a
  superpixel's weight is spread over its pixels, so a map's sum over a superpixel is its Shapley
  value. Samples default to the ``shap`` package's ``2 M + 2048`` for ``M`` superpixels.
"""
from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import numpy as np
import torch
from torch import nn

from xaibench.base.errors import XaibenchError
from xaibench.scoring.fills import fill_like
from xaibench.contract.specs import MethodContext
from xaibench_captum.checks import MIN_SUPERPIXELS, params_check
from xaibench_captum.stochastic import attribute


def slic_segments(x: torch.Tensor, n_segments: int, compactness: float) -> torch.Tensor:
    """SLICO superpixel ids ``(N, H, W)`` (long, 0..M_i - 1 per image) of images ``x`` ``(N, C, H, W)`` (module doc).

    scikit-image (0.20 and later) min-max scales each image to [0, 1] over all its channels (a constant image:
    zeros, cut into the seeds' regular grid); its ``C`` channels are SLICO's colour channels as they are, the
    colour distance their root mean square (scikit-image sums the squares, so its compactness is
    ``compactness * sqrt(C)``), so a grey image and its ``C``-channel twin get the same labels. Raises
    :class:`XaibenchError` for inputs that are not images.
    """
    from skimage.segmentation import slic

    if x.dim() != 4:
        raise XaibenchError(f"SLIC superpixels need images (N, C, H, W), got shape {tuple(x.shape)}")
    colour = float(compactness) * math.sqrt(x.shape[1])
    out = []
    for image in x.detach().cpu().double().numpy():
        labels = slic(image, n_segments=int(n_segments), compactness=colour, channel_axis=0, convert2lab=False,
                      slic_zero=True)
        out.append(np.unique(labels, return_inverse=True)[1].reshape(labels.shape))
    return torch.from_numpy(np.stack(out)).long().to(x.device)


def checked_segments(name: str, x: torch.Tensor, n_segments: int, compactness: float) -> torch.Tensor:
    """:func:`slic_segments`, refusing (:class:`XaibenchError`, one line naming ``n_segments``) an image
    cut into fewer than :data:`MIN_SUPERPIXELS` superpixels; ``name`` (the method) starts the line."""
    segments = slic_segments(x, n_segments, compactness)
    counts = segments.flatten(1).amax(1) + 1
    for count in counts.tolist():
        if count < MIN_SUPERPIXELS:
            raise XaibenchError(
                f"{name}: SLIC cut a {x.shape[2]}x{x.shape[3]} image into {count} superpixel at "
                f"n_segments={n_segments}, compactness={compactness}; it needs at least {MIN_SUPERPIXELS}: "
                "raise n_segments")
    return segments


def lime_kernel(kernel_width: float) -> Any:
    """LIME's similarity (the ``lime`` package): ``sqrt(exp(-d^2 / w^2))``, ``d`` the cosine distance between a
    coalition ``z`` (``(1, M)`` of 0/1) and the all-on vector; ``d = 1`` for the empty coalition."""
    def similarity(original: torch.Tensor, perturbed: torch.Tensor, coalition: torch.Tensor, **_: Any) -> float:
        z = coalition.double().flatten()
        norm = float(z.norm())
        distance = 1.0 - (float(z.sum()) / (norm * math.sqrt(z.numel())) if norm > 0 else 0.0)
        return math.sqrt(math.exp(-(distance ** 2) / kernel_width ** 2))

    return similarity


def _spread(attr: torch.Tensor, segments: torch.Tensor, per_pixel: bool) -> torch.Tensor:
    """Channel 0 of captum's input-shaped attribution (every channel of a superpixel carries its weight),
    divided by the superpixel's size with ``per_pixel``."""
    maps = attr[:, 0]
    if not per_pixel:
        return maps
    sizes = torch.stack([torch.bincount(s.flatten())[s] for s in segments]).to(maps)
    return maps / sizes


def _checked(name: str, zero_samples: bool, **params: Any) -> None:
    """The parameter rules of :func:`xaibench_captum.checks.params_check`, as :class:`XaibenchError` (one line)."""
    try:
        params_check(zero_samples)(params)
    except ValueError as exc:
        raise XaibenchError(f"{name}: {exc}") from None


def lime(model: nn.Module, x: torch.Tensor, target: torch.Tensor, ctx: MethodContext, n_samples: int = 1000,
         n_segments: int = 50, compactness: float = 0.1, kernel_width: float = 0.25, baseline: str = "zero",
         per_pixel: bool = False) -> torch.Tensor:
    """LIME weights of SLIC superpixels: ``(N, H, W)`` float, each pixel its superpixel's weight (logit units),
    divided by the superpixel's size with ``per_pixel``. Raises :class:`XaibenchError` for bad counts."""
    from captum._utils.models.linear_model import SkLearnRidge
    from captum.attr import Lime

    _checked("lime", False, n_samples=n_samples, n_segments=n_segments, compactness=compactness,
             kernel_width=kernel_width, baseline=baseline, per_pixel=per_pixel)
    segments = checked_segments("lime", x, n_segments, compactness)
    method = Lime(model, interpretable_model=SkLearnRidge(alpha=1.0), similarity_func=lime_kernel(kernel_width))
    attr = attribute(method, x, target, ctx, None, stochastic=True,
                     baselines=fill_like(x, baseline, ctx.data_mean, ctx.sample_seeds), feature_mask=segments[:, None],
                     n_samples=int(n_samples), perturbations_per_eval=max(1, ctx.pass_batch))
    return _spread(attr, segments, per_pixel)


def kernel_shap(model: nn.Module, x: torch.Tensor, target: torch.Tensor, ctx: MethodContext, n_samples: int = 0,
                n_segments: int = 50, compactness: float = 0.1, baseline: str = "zero",
                per_pixel: bool = True) -> torch.Tensor:
    """KernelSHAP values of SLIC superpixels: ``(N, H, W)`` float in logit units; with ``per_pixel`` a
    superpixel's pixels sum to its Shapley value. ``n_samples: 0``: ``2 M + 2048`` (``M`` the sample's
    superpixel count). Raises :class:`XaibenchError` for bad counts."""
    from captum.attr import KernelShap

    _checked("kernel-shap", True, n_samples=n_samples, n_segments=n_segments, compactness=compactness,
             baseline=baseline, per_pixel=per_pixel)
    segments = checked_segments("kernel-shap", x, n_segments, compactness)
    baselines = fill_like(x, baseline, ctx.data_mean, ctx.sample_seeds)
    out = []
    for i in range(x.shape[0]):  # the sample count depends on the sample's own superpixel count
        one = slice(i, i + 1)
        count = int(n_samples) or 2 * int(segments[i].max() + 1) + 2048
        ctx_one = replace(ctx, sample_seeds=ctx.sample_seeds[one])
        out.append(attribute(KernelShap(model), x[one], target[one], ctx_one, None, stochastic=True,
                             baselines=baselines[one], feature_mask=segments[one, None], n_samples=count,
                             perturbations_per_eval=max(1, ctx.pass_batch)))
    return _spread(torch.cat(out), segments, per_pixel)
