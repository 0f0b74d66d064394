"""Deletion and insertion curves (RISE, Petsiuk et al. 2018) through the batched engine.

A curve follows the target-class probability while the pixels of an input are
moved, most salient first, ``P / steps`` per step, from a start image to an end
image: deletion goes from the input to a canvas with no information (a faithful
map makes the probability fall fast), insertion from that canvas back to the input
(a faithful map makes it rise fast). The canvas is the caller's: RISE uses zeros
for deletion and a blurred copy for insertion; the leaderboard's curve figures use
the training data's per-channel mean, the harness's baseline everywhere else.

In the core, not in a metric plugin, so the figures and any deletion/insertion
metric draw the same curve from the same code.

Ties: pixels of equal saliency (a flat CAM region, a constant map) have no order of
their own. Given one seed per sample, :func:`pixel_ranks` orders each tied group by a
random permutation drawn from that seed, so a flat region is removed in a seeded
random order, not top-left first (raster order would let a model that looks at one
corner make a flat map look faithful); without seeds, index order (ROAD's rule).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from xaibench.scoring.engine import Engine

MODES = ("deletion", "insertion")


def pixel_ranks(saliency: torch.Tensor, sample_seeds: Sequence[int] | None = None) -> torch.Tensor:
    """Position of each pixel in decreasing order of the map, ``(N, P)`` long (0 = most salient).

    Ties keep index order, or with ``sample_seeds`` (one per map) the order of a random
    permutation of the pixels seeded by the map's seed (the same seed, the same order).
    Raises ``ValueError`` when the number of seeds differs from the number of maps.
    """
    flat = saliency.reshape(saliency.shape[0], -1)
    if sample_seeds is None:
        order = torch.argsort(-flat, dim=1, stable=True)
    else:
        if len(sample_seeds) != flat.shape[0]:
            raise ValueError(f"{len(sample_seeds)} sample seeds for {flat.shape[0]} maps: one seed per map")
        shuffle = torch.stack([torch.randperm(flat.shape[1], generator=torch.Generator().manual_seed(int(s)))
                               for s in sample_seeds]).to(flat.device)
        order = shuffle.gather(1, torch.argsort(-flat.gather(1, shuffle), dim=1, stable=True))
    ranks = torch.empty_like(order)
    ranks.scatter_(1, order, torch.arange(flat.shape[1], device=flat.device).expand_as(order))
    return ranks


def change_steps(saliency: torch.Tensor, counts: torch.Tensor, sample_seeds: Sequence[int] | None = None
                 ) -> torch.Tensor:
    """Per pixel, the first point ``s`` of a curve whose ``counts[s]`` most salient pixels are moved (``counts``
    ``(S,)`` nondecreasing long): ``(N, P)``, the pixel is moved at point ``s`` iff its value is ``<= s``.

    Ranked one map at a time (:func:`pixel_ranks`, the same ties) and held as the smallest integer type that holds
    ``S`` (uint8 up to 256 points): 1 byte per pixel and sample where the ranks take 8, and the sort's temporaries
    are one map's, whatever the number of samples. Raises ``ValueError`` when the number of seeds differs from the
    number of maps."""
    n = saliency.shape[0]
    if sample_seeds is not None and len(sample_seeds) != n:
        raise ValueError(f"{len(sample_seeds)} sample seeds for {n} maps: one seed per map")
    dtype = torch.uint8 if len(counts) <= 256 else torch.int16 if len(counts) <= 2**15 else torch.int32
    out = torch.empty(n, saliency[0].numel(), dtype=dtype, device=saliency.device)
    for i in range(n):
        ranks = pixel_ranks(saliency[i : i + 1], None if sample_seeds is None else sample_seeds[i : i + 1])[0]
        out[i] = torch.searchsorted(counts.to(ranks.device), ranks, right=True).to(dtype)
    return out


def perturbation_curve(engine: Engine, x: torch.Tensor, target: torch.Tensor, saliency: torch.Tensor, mode: str,
                       canvas: torch.Tensor, steps: int, output: str = "prob",
                       input_scores: torch.Tensor | None = None,
                       sample_seeds: Sequence[int] | None = None) -> np.ndarray:
    """Target score after each of ``steps`` deletions (or insertions): ``(N, steps + 1)`` float64.

    ``x`` is ``(N, C, *spatial)``, ``saliency`` ``(N, *spatial)`` and ``canvas`` broadcasts
    to ``x``. Point s moves the ``round(s * P / steps)`` most salient of the P pixels
    (all channels of a pixel together): deletion puts the canvas there, insertion puts
    the input there on the canvas. Point 0 is the input (deletion) or the canvas
    (insertion), point ``steps`` the other end.

    ``input_scores``, the scores of the unperturbed inputs (which the runner already
    has), fill the curve's point that is the input itself instead of a forward pass.
    ``sample_seeds`` (one per sample) order tied pixels at random (:func:`pixel_ranks`).
    """
    if mode not in MODES:
        raise ValueError(f"mode must be 'deletion' or 'insertion', got {mode!r}")
    if steps < 1:
        raise ValueError("steps must be at least 1")
    if saliency.shape[0] != x.shape[0] or tuple(saliency.shape[1:]) != tuple(x.shape[2:]):
        raise ValueError(f"saliency {tuple(saliency.shape)} does not match inputs {tuple(x.shape)}: "
                         "expected (N, *spatial)")
    x = x.to(engine.device)
    canvas = canvas.to(x).expand_as(x)
    n, p = x.shape[0], int(np.prod(x.shape[2:]))
    counts = torch.round(torch.arange(steps + 1, device=x.device, dtype=torch.float64) * p / steps).long()
    moved_at = change_steps(saliency.to(x.device), counts, sample_seeds)
    start, end = (x, canvas) if mode == "deletion" else (canvas, x)

    # the point that is the input itself: deletion's first, insertion's last
    known = 0 if mode == "deletion" else steps
    offset = 1 if input_scores is not None and known == 0 else 0
    computed = steps if input_scores is not None else steps + 1

    def perturb(sample_idx: torch.Tensor, step_idx: torch.Tensor) -> torch.Tensor:
        step_idx = step_idx + offset
        changed = (moved_at[sample_idx] <= step_idx[:, None]).reshape(-1, 1, *x.shape[2:])
        return torch.where(changed, end[sample_idx], start[sample_idx])

    scores = engine.perturbed_scores(perturb, n, computed, target, output)
    if input_scores is not None:
        column = input_scores.to(scores).reshape(n, 1)
        scores = torch.cat([column, scores] if known == 0 else [scores, column], dim=1)
    return scores.double().cpu().numpy()
