"""Plain numpy references ("oracles") for the mask kernels, and the single-score wrappers tests use.

The production code calls :func:`xaibench.scoring.kernels.mask_scores` (every mask score of a
batch in one fused pass), :func:`~xaibench.scoring.kernels.overlap_threshold`,
:func:`~xaibench.scoring.kernels.graded_hit` and :func:`~xaibench.scoring.kernels.auc`. The tests and
the benchmarks compare those kernels with the obvious numpy formulation written here,
independently of the kernels (no shared helper), and call the single-score wrappers
below where a test checks one score against a peer library (Quantus).

Ties follow the kernels' rule (:mod:`xaibench.scoring.kernels`): a tied peak hits with the
fraction of its pixels in the mask, and a top-k cut through equal values takes each
tied pixel with weight ``(k - #strictly above) / #tied``.
"""
from __future__ import annotations

import numpy as np

from xaibench.scoring import kernels

# -- single-score wrappers over the fused kernel (tests and benchmarks only) ---------------------


def pointing_game(saliency: np.ndarray, dist: np.ndarray, tolerance: float) -> np.ndarray:
    """Pointing game (Zhang et al. 2016) of ``(N, *spatial)`` maps: 1 if the peak lies within ``tolerance``.

    ``dist`` comes from :func:`xaibench.scoring.kernels.distance_to_mask` (+inf everywhere on an
    empty mask). Tied maxima count as the fraction of them that hit; empty masks give NaN.
    """
    within = np.asarray(dist) <= 0  # the mask itself: distance 0
    return kernels.mask_scores(saliency, within, tolerance=float(tolerance), dist=dist).pointing


def relevance_mass(saliency: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Relevance mass accuracy (Arras et al. 2022): ``sum(L * M) / sum(L)``; NaN on an empty mask or zero map.

    Raises :class:`xaibench.scoring.kernels.KernelInputError` on negative maps (apply a sign rule first).
    """
    scores = kernels.mask_scores(saliency, masks)
    if scores.negative:
        raise kernels.KernelInputError("relevance mass needs non-negative maps; apply a sign rule first")
    return scores.mass


def overlap_top_k(saliency: np.ndarray, masks: np.ndarray, fraction: float) -> dict[str, np.ndarray]:
    """IoU, Dice and coverage of the map's top ``round(fraction * P)`` pixels; NaN on empty masks."""
    return kernels.mask_scores(saliency, masks, (fraction,)).top_k[fraction]


def rank_accuracy(saliency: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Relevance rank accuracy (Arras et al. 2022): share of the top-|M| pixels inside the mask M."""
    return kernels.mask_scores(saliency, masks).rank


# -- numpy references ------------------------------------------------------------------------------


def pointing_game_ref(saliency: np.ndarray, dist: np.ndarray, tolerance: float) -> np.ndarray:
    """Reference for :func:`pointing_game`: the share of the tied peak pixels within ``tolerance``."""
    sal = saliency.reshape(saliency.shape[0], -1)
    d = dist.reshape(dist.shape[0], -1)
    out = np.full(sal.shape[0], np.nan)
    for i in range(sal.shape[0]):
        if np.isfinite(d[i]).any():
            peak = sal[i] == sal[i].max()
            out[i] = (d[i][peak] <= tolerance).mean()
    return out


def relevance_mass_ref(saliency: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Reference for :func:`relevance_mass`, in float64."""
    sal = saliency.reshape(saliency.shape[0], -1).astype(np.float64)
    m = masks.reshape(masks.shape[0], -1)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = (sal * m).sum(1) / sal.sum(1)
    return np.where(m.any(1) & (sal.sum(1) > 0), out, np.nan)


def soft_top_k_ref(sal: np.ndarray, k: int) -> np.ndarray:
    """Selection weights of the top ``k`` values of one flat row, ties shared equally."""
    if k <= 0:
        return np.zeros_like(sal, dtype=np.float64)
    t = np.sort(sal)[::-1][k - 1]
    above = sal > t
    tied = sal == t
    return above + tied * (k - above.sum()) / tied.sum()


def overlap_ref(selection: np.ndarray, m: np.ndarray) -> dict[str, np.ndarray]:
    """IoU, Dice, coverage (recall) and precision of ``(N, P)`` selection weights against ``(N, P)`` masks; NaN on
    empty masks, and precision NaN on an empty selection too."""
    inter, size, area = (selection * m).sum(1), selection.sum(1), m.sum(1).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        scores = {"iou": inter / (size + area - inter), "dice": 2 * inter / (size + area), "coverage": inter / area,
                  "precision": inter / size}
    return {k: np.where(area > 0, v, np.nan) for k, v in scores.items()}


def overlap_top_k_ref(saliency: np.ndarray, masks: np.ndarray, fraction: float) -> dict[str, np.ndarray]:
    """Reference for :func:`overlap_top_k`."""
    sal = saliency.reshape(saliency.shape[0], -1)
    m = masks.reshape(masks.shape[0], -1)
    k = max(1, round(fraction * sal.shape[1]))
    return overlap_ref(np.stack([soft_top_k_ref(row, k) for row in sal]), m)


def overlap_threshold_ref(saliency: np.ndarray, masks: np.ndarray, threshold: float) -> dict[str, np.ndarray]:
    """Reference for :func:`xaibench.scoring.kernels.overlap_threshold`."""
    sal = saliency.reshape(saliency.shape[0], -1)
    return overlap_ref((sal >= np.float32(threshold)).astype(np.float64), masks.reshape(masks.shape[0], -1))


def rank_accuracy_ref(saliency: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Reference for :func:`rank_accuracy`."""
    sal = saliency.reshape(saliency.shape[0], -1)
    m = masks.reshape(masks.shape[0], -1)
    sel = np.stack([soft_top_k_ref(row, int(mi.sum())) for row, mi in zip(sal, m)])
    return overlap_ref(sel, m)["coverage"]


def graded_hit_ref(saliency: np.ndarray, regions: np.ndarray, top_level: int) -> np.ndarray:
    """Reference for :func:`xaibench.scoring.kernels.graded_hit`."""
    sal = saliency.reshape(saliency.shape[0], -1)
    lv = regions.reshape(regions.shape[0], -1).astype(np.float64)
    out = np.full(sal.shape[0], np.nan)
    for i in range(sal.shape[0]):
        if (lv[i] > 0).any():
            out[i] = lv[i][sal[i] == sal[i].max()].mean() / top_level
    return out


def auc_ref(curves: np.ndarray) -> np.ndarray:
    """Reference for :func:`xaibench.scoring.kernels.auc`: numpy's trapezoid rule on an even [0, 1] grid."""
    return np.trapezoid(curves, dx=1.0 / (curves.shape[1] - 1), axis=1)
