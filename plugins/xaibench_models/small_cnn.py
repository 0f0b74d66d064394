"""A small CNN for 1D signals, 2D images and 3D volumes: quick to train on two CPU cores.

The same definition serves every modality (Conv1d, Conv2d or Conv3d), so 1D, 2D
and 3D benchmarks compare methods on architecturally identical models. Each block is a
``Sequential`` so the last one is a clean CAM target layer.
"""
from __future__ import annotations

from torch import nn

from xaibench.contract.layers import layers_for


class SmallCNN(nn.Module):
    """``depth`` blocks of conv 3 + norm + ReLU (+ 2x pooling, all but the last), ``width * 2**i`` channels, global
    average pooling and a linear head, for any modality (:func:`xaibench.contract.layers.layers_for`).

    Takes ``(N, in_channels, *spatial)``, returns ``(N, num_classes)`` logits; ``features[-1]`` is the
    CAM target layer, at ``1 / 2**(depth - 1)`` of the input size.
    """
    def __init__(self, num_classes: int, in_channels: int, modality: str, width: int = 16, depth: int = 4) -> None:
        super().__init__()
        conv, norm, pool, gap = layers_for(modality)
        blocks: list[nn.Module] = []
        channels = in_channels
        for i in range(depth):
            out = width * 2**i
            layers: list[nn.Module] = [conv(channels, out, 3, padding=1), norm(out), nn.ReLU()]
            if i < depth - 1:
                layers.append(pool(2))
            blocks.append(nn.Sequential(*layers))
            channels = out
        self.features = nn.Sequential(*blocks)
        self.pool = gap(1)
        self.classifier = nn.Linear(channels, num_classes)

    def forward(self, x):  # type: ignore[no-untyped-def]
        """Logits ``(N, num_classes)`` of ``x`` ``(N, in_channels, *spatial)``."""
        return self.classifier(self.pool(self.features(x)).flatten(1))


def build_small_cnn(num_classes: int, in_channels: int, modality: str, width: int = 16, depth: int = 4) -> nn.Module:
    """The ``small-cnn`` model spec's builder: :class:`SmallCNN` with ``width`` channels and ``depth`` blocks."""
    return SmallCNN(num_classes, in_channels, modality, width=width, depth=depth)
