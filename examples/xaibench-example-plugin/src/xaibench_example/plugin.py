"""A third-party plugin: one method and one model, registered through entry points.

The method wraps a library's implementation (captum's Deconvolution) rather than
re-writing it; the model is a small architecture the built-in zoo lacks. Both
follow the contracts of ``xaibench.contract.specs``, exactly as a built-in plugin does.
"""
from __future__ import annotations

from typing import Callable

import torch
from captum.attr import Deconvolution
from torch import nn

from xaibench import hookimpl
from xaibench.scoring.maps import reduce_channels
from xaibench.models.nonlinearities import inspect_model, uncovered_reason
from xaibench.contract.specs import MethodContext, MethodSpec, ModelSpec, TrainRecipe


def deconvnet(model: nn.Module, x: torch.Tensor, target: torch.Tensor, ctx: MethodContext,
              reduce: str = "abs") -> torch.Tensor:
    """Zeiler & Fergus's deconvnet: gradients with ReLUs applied to the backward signal (captum).

    captum overrides the backward pass of the model's ``nn.ReLU`` modules while it
    attributes and restores them afterwards; the parameters are never touched.
    """
    attr = Deconvolution(model).attribute(x.detach().clone().requires_grad_(True), target=target)
    return reduce_channels(attr.detach(), reduce)


def deconvnet_covers(model: nn.Module) -> str | None:
    """None where every nonlinearity is an ``nn.ReLU`` module called once, or max pooling (what captum's
    ``Deconvolution`` overrides in place), else the one-line reason: the plan then marks the cells not
    applicable instead of scoring plain gradients under this method's name."""
    found = inspect_model(model)
    return uncovered_reason("the deconvnet rectifies the backward signal at nn.ReLU modules", found,
                            lambda site: site.kind == "MaxPool" or (site.kind == "ReLU" and site.module is not None
                                                                   and not site.reused))


class LeNet5(nn.Module):
    """LeNet-5's layout (two 5-wide convolutions, then 120-84-classes) for images or signals.

    ReLU and max pooling replace the original tanh and subsampling, and an adaptive
    pooling to LeNet's 5-wide maps lets it take any input size (including 1D signals).
    """

    def __init__(self, num_classes: int, in_channels: int, modality: str) -> None:
        super().__init__()
        if modality == "image":
            conv, pool, adaptive, cells = nn.Conv2d, nn.MaxPool2d, nn.AdaptiveAvgPool2d, 25
        elif modality == "signal":
            conv, pool, adaptive, cells = nn.Conv1d, nn.MaxPool1d, nn.AdaptiveAvgPool1d, 5
        else:
            raise ValueError(f"modality must be 'image' or 'signal', got {modality!r}")
        self.features = nn.Sequential(conv(in_channels, 6, 5, padding=2), nn.ReLU(), pool(2),
                                      conv(6, 16, 5, padding=2), nn.ReLU())
        self.head = nn.Sequential(pool(2), adaptive(5), nn.Flatten(), nn.Linear(16 * cells, 120), nn.ReLU(),
                                  nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


@hookimpl
def xaibench_register_methods(register: Callable[[MethodSpec], None]) -> None:
    register(MethodSpec(
        name="deconvnet",
        explain=deconvnet,
        covers=deconvnet_covers,
        modalities=frozenset({"image", "signal"}),  # checked on 1D and 2D only
        description="deconvnet: gradients with ReLU applied on the backward pass (captum)",
        citation="Zeiler & Fergus, Visualizing and Understanding Convolutional Networks, ECCV 2014",
        defaults={"reduce": "abs"},
    ))


@hookimpl
def xaibench_register_models(register: Callable[[ModelSpec], None]) -> None:
    register(ModelSpec(
        name="lenet5",
        build=LeNet5,
        modalities=frozenset({"image", "signal"}),  # checked on 1D and 2D only
        target_layer=lambda model: model.features,
        description="LeNet-5 layout with ReLU and max pooling, any input size, 1D or 2D",
        citation="LeCun et al., Gradient-Based Learning Applied to Document Recognition, Proc. IEEE 1998",
        recipe=TrainRecipe(epochs=10, batch_size=64, lr=2e-3, patience=3),
    ))
