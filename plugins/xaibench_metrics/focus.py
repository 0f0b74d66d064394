"""Focus (Arias-Duart, Parés, Garcia-Gasulla, Giménez-Ábalos, "Focus! Rating XAI Methods and Finding
Biases", FUZZ-IEEE 2022, Sec. III): explain a mosaic of four images, two of the explained class and
two of other classes, and measure the share of the map's positive relevance on the tiles of the
explained class. A map that follows the class's evidence puts all of it there (1); a map that does
not look at the class scores about the tiles' share, 0.5.

The mosaic protocol, over any image dataset: the mosaic of sample ``i`` (explained class ``c_i``, the
cell's target) holds ``x_i``, one other sample of the cell explained as ``c_i`` and two samples
explained as other classes, placed on a 2x2 grid in a random order; partners and positions come from
``sample_seeds[i]``, so every method explains the same mosaics (common random numbers), the candidate
partners taken in the order of their seeds (so of their ids), not of their positions: the same samples
in another order give the same mosaics. Each tile is
the image downscaled by area averaging to half the input's height and width (odd sides: the top and
left tiles take the extra row or column), so the mosaic has the input's size and any model reads it;
Arias-Duart et al. put full-size images in a mosaic of twice the size, which only size-agnostic
models accept. The cell's method is re-run on the mosaics for the samples' classes (one re-explanation).
NaN where the cell has no other sample of the class or fewer than two of other classes, and where
the mosaic's map has no positive relevance.

Quantus 0.6's ``Focus`` scores tiles in the order (top-left, top-right, bottom-left, bottom-right) of
its ``mosaic_creation``; on square mosaics the two agree (its tracker, PR #357, records a width/height
swap that shows on non-square ones).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F


def mosaics(inputs: torch.Tensor, targets: torch.Tensor, sample_seeds: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """The mosaics ``(N, C, H, W)`` (module doc) and which tiles hold the explained class, ``(N, 4)`` bool in the
    order top-left, top-right, bottom-left, bottom-right; a sample without enough partners gets its own image
    and an all-False row."""
    n, _, h, w = inputs.shape
    rows, cols = (h + 1) // 2, (w + 1) // 2
    tiles = [F.interpolate(inputs, size=size, mode="area") for size in
             ((rows, cols), (rows, w - cols), (h - rows, cols), (h - rows, w - cols))]
    out = inputs.clone()
    own = torch.zeros(n, 4, dtype=torch.bool)
    labels = targets.cpu()
    by_seed = sorted(range(n), key=lambda j: int(sample_seeds[j]))  # candidates in an order of the samples' ids,
    for i, seed in enumerate(sample_seeds):                         # not of their positions
        same = [j for j in by_seed if j != i and labels[j] == labels[i]]
        other = [j for j in by_seed if labels[j] != labels[i]]
        if not same or len(other) < 2:
            continue
        rng = np.random.default_rng(int(seed))
        members = [i, same[rng.integers(len(same))], *rng.choice(other, 2, replace=False).tolist()]
        place = rng.permutation(4)
        for member, slot in zip(members, place):
            r0, c0 = (0 if slot < 2 else rows), (0 if slot % 2 == 0 else cols)
            tile = tiles[int(slot)][member]
            out[i, :, r0 : r0 + tile.shape[1], c0 : c0 + tile.shape[2]] = tile
        own[i, place[:2]] = True
    return out, own


def tile_masks(own: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """``(N, H, W)`` bool: the pixels of the tiles marked in ``own`` ``(N, 4)`` (order of :func:`mosaics`)."""
    rows, cols = (h + 1) // 2, (w + 1) // 2
    top = torch.arange(h)[:, None] < rows
    left = torch.arange(w)[None, :] < cols
    quadrants = torch.stack([top & left, top & ~left, ~top & left, ~top & ~left])  # (4, H, W)
    return (own[:, :, None, None] & quadrants[None]).any(1)


def focus(inputs: torch.Tensor, targets: torch.Tensor, explain: Callable[..., torch.Tensor],
          sample_seeds: Sequence[int]) -> np.ndarray:
    """Focus (Arias-Duart et al. 2022): positive relevance on the explained class's tiles / all positive relevance.

    ``inputs`` ``(N, C, H, W)``; ``(N,)`` float64 in [0, 1], higher is better; NaN where undefined (module doc).
    Raises :class:`ValueError` for inputs that are not images or seeds that are not one per sample.
    """
    if inputs.dim() != 4:
        raise ValueError(f"focus builds 2x2 mosaics of images (N, C, H, W), got shape {tuple(inputs.shape)}")
    if len(sample_seeds) != inputs.shape[0]:
        raise ValueError(f"need one seed per sample, got {len(sample_seeds)} for {inputs.shape[0]} samples")
    mosaic, own = mosaics(inputs, targets, sample_seeds)
    maps = explain(inputs=mosaic, targets=targets).double().cpu().clamp(min=0)
    inside = tile_masks(own, *inputs.shape[2:])
    total = maps.flatten(1).sum(1)
    share = (maps * inside).flatten(1).sum(1) / total.clamp(min=1e-300)
    defined = own.any(1) & (total > 0)
    return torch.where(defined, share, torch.full_like(share, float("nan"))).numpy()
