"""Two models as people bring them: a one-logit binary classifier and a model returning (logits, embedding).

Neither needs a plugin: the suite names them with ``factory: usernets:<function>``.
"""
from __future__ import annotations

import torch
from torch import nn


class BinaryCNN(nn.Module):
    """Two convolutions, global average pooling and one output logit (trained with BCE-with-logits)."""

    def __init__(self, in_channels: int = 1) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(in_channels, 8, 3, padding=1), nn.ReLU(),
                                      nn.Conv2d(8, 16, 3, padding=1), nn.ReLU())
        self.head = nn.Linear(16, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).mean((2, 3)))


class TupleCNN(BinaryCNN):
    """Returns ``(logits, embedding)``: class scores for every class plus the pooled features."""

    def __init__(self, num_classes: int, in_channels: int = 1) -> None:
        super().__init__(in_channels)
        self.head = nn.Linear(16, num_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # type: ignore[override]
        embedding = self.features(x).mean((2, 3))
        return self.head(embedding), embedding


def binary_cnn(num_classes: int, in_channels: int) -> nn.Module:
    """The 1-logit model (``num_classes`` is 2 here: one logit stands for both classes)."""
    return BinaryCNN(in_channels)


def tuple_cnn(num_classes: int, in_channels: int) -> nn.Module:
    return TupleCNN(num_classes, in_channels)
