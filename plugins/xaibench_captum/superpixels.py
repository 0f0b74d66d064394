"""LIME and KernelSHAP on SLIC superpixels (captum ``Lime`` / ``KernelShap``, scikit-image ``slic``).

Both explain an image through interpretable features: its superpixels, switched on (the
input's pixels) or off (the baseline's pixels). SLIC (Achanta et al., SLIC Superpixels Compared
to State-of-the-Art Superpixel Methods, IEEE TPAMI 2012) runs on each image min-max scaled to
[0, 1], so ``compactness`` means the same whatever the dataset's normalisation; channels are
SLIC's colour channels. Random coalitions come from each sample's seed (``ctx.sample_seeds``,
through :func:`xaibench_captum.stochastic.attribute`), so a sample's map is the same alone or in a batch.

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

from xaibench.errors import XaibenchError
from xaibench.fills import fill_like
from xaibench.specs import MethodContext
from xaibench_captum.stochastic import attribute


def slic_segments(x: torch.Tensor, n_segments: int, compactness: float) -> torch.Tensor:
    """SLIC superpixel ids ``(N, H, W)`` (long, 0..M_i - 1 per image) of images ``x`` ``(N, C, H, W)``.

    Each image is min-max scaled to [0, 1] first (a constant image is one superpixel).
    Raises :class:`XaibenchError` for inputs that are not images.
    """
    from skimage.segmentation import slic

    if x.dim() != 4:
        raise XaibenchError(f"SLIC superpixels need images (N, C, H, W), got shape {tuple(x.shape)}")
    out = []
    for image in x.detach().cpu().double().numpy():
        low, high = image.min(), image.max()
        scaled = (image - low) / (high - low) if high > low else np.zeros_like(image)
        if image.shape[0] == 1:
            labels = slic(scaled[0], n_segments=n_segments, compactness=compactness, channel_axis=None, start_label=0)
        else:
            labels = slic(scaled, n_segments=n_segments, compactness=compactness, channel_axis=0, start_label=0)
        out.append(np.unique(labels, return_inverse=True)[1].reshape(labels.shape))
    return torch.from_numpy(np.stack(out)).long().to(x.device)


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


def _checked(name: str, n_samples: int, n_segments: int, least: int) -> None:
    if int(n_segments) < 1 or int(n_samples) < least:
        raise XaibenchError(f"{name}: needs n_segments >= 1 and n_samples >= {least}, got {n_segments} and {n_samples}")


def lime(model: nn.Module, x: torch.Tensor, target: torch.Tensor, ctx: MethodContext, n_samples: int = 1000,
         n_segments: int = 50, compactness: float = 10.0, kernel_width: float = 0.25, baseline: str = "zero",
         per_pixel: bool = False) -> torch.Tensor:
    """LIME weights of SLIC superpixels: ``(N, H, W)`` float, each pixel its superpixel's weight (logit units),
    divided by the superpixel's size with ``per_pixel``. Raises :class:`XaibenchError` for bad counts."""
    from captum._utils.models.linear_model import SkLearnRidge
    from captum.attr import Lime

    _checked("lime", n_samples, n_segments, 1)
    if not kernel_width > 0:
        raise XaibenchError(f"lime: needs kernel_width > 0, got {kernel_width}")
    segments = slic_segments(x, n_segments, compactness)
    method = Lime(model, interpretable_model=SkLearnRidge(alpha=1.0), similarity_func=lime_kernel(kernel_width))
    attr = attribute(method, x, target, ctx, None, stochastic=True,
                     baselines=fill_like(x, baseline, ctx.data_mean, ctx.sample_seeds), feature_mask=segments[:, None],
                     n_samples=int(n_samples), perturbations_per_eval=max(1, ctx.pass_batch))
    return _spread(attr, segments, per_pixel)


def kernel_shap(model: nn.Module, x: torch.Tensor, target: torch.Tensor, ctx: MethodContext, n_samples: int = 0,
                n_segments: int = 50, compactness: float = 10.0, baseline: str = "zero",
                per_pixel: bool = True) -> torch.Tensor:
    """KernelSHAP values of SLIC superpixels: ``(N, H, W)`` float in logit units; with ``per_pixel`` a
    superpixel's pixels sum to its Shapley value. ``n_samples: 0``: ``2 M + 2048`` (``M`` the sample's
    superpixel count). Raises :class:`XaibenchError` for bad counts."""
    from captum.attr import KernelShap

    _checked("kernel-shap", n_samples, n_segments, 0)
    segments = slic_segments(x, n_segments, compactness)
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
