"""A small CNN with two heads: classes, and a saliency map supervised by the lesion masks.

Seed 002's design: the classification branch (global average pooling + linear) and
a saliency branch (a 1x1 convolution on the last feature map, giving one coarse
logit map) share the convolutional trunk. Training minimises cross-entropy on the
classes plus binary cross-entropy and soft Dice between the upsampled saliency map
and the mask; a mask-free image (a normal case) teaches an empty map. ``forward``
returns class logits only, so every post-hoc method sees an ordinary classifier.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from xaibench.specs import MethodContext
from xaibench_models.small_cnn import SmallCNN


def soft_dice_loss(prob: torch.Tensor, target: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """``1 - (2|P.T| + eps) / (|P| + |T| + eps)`` per map, averaged (Milletari et al. 2016, V-Net)."""
    dims = tuple(range(1, prob.dim()))
    inter = (prob * target).sum(dims)
    return (1 - (2 * inter + eps) / (prob.sum(dims) + target.sum(dims) + eps)).mean()


class SupervisedSaliencyCNN(nn.Module):
    def __init__(self, num_classes: int, in_channels: int, modality: str, width: int = 16, depth: int = 4,
                 saliency_weight: float = 1.0) -> None:
        super().__init__()
        trunk = SmallCNN(num_classes, in_channels, modality, width=width, depth=depth)
        self.features, self.pool, self.classifier = trunk.features, trunk.pool, trunk.classifier
        conv = nn.Conv2d if modality == "image" else nn.Conv1d
        self.saliency_head = conv(self.classifier.in_features, 1, kernel_size=1)
        self.saliency_weight = saliency_weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.pool(self.features(x)).flatten(1))

    def saliency(self, x: torch.Tensor) -> torch.Tensor:
        """The branch's map, ``(N, *coarse spatial)`` probabilities; the harness upsamples it."""
        return torch.sigmoid(self.saliency_head(self.features(x))[:, 0])

    def training_loss(self, x: torch.Tensor, y: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        """Cross-entropy on classes + ``saliency_weight`` x (BCE + soft Dice) on the mask."""
        feats = self.features(x)
        logits = self.classifier(self.pool(feats).flatten(1))
        coarse = self.saliency_head(feats)
        mode = "bilinear" if x.dim() == 4 else "linear"
        fine = F.interpolate(coarse, size=tuple(masks.shape[1:]), mode=mode, align_corners=False)[:, 0]
        target = masks.to(fine.dtype)
        seg = F.binary_cross_entropy_with_logits(fine, target) + soft_dice_loss(torch.sigmoid(fine), target)
        return F.cross_entropy(logits, y) + self.saliency_weight * seg


def supervised_saliency(model: nn.Module, x: torch.Tensor, target: torch.Tensor, ctx: MethodContext) -> torch.Tensor:
    """The model's saliency-branch output; refuses models that have no such branch."""
    branch = getattr(model, "saliency", None)
    if not callable(branch):
        raise TypeError(f"supervised-saliency reads a model's own saliency branch, and {type(model).__name__} has "
                        f"none (no .saliency(x) method): use it with a model such as 'supervised-saliency-cnn'")
    with torch.no_grad():
        return branch(x)


def build(num_classes: int, in_channels: int, modality: str, width: int = 16, depth: int = 4,
          saliency_weight: float = 1.0) -> nn.Module:
    """The ``supervised-saliency-cnn`` model spec's builder (:class:`SupervisedSaliencyCNN`)."""
    return SupervisedSaliencyCNN(num_classes, in_channels, modality, width=width, depth=depth,
                                 saliency_weight=saliency_weight)
