"""Deletion and insertion AUC (Petsiuk et al., "RISE: Randomized Input Sampling for
Explanation of Black-box Models", BMVC 2018, Sec. 4.1).

Deletion removes pixels in decreasing order of the map, ``P / steps`` pixels per step,
replacing them with a fill (RISE: zero; or the training mean), and records the
softmax probability of the explained class after each step; a faithful map makes
the probability fall fast, so a *lower* area is better. Insertion starts from a
blurred copy of the image (RISE: Gaussian blur, kernel 11, sigma 5; :func:`xaibench.scoring.fills.blur`,
borders replicated) and puts the
original pixels back in the same order; a *higher* area is better. The curve has
``steps + 1`` points, from the unperturbed (deletion) or fully blurred (insertion)
input to the opposite end, and its area is the trapezoid rule on an x-axis
normalised to [0, 1], so scores at different image sizes and step counts compare.

The curve itself is :func:`xaibench.scoring.curves.perturbation_curve` (shared with the
leaderboard's curve figures): every step's input is built on the device from a
precomputed rank of each pixel, and the engine streams all (sample, step) pairs in
full batches. This module adds RISE's canvases and the area.

Ties: pixels of equal saliency are removed (inserted) in a random order seeded per
sample from ``sample_seeds`` (which do not depend on the method: two methods with the
same map get the same curve), never in raster order; so a constant map scores a
random ordering's AUC, whatever corner the model looks at. The curves themselves
(:func:`deletion_curve`, :func:`insertion_curve`) are what the leaderboard's curve
figures draw, with the suite's parameters.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from xaibench.scoring import kernels
from xaibench.scoring.curves import perturbation_curve
from xaibench.scoring.engine import Engine
from xaibench.scoring.fills import blur
from xaibench_metrics.completeness import fill_baseline

FILLS = ("zero", "mean", "blur")


def _canvas(inputs: torch.Tensor, fill: str, data_mean: torch.Tensor | None, blur_size: int,
            blur_sigma: float) -> torch.Tensor:
    if fill not in FILLS:
        raise ValueError(f"fill must be one of {FILLS}, got {fill!r}")
    if fill != "blur":
        return fill_baseline(inputs, fill, data_mean)
    if blur_size < 3 or blur_size % 2 == 0:
        raise ValueError(f"blur_size is the kernel's odd width in pixels (at least 3), got {blur_size}")
    return blur(inputs, blur_sigma, radius=blur_size // 2)


def deletion_curve(inputs: torch.Tensor, targets: torch.Tensor, maps: torch.Tensor, engine: Engine,
                   base_logits: torch.Tensor, sample_seeds: Sequence[int],
                   data_mean: torch.Tensor | None = None, steps: int = 64, fill: str = "zero") -> np.ndarray:
    """RISE deletion curve: ``p_c`` with the top ``s/steps`` of the pixels removed, ``(N, steps + 1)`` float64 in [0, 1]."""
    canvas = _canvas(inputs, fill, data_mean, 11, 5.0)
    return perturbation_curve(engine, inputs, targets, maps, "deletion", canvas, steps,
                              input_scores=engine.select(base_logits, targets), sample_seeds=sample_seeds)


def deletion_auc(inputs: torch.Tensor, targets: torch.Tensor, maps: torch.Tensor, engine: Engine,
                 base_logits: torch.Tensor, sample_seeds: Sequence[int],
                 data_mean: torch.Tensor | None = None, steps: int = 64, fill: str = "zero") -> np.ndarray:
    """RISE deletion: ``AUC_[0,1]( p_c(x with the top k/steps of pixels removed) )``, ``(N,)`` in [0, 1]; lower is better."""
    return kernels.auc(deletion_curve(inputs, targets, maps, engine, base_logits, sample_seeds, data_mean, steps, fill))


def insertion_curve(inputs: torch.Tensor, targets: torch.Tensor, maps: torch.Tensor, engine: Engine,
                    base_logits: torch.Tensor, sample_seeds: Sequence[int],
                    data_mean: torch.Tensor | None = None, steps: int = 64, fill: str = "blur", blur_size: int = 11,
                    blur_sigma: float = 5.0) -> np.ndarray:
    """RISE insertion curve: ``p_c`` of the canvas with the top ``s/steps`` of the pixels restored, ``(N, steps + 1)``."""
    canvas = _canvas(inputs, fill, data_mean, blur_size, blur_sigma)
    return perturbation_curve(engine, inputs, targets, maps, "insertion", canvas, steps,
                              input_scores=engine.select(base_logits, targets), sample_seeds=sample_seeds)


def insertion_auc(inputs: torch.Tensor, targets: torch.Tensor, maps: torch.Tensor, engine: Engine,
                  base_logits: torch.Tensor, sample_seeds: Sequence[int],
                  data_mean: torch.Tensor | None = None, steps: int = 64, fill: str = "blur", blur_size: int = 11,
                  blur_sigma: float = 5.0) -> np.ndarray:
    """RISE insertion: ``AUC_[0,1]( p_c(blurred x with the top k/steps of pixels restored) )``, ``(N,)``; higher is better."""
    return kernels.auc(insertion_curve(inputs, targets, maps, engine, base_logits, sample_seeds, data_mean, steps,
                                       fill, blur_size, blur_sigma))

