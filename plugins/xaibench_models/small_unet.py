"""The harness's own small UNet (Ronneberger et al., MICCAI 2015) for 2D images and 3D volumes: quick on two CPU cores.

One definition for both modalities (Conv2d or Conv3d from :func:`xaibench.contract.layers.layers_for`),
so 2D and 3D segmentation benchmarks explain architecturally identical networks.
"""
from __future__ import annotations

import torch
from torch import nn

from xaibench.contract.layers import layers_for


def _block(conv: type[nn.Module], norm: type[nn.Module], cin: int, cout: int) -> nn.Sequential:
    """Two conv 3 + batch norm + ReLU layers, ``cin`` -> ``cout`` channels, same spatial size."""
    return nn.Sequential(conv(cin, cout, 3, padding=1, bias=False), norm(cout), nn.ReLU(),
                         conv(cout, cout, 3, padding=1, bias=False), norm(cout), nn.ReLU())


class SmallUNet(nn.Module):
    """A UNet with ``depth`` 2x poolings: encoder blocks of ``width * 2**i`` channels, a bottleneck of
    ``width * 2**depth`` channels, and a decoder that upsamples (nearest, 2x), concatenates the encoder's map of
    the same size (the skip connection) and convolves; a 1x1 convolution gives the class logits.

    Takes ``(N, in_channels, *spatial)`` with every spatial size divisible by ``2**depth``; returns
    ``(N, num_classes, *spatial)`` logits at the input's size (``num_classes = 1``: one sigmoid logit per pixel).

    CAM layer: ``bottleneck``, at ``1 / 2**depth`` of the input (8x8 at 64 px, 4x4x4 at 32^3 with the default
    ``depth = 3``): the deepest, most contextual features, the layer Seg-Grad-CAM explains (Vinogradova et al.,
    AAAI 2020). The last decoder stage is not the default: the logits are a 1x1 convolution of its maps, so a
    Grad-CAM there reproduces the predicted logit map and says nothing about where the evidence came from.
    """

    def __init__(self, num_classes: int, in_channels: int, modality: str, width: int = 16, depth: int = 3) -> None:
        super().__init__()
        conv, norm, pool, _ = layers_for(modality)
        self.pool = pool(2)
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        widths = [width * 2**i for i in range(depth + 1)]
        self.encoder = nn.ModuleList(_block(conv, norm, cin, cout)
                                     for cin, cout in zip([in_channels, *widths[:-2]], widths[:-1]))
        self.bottleneck = _block(conv, norm, widths[-2], widths[-1])
        self.decoder = nn.ModuleList(_block(conv, norm, widths[i + 1] + widths[i], widths[i])
                                     for i in reversed(range(depth)))
        self.head = conv(width, num_classes, 1)
        self.depth = depth

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(N, num_classes, *spatial)`` of ``x`` ``(N, in_channels, *spatial)``."""
        skips = []
        for block in self.encoder:
            x = block(x)
            skips.append(x)
            x = self.pool(x)
        x = self.bottleneck(x)
        for block, skip in zip(self.decoder, reversed(skips)):
            x = block(torch.cat([self.up(x), skip], 1))
        return self.head(x)


def build_small_unet(num_classes: int, in_channels: int, modality: str, width: int = 16,
                     depth: int = 3) -> nn.Module:
    """The ``small-unet`` model spec's builder: :class:`SmallUNet` with ``width`` channels and ``depth`` poolings.

    Raises ``TypeError`` (the runner adds the suite's file:line) for signal data: segmentation masks are 2D or 3D.
    """
    if modality not in ("image", "volume"):
        raise TypeError(f"small-unet segments image (2D) or volume (3D) data, not {modality} data")
    return SmallUNet(num_classes, in_channels, modality, width=width, depth=depth)
