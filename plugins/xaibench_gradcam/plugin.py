"""Registers pytorch-grad-cam's methods (Grad-CAM) as xaibench methods.

pytorch-grad-cam explains the target logit at ``ctx.layer`` (chosen per
architecture by the model spec, or by ``layer:`` in the suite), clips negative
evidence and min-max scales each map, then resizes it to the input.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.base_cam import BaseCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from torch import nn

from xaibench import hookimpl
from xaibench.specs import MethodContext, MethodSpec


def cam_method(cam_class: type[BaseCAM]) -> Callable[..., torch.Tensor]:
    """An ``explain`` function driving one pytorch-grad-cam class on 2D inputs."""

    def explain(model: nn.Module, x: torch.Tensor, target: torch.Tensor, ctx: MethodContext) -> torch.Tensor:
        if ctx.layer is None:
            raise ValueError(f"{cam_class.__name__} needs a target layer")
        targets = [ClassifierOutputTarget(int(t)) for t in target]
        with cam_class(model=model, target_layers=[ctx.layer]) as cam:
            maps = cam(input_tensor=x, targets=targets)
        return torch.from_numpy(np.ascontiguousarray(maps, dtype=np.float32))

    explain.__name__ = explain.__qualname__ = f"explain_{cam_class.__name__.lower()}"
    return explain


@hookimpl
def xaibench_register_methods(register: Callable[[MethodSpec], None]) -> None:
    register(MethodSpec(
        name="gradcam",
        explain=cam_method(GradCAM),
        modalities=frozenset({"image"}),
        description="feature maps weighted by their average gradient (pytorch-grad-cam)",
        citation="Selvaraju et al., Grad-CAM, ICCV 2017",
        takes_layer=True,
    ))
