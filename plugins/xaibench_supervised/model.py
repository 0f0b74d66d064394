"""A small CNN with two branches: classes, and a saliency map supervised by the lesion masks (or boxes).

Seed 002's design: a classification branch (global average pooling + linear) and a
saliency branch share the convolutional trunk; the seed compares several designs of
the two branches. ``branch`` selects one:

- ``conv1x1``: a 1x1 convolution on the last feature map gives one coarse logit map;
  the classification branch does not see it (a side output, as in deep supervision).
- ``attention``: the Attention Branch Network's design (Fukui et al., CVPR 2019,
  section 3): 3x3 conv + norm + ReLU + 1x1 conv + sigmoid give an attention map ``A`` in
  [0, 1] that gates the features the classifier pools, ``f * (1 + A)`` (the residual
  attention mechanism), so the map is used by the classification and trained by its loss
  too; supervising ``A`` with the masks follows Mitsuhara et al. (Embedding human
  knowledge into deep neural network via attention map, arXiv 1905.03540, 2019).

Training with masks minimises cross-entropy on the classes plus binary cross-entropy and
soft Dice between the upsampled saliency logits and the mask; a mask-free image (a
normal case) teaches an empty map. Boxes arrive as filled masks (the union of the
boxes on the pixel grid), so a box-annotated dataset supervises the branch the same
way. ``forward`` returns class logits only, so every post-hoc method sees an ordinary
classifier.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from xaibench.contract.specs import MethodContext
from xaibench_models.small_cnn import SmallCNN

from xaibench.contract.layers import layers_for


def soft_dice_loss(prob: torch.Tensor, target: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """``1 - (2|P.T| + eps) / (|P| + |T| + eps)`` per map, averaged (Milletari et al. 2016, V-Net)."""
    dims = tuple(range(1, prob.dim()))
    inter = (prob * target).sum(dims)
    return (1 - (2 * inter + eps) / (prob.sum(dims) + target.sum(dims) + eps)).mean()


#: The saliency-branch designs a model's ``branch`` parameter selects.
BRANCHES = ("conv1x1", "attention")


class SupervisedSaliencyCNN(nn.Module):
    """:class:`~xaibench_models.small_cnn.SmallCNN`'s trunk and head with a saliency branch trained on the masks (seed 002).

    ``branch``: ``conv1x1`` (a side output the classifier does not read) or ``attention`` (the branch
    gates the features the classifier pools, ``1 + sigmoid``). :meth:`training_loss` adds
    ``saliency_weight`` x (BCE + soft Dice) of the branch against the mask to the cross-entropy.
    Raises ``ValueError`` for an unknown ``branch``.
    """
    def __init__(self, num_classes: int, in_channels: int, modality: str, width: int = 16, depth: int = 4,
                 saliency_weight: float = 1.0, branch: str = "conv1x1") -> None:
        super().__init__()
        if branch not in BRANCHES:
            raise ValueError(f"branch must be one of {', '.join(BRANCHES)}, got {branch!r}")
        trunk = SmallCNN(num_classes, in_channels, modality, width=width, depth=depth)
        self.features, self.pool, self.classifier = trunk.features, trunk.pool, trunk.classifier
        conv, norm, _, _ = layers_for(modality)
        channels = self.classifier.in_features
        self.branch = branch
        self.saliency_head: nn.Module = conv(channels, 1, kernel_size=1) if branch == "conv1x1" else nn.Sequential(
            conv(channels, channels, kernel_size=3, padding=1), norm(channels), nn.ReLU(), conv(channels, 1, kernel_size=1))
        self.saliency_weight = saliency_weight

    def _classify(self, feats: torch.Tensor, coarse: torch.Tensor | None) -> torch.Tensor:
        """Class logits from the trunk's features; the attention design gates them with ``1 + sigmoid(coarse)``."""
        if self.branch == "attention":
            feats = feats * (1 + torch.sigmoid(self.saliency_head(feats) if coarse is None else coarse))
        return self.classifier(self.pool(feats).flatten(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(N, num_classes)`` of ``x`` ``(N, in_channels, *spatial)`` (gated by the branch with ``attention``)."""
        return self._classify(self.features(x), None)

    def saliency(self, x: torch.Tensor) -> torch.Tensor:
        """The branch's map, ``(N, *coarse spatial)`` probabilities; the harness upsamples it."""
        return torch.sigmoid(self.saliency_head(self.features(x))[:, 0])

    def training_loss(self, x: torch.Tensor, y: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        """Cross-entropy on classes + ``saliency_weight`` x (BCE + soft Dice) on the mask ``(N, *spatial)`` bool."""
        feats = self.features(x)
        coarse = self.saliency_head(feats)
        logits = self._classify(feats, coarse)
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
          saliency_weight: float = 1.0, branch: str = "conv1x1") -> nn.Module:
    """The ``supervised-saliency-cnn`` model spec's builder (:class:`SupervisedSaliencyCNN`); ``branch`` is one of
    :data:`BRANCHES`.

    Raises TypeError (the suite's file:line is added by the harness) for an unknown branch.
    """
    try:
        return SupervisedSaliencyCNN(num_classes, in_channels, modality, width=width, depth=depth,
                                     saliency_weight=saliency_weight, branch=branch)
    except ValueError as exc:  # a suite's parameter: the harness reports TypeErrors of a build with file:line
        raise TypeError(f"params.{exc}") from None
