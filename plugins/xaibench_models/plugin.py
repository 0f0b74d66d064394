"""Registers the built-in models: a small CNN (1D and 2D) and torchvision's ResNet-18."""
from __future__ import annotations

from typing import Callable

import torchvision
from torch import nn

from xaibench import hookimpl
from xaibench.specs import ModelSpec, TrainRecipe
from xaibench_models.small_cnn import SmallCNN


def build_small_cnn(num_classes: int, in_channels: int, modality: str, width: int = 16, depth: int = 3) -> nn.Module:
    return SmallCNN(num_classes, in_channels, modality, width=width, depth=depth)


def build_resnet18(num_classes: int, in_channels: int, modality: str, stem: str = "imagenet") -> nn.Module:
    """ResNet-18 (He et al. 2016), ``weights=None``, adapted to the input channels.

    ``stem="small"`` uses a 3x3 stride-1 first convolution (no change in pooling),
    which keeps layer4's maps at 1/16 rather than 1/32 of the input: CAMs of small
    medical images stay usable (4x4 instead of 2x2 at 64 px).
    """
    model = torchvision.models.resnet18(weights=None, num_classes=num_classes)
    if stem == "small":
        model.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
    elif stem == "imagenet":
        if in_channels != 3:
            model.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
    else:
        raise ValueError(f"stem must be 'imagenet' or 'small', got {stem!r}")
    return model


def _attr(path: str) -> Callable[[nn.Module], nn.Module]:
    def find(model: nn.Module) -> nn.Module:
        return model.get_submodule(path)

    return find


def _last(path: str) -> Callable[[nn.Module], nn.Module]:
    def find(model: nn.Module) -> nn.Module:
        return list(model.get_submodule(path).children())[-1]

    return find


@hookimpl
def xaibench_register_models(register: Callable[[ModelSpec], None]) -> None:
    register(ModelSpec(
        name="small-cnn",
        build=build_small_cnn,
        modalities=frozenset({"image", "signal"}),
        target_layer=_last("features"),
        description="three conv-BN-ReLU blocks, global average pooling, linear head",
        recipe=TrainRecipe(epochs=15, batch_size=64, lr=2e-3, augment=("hflip",), patience=4),
    ))
    register(ModelSpec(
        name="resnet18",
        build=build_resnet18,
        modalities=frozenset({"image"}),
        target_layer=_last("layer4"),
        description="torchvision ResNet-18, weights=None, trained by the harness",
        recipe=TrainRecipe(epochs=12, batch_size=64, lr=1e-3, augment=("hflip",), patience=4),
        citation="He et al., Deep Residual Learning for Image Recognition, CVPR 2016",
    ))
