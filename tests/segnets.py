"""Tiny segmentation networks for the segmentation tests: a two-level UNet (2D or 3D, skip connection,
``K`` per-pixel logits at the input's size) and torchvision's dict output ``{"out": ..., "aux": ...}``."""
from __future__ import annotations

import torch
from torch import nn


class TinyUNet(nn.Module):
    """``(N, C, *spatial)`` -> ``(N, k, *spatial)`` logits; ``dims`` 2 or 3; even sizes."""

    def __init__(self, c: int = 1, k: int = 1, width: int = 4, dims: int = 2) -> None:
        super().__init__()
        conv = nn.Conv2d if dims == 2 else nn.Conv3d
        self.down = nn.Sequential(conv(c, width, 3, padding=1), nn.ReLU())
        self.pool = nn.MaxPool2d(2) if dims == 2 else nn.MaxPool3d(2)
        self.mid = nn.Sequential(conv(width, 2 * width, 3, padding=1), nn.ReLU())
        self.up = nn.Upsample(scale_factor=2)
        self.head = conv(3 * width, k, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d = self.down(x)
        return self.head(torch.cat([d, self.up(self.mid(self.pool(d)))], 1))


class DictSegmenter(nn.Module):
    """torchvision's segmentation output: ``{"out": logits, "aux": logits}``."""

    def __init__(self, k: int = 3) -> None:
        super().__init__()
        self.net = TinyUNet(k=k)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        out = self.net(x)
        return {"out": out, "aux": out.detach() * 0}


def unet(seed: int = 0, **kwargs: int) -> TinyUNet:
    """A seeded :class:`TinyUNet` in eval mode."""
    torch.manual_seed(seed)
    return TinyUNet(**kwargs).eval()


def centred(net: TinyUNet, x: torch.Tensor) -> TinyUNet:
    """``net`` with each class's median logit over ``x`` subtracted from its head's bias, so that on ``x`` a random
    net predicts every class on part of each image (a real region, neither empty nor everything)."""
    with torch.no_grad():
        net.head.bias -= net(x).transpose(0, 1).flatten(1).median(1).values
    return net


def factory(num_classes: int, in_channels: int) -> TinyUNet:
    """A suite's ``factory:`` for :class:`TinyUNet` with ``num_classes`` per-pixel logits."""
    torch.manual_seed(0)
    return TinyUNet(c=in_channels, k=num_classes)



def full_resolution(k: int = 1, width: int = 4) -> nn.Sequential:
    """A segmenter without down- or upsampling (convolutions and ReLUs at the input's size): every operation has
    an LRP rule (the UNets' ``Upsample`` has none)."""
    return nn.Sequential(nn.Conv2d(1, width, 3, padding=1), nn.ReLU(), nn.Conv2d(width, width, 3, padding=1),
                         nn.ReLU(), nn.Conv2d(width, k, 1))
