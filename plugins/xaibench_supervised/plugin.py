"""Registers the location-supervised model and the method that reads its saliency branch.

The method ``supervised-saliency`` returns the model's own map (class-agnostic: it
shows where the model was taught to look), so the leaderboard scores it with the
same metrics as post-hoc methods on the same model family and data.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from xaibench import hookimpl
from xaibench.specs import MethodContext, MethodSpec, ModelSpec, TrainRecipe
from xaibench_supervised.model import SupervisedSaliencyCNN

CITATION = ("Fan Z., Li X., location-supervised saliency (seed 002); cf. Li K. et al., Tell Me Where to Look: "
            "Guided Attention Inference Network, CVPR 2018")

#: The capability this plugin's model provides and its method requires (the runner skips other pairs).
BRANCH = "saliency-branch"


def supervised_saliency(model: nn.Module, x: torch.Tensor, target: torch.Tensor, ctx: MethodContext) -> torch.Tensor:
    """The model's saliency-branch output; refuses models that have no such branch."""
    branch = getattr(model, "saliency", None)
    if not callable(branch):
        raise TypeError(f"supervised-saliency reads a model's own saliency branch, and {type(model).__name__} has "
                        f"none (no .saliency(x) method): use it with a model such as 'supervised-saliency-cnn'")
    with torch.no_grad():
        return branch(x)


def build(num_classes: int, in_channels: int, modality: str, width: int = 16, depth: int = 4,
          saliency_weight: float = 1.0, branch: str = "conv1x1") -> nn.Module:
    """The model for a suite entry; ``branch`` is one of :data:`xaibench_supervised.model.BRANCHES`.

    Raises TypeError (the suite's file:line is added by the harness) for an unknown branch.
    """
    try:
        return SupervisedSaliencyCNN(num_classes, in_channels, modality, width=width, depth=depth,
                                     saliency_weight=saliency_weight, branch=branch)
    except ValueError as exc:  # a suite's parameter: the harness reports TypeErrors of a build with file:line
        raise TypeError(f"params.{exc}") from None


@hookimpl
def xaibench_register_models(register: Callable[[ModelSpec], None]) -> None:
    register(ModelSpec(
        name="supervised-saliency-cnn",
        build=build,
        modalities=frozenset({"image", "signal"}),
        target_layer=lambda model: model.features[-1],
        description="small-cnn trunk with a saliency branch (branch: conv1x1 or attention) trained on the masks or "
                    "boxes (BCE + Dice) beside CE",
        recipe=TrainRecipe(epochs=15, batch_size=64, lr=2e-3, augment=("hflip",), patience=4),
        citation=CITATION,
        provides=frozenset({BRANCH}),
    ))


@hookimpl
def xaibench_register_methods(register: Callable[[MethodSpec], None]) -> None:
    register(MethodSpec(
        name="supervised-saliency",
        explain=supervised_saliency,
        modalities=frozenset({"image", "signal"}),
        needs_gradients=False,
        requires_model=frozenset({BRANCH}),
        description="the model's own mask-supervised saliency branch (class-agnostic); needs such a model",
        citation=CITATION,
    ))
