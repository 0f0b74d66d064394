"""A small CNN for 2D images and 1D signals: quick to train on two CPU cores.

The same definition serves both modalities (Conv2d or Conv1d), so 1D and 2D
benchmarks compare methods on architecturally identical models. Each block is a
``Sequential`` so the last one is a clean CAM target layer.
"""
from __future__ import annotations

from torch import nn


class SmallCNN(nn.Module):
    def __init__(self, num_classes: int, in_channels: int, modality: str, width: int = 16, depth: int = 4) -> None:
        super().__init__()
        conv, norm, pool = (
            (nn.Conv2d, nn.BatchNorm2d, nn.MaxPool2d) if modality == "image" else (nn.Conv1d, nn.BatchNorm1d, nn.MaxPool1d)
        )
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
        self.pool = nn.AdaptiveAvgPool2d(1) if modality == "image" else nn.AdaptiveAvgPool1d(1)
        self.classifier = nn.Linear(channels, num_classes)

    def forward(self, x):  # type: ignore[no-untyped-def]
        return self.classifier(self.pool(self.features(x)).flatten(1))
