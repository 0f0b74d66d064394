"""captum's attribution methods behind the xaibench method contract (registered in :mod:`xaibench_captum.plugin`).

captum is imported inside the functions: it pulls in a large import graph that
``xaibench`` commands not explaining anything should not pay for.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from xaibench.base.errors import XaibenchError
from xaibench.scoring.fills import fill_like
from xaibench.scoring.maps import reduce_channels
from xaibench.contract.specs import MethodContext
from xaibench_captum.modelcopy import hookable_copy
from xaibench_captum.stochastic import attribute


def saliency(model: nn.Module, x: torch.Tensor, target: torch.Tensor, ctx: MethodContext,
             reduce: str = "max_abs", noise_tunnel: Mapping[str, Any] | None = None) -> torch.Tensor:
    """Vanilla gradients of the target logit (Simonyan et al.); the largest |gradient| over channels."""
    from captum.attr import Saliency

    attr = attribute(Saliency(model), x, target, ctx, noise_tunnel, abs=False)
    return reduce_channels(attr, reduce)


def integrated_gradients(model: nn.Module, x: torch.Tensor, target: torch.Tensor, ctx: MethodContext,
                         n_steps: int = 32, baseline: str = "zero", reduce: str = "sum",
                         noise_tunnel: Mapping[str, Any] | None = None) -> torch.Tensor:
    """IG with a Gauss-Legendre path of ``n_steps``, in passes of ``ctx.pass_batch`` inputs: groups of at most that
    many samples, each pass one or more steps of every sample of a group."""
    from captum.attr import IntegratedGradients

    attr = attribute(IntegratedGradients(model), x, target, ctx, noise_tunnel, group=ctx.pass_batch,
                     baselines=fill_like(x, baseline, ctx.data_mean, ctx.sample_seeds), n_steps=n_steps,
                     internal_batch_size=ctx.pass_batch)
    return reduce_channels(attr, reduce)


def gradient_shap(model: nn.Module, x: torch.Tensor, target: torch.Tensor, ctx: MethodContext,
                  n_samples: int = 16, stdev: float = 0.1, baseline: str = "zero", reduce: str = "sum") -> torch.Tensor:
    """GradientShap: expected gradients x (input - baseline) over noisy points on the baseline path.

    Stochastic: each sample's noise and path points come from its own seed (``ctx.sample_seeds``).
    """
    from captum.attr import GradientShap

    attr = attribute(GradientShap(model), x, target, ctx, None, stochastic=True,
                     baselines=fill_like(x, baseline, ctx.data_mean, ctx.sample_seeds), n_samples=n_samples, stdevs=stdev)
    return reduce_channels(attr, reduce)


def deeplift(model: nn.Module, x: torch.Tensor, target: torch.Tensor, ctx: MethodContext,
             baseline: str = "zero", reduce: str = "sum",
             noise_tunnel: Mapping[str, Any] | None = None) -> torch.Tensor:
    """DeepLIFT (Rescale rule) on a copy of the model whose hooked nonlinearities are fresh, one per call site.

    captum's DeepLift hooks nonlinearity modules; a module used twice in ``forward`` (torchvision's
    ResNet blocks call ``self.relu`` twice) or an in-place one gives wrong multipliers, so the
    copy gets one non-inplace module per call site (see :mod:`xaibench_captum.modelcopy`). Models
    with nonlinearities captum has no rule for are refused by the spec's ``covers``
    (:func:`xaibench_captum.rules.deeplift_covers`).
    """
    from captum.attr import DeepLift

    attr = attribute(DeepLift(hookable_copy(model)), x, target, ctx, noise_tunnel,
                     baselines=fill_like(x, baseline, ctx.data_mean, ctx.sample_seeds))
    return reduce_channels(attr, reduce)


def guided_backprop(model: nn.Module, x: torch.Tensor, target: torch.Tensor, ctx: MethodContext,
                    reduce: str = "max_abs", noise_tunnel: Mapping[str, Any] | None = None) -> torch.Tensor:
    """Guided Backpropagation (Springenberg et al. 2015, Sec. 3.4): gradients with negative values zeroed at
    every ReLU, on a copy with one ``nn.ReLU`` module per ReLU call site (:mod:`xaibench_captum.modelcopy`).

    ``(N, *spatial)`` float maps, >= 0 with ``max_abs``; models with other nonlinearities are refused
    by the spec's ``covers`` (:func:`xaibench_captum.rules.guided_backprop_covers`).
    """
    from captum.attr import GuidedBackprop

    attr = attribute(GuidedBackprop(hookable_copy(model)), x, target, ctx, noise_tunnel)
    return reduce_channels(attr, reduce)


def deconvolution(model: nn.Module, x: torch.Tensor, target: torch.Tensor, ctx: MethodContext,
                  reduce: str = "max_abs") -> torch.Tensor:
    """Deconvolution (Zeiler & Fergus, ECCV 2014, Sec. 2.1): the backward signal is rectified at every ReLU
    instead of gated by the forward activation (captum ``Deconvolution``), on the same per-call-site copy as
    guided backpropagation. ``(N, *spatial)`` float maps, >= 0 with ``max_abs``; models with other
    nonlinearities are refused by the spec's ``covers`` (:func:`xaibench_captum.rules.deconvolution_covers`).
    """
    from captum.attr import Deconvolution

    attr = attribute(Deconvolution(hookable_copy(model)), x, target, ctx, None)
    return reduce_channels(attr, reduce)


def input_x_gradient(model: nn.Module, x: torch.Tensor, target: torch.Tensor, ctx: MethodContext,
                     reduce: str = "sum") -> torch.Tensor:
    """Input x Gradient (Shrikumar et al. 2016, arXiv 1605.01713, Sec. 2; Ancona et al., ICLR 2018, Sec. 2.1):
    ``x * d logit_t / dx`` (captum ``InputXGradient``), summed over channels: ``(N, *spatial)``, in logit units.

    Additive: it is the first-order Taylor term of the logit at the zero input, exactly the logit on a
    bias-free ReLU network (which is positively homogeneous: ``f(x) = x . grad f(x)``).
    """
    from captum.attr import InputXGradient

    return reduce_channels(attribute(InputXGradient(model), x, target, ctx, None), reduce)


def _per_eval(x: torch.Tensor, ctx: MethodContext) -> int:
    """Perturbations per pass of a captum perturbation method called on groups of at most ``ctx.pass_batch`` samples
    (:func:`attribute`'s ``group``): passes of at most ``ctx.pass_batch`` inputs (a last, smaller group passes fewer)."""
    return max(1, ctx.pass_batch // min(x.shape[0], ctx.pass_batch))


def occlusion(model: nn.Module, x: torch.Tensor, target: torch.Tensor, ctx: MethodContext,
              window: int = 8, stride: int | None = None, fill: str = "zero", per_pixel: bool = True) -> torch.Tensor:
    """Sliding-window occlusion (Zeiler & Fergus 2014) with seed 003's window, stride and fill.

    With ``per_pixel`` the window's output change is spread over its pixels (divided
    by the window's area), so a map's sum over one window equals that window's effect:
    the quantity occlusion completeness compares with the model's output change.
    Windows span all channels, so every channel carries the same value: the map is
    one channel of the attribution.
    """
    from captum.attr import Occlusion

    stride = stride or window
    spatial = x.dim() - 2
    c = x.shape[1]
    attr = attribute(Occlusion(model), x, target, ctx, None, group=ctx.pass_batch,
                     sliding_window_shapes=(c,) + (window,) * spatial, strides=(c,) + (stride,) * spatial,
                     baselines=fill_like(x, fill, ctx.data_mean, ctx.sample_seeds),
                     perturbations_per_eval=_per_eval(x, ctx))
    if per_pixel:
        attr = attr / math.prod((window,) * spatial)
    return attr[:, 0]


def occlusion_incremental(model: nn.Module, x: torch.Tensor, target: torch.Tensor, ctx: MethodContext,
                          window: int = 8, stride: int | None = None, fill: str = "zero",
                          per_pixel: bool = True) -> torch.Tensor:
    """The ``occlusion`` method's maps ``(N, *spatial)``, computed by exact incremental inference (Krypton).

    Nakandala, Kumar & Papakonstantinou, Incremental and Approximate Inference for Faster
    Occlusion-based Deep CNN Explanations, SIGMOD 2019, Sec. 3 (see :mod:`xaibench_captum.incremental`):
    the unoccluded pass is cached and, for ``ctx.pass_batch`` patch positions at a time, only the
    activations a patch changes are recomputed. Parameters and values are ``occlusion``'s (equal to
    captum's ``Occlusion`` up to float rounding). A model that ``torch.fx`` cannot trace gets
    captum's ``Occlusion`` itself. Raises :class:`XaibenchError` for a model in training mode
    (BatchNorm batch statistics and dropout make an occluded pass depend on the batch) and for a
    window larger than the input or a stride larger than the window.
    """
    from xaibench_captum.incremental import occlusion_attribution

    if any(m.training for m in model.modules()):
        raise XaibenchError("occlusion-incremental explains a model in eval mode; call model.eval() first "
                            "(training mode's BatchNorm batch statistics and dropout change every pass)")
    stride = stride or window
    spatial = tuple(x.shape[2:])
    if window > min(spatial) or (stride > window and window < max(spatial)):
        raise XaibenchError(f"occlusion-incremental: window {window} and stride {stride} must satisfy "
                            f"stride <= window <= the input's smallest side ({min(spatial)})")
    attr = occlusion_attribution(model, x, fill_like(x, fill, ctx.data_mean, ctx.sample_seeds), target,
                                 (window,) * len(spatial), (stride,) * len(spatial), max(1, ctx.pass_batch))
    if attr is None:
        return occlusion(model, x, target, ctx, window, stride, fill, per_pixel)
    return attr / math.prod((window,) * len(spatial)) if per_pixel else attr


def patch_mask(spatial: tuple[int, ...], patch: int, device: torch.device) -> torch.Tensor:
    """Row-major group ids of a grid of ``patch``-sized cells over ``spatial`` (1D or 2D)."""
    if patch < 1:
        raise ValueError(f"patch must be >= 1, got {patch}")
    ids = torch.zeros((), dtype=torch.long, device=device)
    for size in spatial:
        ids = ids.unsqueeze(-1) * -(-size // patch) + torch.arange(size, device=device) // patch
    return ids


def feature_ablation(model: nn.Module, x: torch.Tensor, target: torch.Tensor, ctx: MethodContext,
                     patch: int = 8, fill: str = "zero", per_pixel: bool = True) -> torch.Tensor:
    """Feature ablation over a grid of non-overlapping ``patch``-sized groups (all channels at once).

    captum gives every element of a group the group's whole output change; with
    ``per_pixel`` it is divided by the group's size, so a group's map sums to its effect.
    """
    from captum.attr import FeatureAblation

    groups = patch_mask(tuple(x.shape[2:]), patch, x.device)
    attr = attribute(FeatureAblation(model), x, target, ctx, None, group=ctx.pass_batch,
                     baselines=fill_like(x, fill, ctx.data_mean, ctx.sample_seeds), feature_mask=groups[None, None],
                     perturbations_per_eval=_per_eval(x, ctx))[:, 0]
    if per_pixel:
        attr = attr / torch.bincount(groups.flatten())[groups].to(attr)
    return attr
