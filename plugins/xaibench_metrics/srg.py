"""Symmetric Relevance Gain (Blücher, Vielhaben and Strodthoff, "Decoupling Pixel
Flipping and Occlusion Strategy for Consistent XAI Benchmarks", TMLR 2024, Sec. 3).

Pixel flipping removes pixels in two orders: most influential first (MIF, the
deletion curve of RISE) and least influential first (LIF, the same with the map
negated). A faithful map makes the MIF curve fall fast and the LIF curve stay high;
the difference of the two areas cancels most of the bias the fill itself introduces
(out-of-distribution inputs lower both curves alike):

    SRG = AUC_[0,1](LIF curve) - AUC_[0,1](MIF curve)

in [-1, 1], higher is better; 0 for a map that orders nothing (a constant map, both
orders remove pixels in index order) or for a model that ignores its input. The
curves are :func:`xaibench.scoring.curves.perturbation_curve` (the deletion curve of
``deletion-auc``): the target-class probability after each of ``steps`` removals of
``P / steps`` pixels (all channels of a pixel together), point 0 the unperturbed
input. Removed pixels take the ``fill`` (:mod:`xaibench.scoring.fills`): ``mean`` (default,
the training data's per-channel mean, neutral on average), ``zero`` or ``blur`` (a
Gaussian blur of the input, standard deviation ``blur_sigma`` pixels).

Cost: ``2 * steps`` forward passes per sample. Quantus 0.6 has no SRG; the test
checks it against ``deletion-auc`` of the map and of the negated map and against
curves drawn by hand.
"""
from __future__ import annotations


import numpy as np
import torch

from xaibench.scoring import kernels
from xaibench.scoring.curves import perturbation_curve
from xaibench.scoring.engine import Engine
from xaibench.scoring.fills import fill_like

FILLS = ("zero", "mean", "blur")


def symmetric_relevance_gain(inputs: torch.Tensor, targets: torch.Tensor, maps: torch.Tensor, engine: Engine,
                             base_logits: torch.Tensor, data_mean: torch.Tensor | None = None, steps: int = 32,
                             fill: str = "mean", blur_sigma: float = 2.0) -> np.ndarray:
    """``AUC(least influential first) - AUC(most influential first)`` of ``p_c``: ``(N,)`` float64 in [-1, 1].

    Raises :class:`ValueError` for an unknown ``fill``, ``mean`` without a training mean, or ``steps < 1``.
    """
    canvas = fill_like(inputs, fill, data_mean, sigma=blur_sigma, allowed=FILLS)
    start = engine.select(base_logits, targets, "prob")
    mif = perturbation_curve(engine, inputs, targets, maps, "deletion", canvas, steps, input_scores=start)
    lif = perturbation_curve(engine, inputs, targets, -maps, "deletion", canvas, steps, input_scores=start)
    return kernels.auc(lif) - kernels.auc(mif)
