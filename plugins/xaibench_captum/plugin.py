"""Registers captum's attribution methods: Integrated Gradients and Occlusion.

captum attributes the model's logit for the target class; input attributions
``(N, C, *s)`` are reduced over channels (sum by default) into ``(N, *s)`` maps.
"""
from __future__ import annotations

import math
from typing import Callable

import torch
from captum.attr import IntegratedGradients, Occlusion
from torch import nn

from xaibench import hookimpl
from xaibench.maps import reduce_channels
from xaibench.specs import MODALITIES, MethodContext, MethodSpec
from xaibench_captum.fills import fill_like


def integrated_gradients(model: nn.Module, x: torch.Tensor, target: torch.Tensor, ctx: MethodContext,
                         n_steps: int = 32, baseline: str = "zero", reduce: str = "sum") -> torch.Tensor:
    """IG with a Gauss-Legendre path of ``n_steps``; all steps of a batch in ``ctx.batch_size`` chunks."""
    ig = IntegratedGradients(model)
    attr = ig.attribute(x, baselines=fill_like(x, baseline, ctx), target=target, n_steps=n_steps,
                        internal_batch_size=max(ctx.batch_size, x.shape[0]))
    return reduce_channels(attr, reduce)


def occlusion(model: nn.Module, x: torch.Tensor, target: torch.Tensor, ctx: MethodContext,
              window: int = 8, stride: int | None = None, fill: str = "zero", per_pixel: bool = True) -> torch.Tensor:
    """Sliding-window occlusion (Zeiler & Fergus 2014) with seed 003's window, stride and fill.

    With ``per_pixel`` the window's output change is spread over its pixels (divided
    by the window's area), so a map's sum over one window equals that window's effect:
    the quantity occlusion completeness compares with the model's output change.
    Windows span all channels, so every channel carries the same value: the map is
    one channel of the attribution.
    """
    stride = stride or window
    spatial = x.dim() - 2
    c = x.shape[1]
    per_eval = max(1, ctx.batch_size // x.shape[0])
    attr = Occlusion(model).attribute(
        x, sliding_window_shapes=(c,) + (window,) * spatial, strides=(c,) + (stride,) * spatial,
        baselines=fill_like(x, fill, ctx), target=target, perturbations_per_eval=per_eval,
    )
    if per_pixel:
        attr = attr / math.prod((window,) * spatial)
    return attr[:, 0]


@hookimpl
def xaibench_register_methods(register: Callable[[MethodSpec], None]) -> None:
    register(MethodSpec(
        name="integrated-gradients",
        explain=integrated_gradients,
        modalities=frozenset(MODALITIES),
        description="path integral of gradients from a baseline to the input (captum)",
        citation="Sundararajan et al., Axiomatic Attribution for Deep Networks, ICML 2017",
        defaults={"n_steps": 32, "baseline": "zero", "reduce": "sum"},
    ))
    register(MethodSpec(
        name="occlusion",
        explain=occlusion,
        modalities=frozenset(MODALITIES),
        description="output change when a sliding window is replaced by a fill (captum)",
        citation="Zeiler & Fergus, Visualizing and Understanding Convolutional Networks, ECCV 2014",
        needs_gradients=False,
        defaults={"window": 8, "stride": None, "fill": "zero", "per_pixel": True},
    ))
