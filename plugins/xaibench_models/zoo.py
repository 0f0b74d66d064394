"""The seeds' torchvision architectures, ``weights=None``, adapted to the data's channels and classes.

Each is built with seeded random weights and trained by the harness (or loaded from
the user's checkpoint); a suite's ``weights: imagenet`` starts training from
torchvision's published ImageNet weights instead (:data:`xaibench_models.weights.IMAGENET`, loaded by
:mod:`xaibench.models.pretrained`, never fetched without ``--download``). Adapting channels
replaces the first convolution with one of the same shape except its input
channels; the classes go to torchvision's ``num_classes``. Every model keeps
torchvision's module names, so a user's checkpoint of the same architecture loads.
"""
from __future__ import annotations

from typing import Callable

import re

import torch
from torch import nn

#: DenseNet's published files name a dense layer's modules ``norm.1``, ``conv.2`` ...; the modules are ``norm1``,
#: ``conv2`` (the renaming torchvision's densenet loader applies to the same files).
_DENSENET_KEY = re.compile(r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$")


def densenet_keys(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A published DenseNet state dict with its dense-layer keys renamed to the modules' names."""
    return {(f"{m.group(1)}{m.group(2)}" if (m := _DENSENET_KEY.match(k)) else k): v for k, v in state.items()}

#: Dotted path of each architecture's first convolution (the one that sees the input channels).
FIRST_CONV = {
    "resnet": "conv1",
    "densenet": "features.conv0",
    "googlenet": "conv1.conv",
    "mobilenet_v2": "features.0.0",
    "vgg": "features.0",
    "r3d_18": "stem.0",
}


def adapt_input(model: nn.Module, path: str, in_channels: int) -> nn.Module:
    """Replace the convolution (2D or 3D) at ``path`` by one taking ``in_channels`` inputs (no-op when it already does)."""
    conv = model.get_submodule(path)
    if not isinstance(conv, (nn.Conv2d, nn.Conv3d)):
        raise TypeError(f"{path} of {type(model).__name__} is {type(conv).__name__}, not Conv2d or Conv3d")
    if conv.in_channels == in_channels:
        return model
    new = type(conv)(in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                    conv.dilation, conv.groups, conv.bias is not None, conv.padding_mode)
    parent, _, name = path.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, name, new)
    return model


#: ResNet stems: ``imagenet`` is torchvision's 7x7 stride-2 conv and 3x3 stride-2 max-pool (maps at 1/32 of
#: the input after layer4); ``small`` is a 3x3 stride-1 conv and no max-pool, as in the CIFAR ResNets
#: (He et al. 2016, Sec. 4.2), so layer4's maps are 1/8 of the input: 8x8 at 64 px instead of 2x2.
RESNET_STEMS = ("imagenet", "small")


def resnet(depth: int) -> Callable[..., nn.Module]:
    """The builder of torchvision's ResNet-``depth`` (He et al., CVPR 2016): ``build(num_classes, in_channels, modality,
    stem)`` returns an untrained model; raises ``ValueError`` for an unknown ``stem``.
    """
    def build(num_classes: int, in_channels: int, modality: str, stem: str = "imagenet") -> nn.Module:
        """ResNet (He et al. 2016) with the given ``stem`` (see :data:`RESNET_STEMS`).

        A CAM explains layer4's maps, upsampled to the input: with the ImageNet stem a 64 px
        input gives a 2x2 map (blocky, near chance on localization); use ``stem: small`` for
        small images (about 16x the compute of the ImageNet stem at the same input size).
        Raises ValueError for an unknown stem.
        """
        import torchvision

        if stem not in RESNET_STEMS:
            raise ValueError(f"stem must be one of {', '.join(RESNET_STEMS)}, got {stem!r}")
        model = getattr(torchvision.models, f"resnet{depth}")(weights=None, num_classes=num_classes)
        if stem == "small":
            model.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
            model.maxpool = nn.Identity()
        return adapt_input(model, FIRST_CONV["resnet"], in_channels)

    build.__name__ = f"build_resnet{depth}"
    return build


def densenet(depth: int) -> Callable[..., nn.Module]:
    """The builder of torchvision's DenseNet-``depth`` (Huang et al., CVPR 2017): ``build(num_classes, in_channels,
    modality)`` returns an untrained model whose first convolution takes ``in_channels``.
    """
    def build(num_classes: int, in_channels: int, modality: str) -> nn.Module:
        import torchvision

        model = getattr(torchvision.models, f"densenet{depth}")(weights=None, num_classes=num_classes)
        return adapt_input(model, FIRST_CONV["densenet"], in_channels)

    build.__name__ = f"build_densenet{depth}"
    return build


def build_googlenet(num_classes: int, in_channels: int, modality: str) -> nn.Module:
    """GoogLeNet without auxiliary heads (they only matter for training with their losses)."""
    import torchvision

    model = torchvision.models.googlenet(weights=None, num_classes=num_classes, aux_logits=False,
                                         init_weights=True, transform_input=False)
    return adapt_input(model, FIRST_CONV["googlenet"], in_channels)


def build_mobilenet_v2(num_classes: int, in_channels: int, modality: str) -> nn.Module:
    """MobileNetV2 (Sandler et al., CVPR 2018), torchvision's, untrained, its first convolution taking ``in_channels``."""
    import torchvision

    model = torchvision.models.mobilenet_v2(weights=None, num_classes=num_classes)
    return adapt_input(model, FIRST_CONV["mobilenet_v2"], in_channels)


def build_vgg16(num_classes: int, in_channels: int, modality: str, head: str = "torchvision") -> nn.Module:
    """VGG-16 (Simonyan & Zisserman 2015); its adaptive pooling takes any input of at least 32 px.

    ``head="gap"`` replaces the 7x7 pooling and the 120M-parameter fully connected head
    by global average pooling and one linear layer: trainable on a CPU, same trunk.
    """
    import torchvision

    model = torchvision.models.vgg16(weights=None, num_classes=num_classes)
    if head == "gap":
        model.avgpool = nn.AdaptiveAvgPool2d(1)
        model.classifier = nn.Linear(512, num_classes)
    elif head != "torchvision":
        raise ValueError(f"head must be 'torchvision' or 'gap', got {head!r}")
    return adapt_input(model, FIRST_CONV["vgg"], in_channels)


#: R3D-18 stems: ``video`` is torchvision's (3x7x7 conv, stride 1x2x2: layer4's maps are 1/8 of the depth and
#: 1/16 of height and width); ``small`` is a 3x3x3 stride-1 conv (layer4 at 1/8 per axis: 4^3 at 32^3, about
#: 4x the compute of the video stem at the same input size).
R3D_STEMS = ("video", "small")


def build_r3d18(num_classes: int, in_channels: int, modality: str, stem: str = "small") -> nn.Module:
    """torchvision's R3D-18 (Tran et al. 2018, 3D ResNet-18) for ``(N, C, D, H, W)`` volumes, ``weights=None``.

    The first convolution takes ``in_channels`` (1 for CT/MRI); ``stem`` is one of
    :data:`R3D_STEMS`. Raises ValueError for another stem.
    """
    if stem not in R3D_STEMS:
        raise ValueError(f"stem must be one of {', '.join(R3D_STEMS)}, got {stem!r}")
    import torchvision

    model = torchvision.models.video.r3d_18(weights=None, num_classes=num_classes)
    if stem == "small":
        model.stem[0] = nn.Conv3d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
    return adapt_input(model, FIRST_CONV["r3d_18"], in_channels)


def last_of_type(path: str, kind: str) -> Callable[[nn.Module], nn.Module]:
    """The last module of class ``torch.nn.<kind>`` under ``path``.

    VGG's last ReLU: twice the resolution of its final pool.
    """
    cls = getattr(nn, kind)

    def find(model: nn.Module) -> nn.Module:
        return [m for m in model.get_submodule(path).modules() if isinstance(m, cls)][-1]

    return find
