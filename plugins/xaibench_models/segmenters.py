"""torchvision's semantic segmentation networks, offline: ``weights=None, weights_backbone=None``.

FCN (Long et al., CVPR 2015) and DeepLabV3 (Chen et al., arXiv:1706.05587, 2017) on a
dilated ResNet-50 (output stride 8), and LR-ASPP (Howard et al., ICCV 2019) on a dilated
MobileNetV3-Large (output stride 16 for its high-level branch). Each is built with seeded
random weights and trained by the harness, or loaded from the user's checkpoint; the
first convolution takes the data's channels (:func:`xaibench_models.zoo.adapt_input`), the
head the classes. Each returns torchvision's dict ``{"out": (N, K, H, W)}`` at the input's
size: a suite entry names it with ``output_key: out`` (:mod:`xaibench.contract.outputs`). The
auxiliary FCN head (``aux_loss``) is not built: it only matters for training with its loss.

CAM layer: the backbone's last stage (``backbone.layer4`` of the ResNets, as in
pytorch-grad-cam's semantic segmentation tutorial; ``backbone.16`` of MobileNetV3, the
module LR-ASPP reads as ``"high"``): the encoder's bottleneck, the deepest features
before the segmentation head, at 1/8 of the input (1/16 for LR-ASPP: 4x4 at 64 px).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # registering reads SEGMENTERS without importing torch (xaibench.contract.lazy)
    from torch import nn

#: torchvision builder -> (the path of its first convolution, its default CAM layer).
SEGMENTERS = {
    "fcn_resnet50": ("backbone.conv1", "backbone.layer4"),
    "deeplabv3_resnet50": ("backbone.conv1", "backbone.layer4"),
    "lraspp_mobilenet_v3_large": ("backbone.0.0", "backbone.16"),
}


def segmenter(name: str) -> Callable[..., nn.Module]:
    """The builder of torchvision's ``name`` (a key of :data:`SEGMENTERS`): ``build(num_classes, in_channels,
    modality)`` returns an untrained network; raises ``TypeError`` for data other than images."""
    def build(num_classes: int, in_channels: int, modality: str) -> nn.Module:
        from torchvision.models import segmentation

        from xaibench_models.zoo import adapt_input

        if modality != "image":
            raise TypeError(f"{name} segments 2D images, not {modality} data")
        model = getattr(segmentation, name)(weights=None, weights_backbone=None, num_classes=num_classes)
        return adapt_input(model, SEGMENTERS[name][0], in_channels)

    build.__name__ = f"build_{name}"
    return build
