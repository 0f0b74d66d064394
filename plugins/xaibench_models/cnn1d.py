"""The shallow 1D CNN of the MNIST-1D benchmark (Greydanus 2020, ``ConvBase``), seed 000's first model.

Unlike ``small-cnn`` it has no pooling or normalisation: three stride-2 convolutions
and a linear layer over the *flattened* feature map, so the head sees where along the
signal each feature fired (a position-sensitive classifier, as in the seed). The
flattened head fixes the signal ``length`` (MNIST-1D's 40 by default).
"""
from __future__ import annotations

import torch
from torch import nn


class ShallowCNN1D(nn.Module):
    """MNIST-1D's ``ConvBase`` (Greydanus 2020): three stride-2 Conv1d + ReLU blocks of ``channels`` and a linear head.

    Takes ``(N, in_channels, length)`` signals, returns ``(N, num_classes)`` logits; the flattened head
    fixes ``length``. Raises ``ValueError`` for a ``length`` too short for three stride-2 convolutions.
    """
    def __init__(self, num_classes: int, in_channels: int, length: int = 40, channels: int = 25) -> None:
        super().__init__()
        self.length = length
        blocks, n = [], length
        for i in range(3):
            blocks.append(nn.Sequential(nn.Conv1d(in_channels if i == 0 else channels, channels, 5, stride=2,
                                                  padding=1), nn.ReLU()))
            n = (n + 2 - 5) // 2 + 1
        if n < 1:
            raise ValueError(f"signals of length {length} are too short for three stride-2 convolutions")
        self.features = nn.Sequential(*blocks)
        self.classifier = nn.Linear(channels * n, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(N, num_classes)`` of ``x`` ``(N, C, length)``; raises ``ValueError`` naming the ``length`` parameter
        for a signal of another length.
        """
        if x.shape[-1] != self.length:
            raise ValueError(f"this cnn1d-shallow was built for signals of length {self.length}, got {x.shape[-1]}: "
                             f"set the model's 'length' parameter in the suite")
        return self.classifier(self.features(x).flatten(1))


def build_cnn1d_shallow(num_classes: int, in_channels: int, modality: str, length: int = 40,
                        channels: int = 25) -> nn.Module:
    """The ``cnn1d-shallow`` model spec's builder: :class:`ShallowCNN1D` for signals of ``length`` points."""
    return ShallowCNN1D(num_classes, in_channels, length=length, channels=channels)
