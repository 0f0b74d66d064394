"""Registers the calibration baselines.

A metric is only readable next to what chance and an oracle score: the random map
gives the chance level of each metric, the centre map the score of a centre bias,
and the ground-truth mask the upper bound of localization metrics.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from xaibench import hookimpl
from xaibench.specs import MODALITIES, MethodContext, MethodSpec


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


@hookimpl
def xaibench_register_methods(register: Callable[[MethodSpec], None]) -> None:
    register(MethodSpec(
        name="random", explain=random_map, modalities=frozenset(MODALITIES), needs_gradients=False,
        description="uniform noise: the chance level of every metric", calibration="chance",
    ))
    register(MethodSpec(
        name="centre", explain=centre_map, modalities=frozenset(MODALITIES), needs_gradients=False,
        description="a Gaussian at the centre: what a centre bias alone scores", defaults={"sigma": 0.25},
        calibration="centre-bias",
    ))
    register(MethodSpec(
        name="ground-truth", explain=ground_truth, modalities=frozenset(MODALITIES), needs_gradients=False,
        needs=frozenset({"masks"}), description="the annotated mask: the upper bound of localization metrics",
        calibration="oracle",
    ))
