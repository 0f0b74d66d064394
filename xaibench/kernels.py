"""Numba kernels for mask-based scores, with plain numpy references for the tests.

Every localization score is a cheap reduction of one saliency map against one
mask, but it is computed for every map x metric x threshold of a run, so the
kernels work on flattened ``(N, P)`` arrays, parallel over maps, one pass per map.
Each ``*_ref`` function is the obvious numpy formulation the kernel must equal.

Ties are scored as their expectation under random tie-breaking, everywhere: a
peak shared by several pixels hits with the fraction of them inside the mask,
and a top-k selection that cuts through a run of equal values takes each tied
pixel with weight ``(k - #strictly above) / #tied``. A constant map therefore
scores chance on every metric, never 1.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange
from scipy import ndimage


class KernelInputError(ValueError):
    """Saliency maps or masks that a kernel refuses (NaN, wrong shapes)."""


def as_rows(saliency: np.ndarray, masks: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Flatten ``(N, *spatial)`` maps (and masks) to contiguous ``(N, P)`` rows, refusing NaN."""
    saliency = np.asarray(saliency)
    if saliency.ndim < 2:
        raise KernelInputError(f"saliency maps must be (N, *spatial), got shape {saliency.shape}")
    sal = np.ascontiguousarray(saliency.reshape(saliency.shape[0], -1), dtype=np.float32)
    if not np.isfinite(sal).all():
        raise KernelInputError("saliency maps contain NaN or infinite values")
    if masks is None:
        return sal, None
    if masks.shape != saliency.shape:
        raise KernelInputError(f"masks of shape {masks.shape} do not match saliency maps of shape {saliency.shape}")
    return sal, np.ascontiguousarray(masks.reshape(masks.shape[0], -1), dtype=np.bool_)


def distance_to_mask(masks: np.ndarray) -> np.ndarray:
    """Euclidean distance of every pixel to the nearest mask pixel, ``(N, *spatial)`` float32.

    Computed once per mask and shared by every map and tolerance; empty masks give +inf.
    """
    out = np.empty(masks.shape, dtype=np.float32)
    for i, m in enumerate(masks):
        out[i] = ndimage.distance_transform_edt(~m) if m.any() else np.inf
    return out


@njit(parallel=True, cache=True)
def _pointing_game(sal: np.ndarray, dist: np.ndarray, has_mask: np.ndarray, tol: float) -> np.ndarray:
    n, p = sal.shape
    out = np.empty(n, dtype=np.float64)
    for i in prange(n):
        if not has_mask[i]:
            out[i] = np.nan
            continue
        best = sal[i, 0]
        for j in range(1, p):
            best = max(best, sal[i, j])
        ties = 0
        hits = 0
        for j in range(p):
            if sal[i, j] == best:
                ties += 1
                if dist[i, j] <= tol:
                    hits += 1
        out[i] = hits / ties
    return out


def pointing_game(saliency: np.ndarray, dist: np.ndarray, tolerance: float) -> np.ndarray:
    """Pointing game (Zhang et al. 2016): 1 if the map's peak lies within ``tolerance`` of the mask.

    ``dist`` comes from :func:`distance_to_mask`. Tied maxima count as the fraction
    of them that hit (the expected score under random tie-breaking), so a constant
    map scores chance, not 1. Empty masks give NaN.
    """
    sal, _ = as_rows(saliency)
    d = np.ascontiguousarray(dist.reshape(dist.shape[0], -1), dtype=np.float32)
    has_mask = np.isfinite(d).any(axis=1)
    return _pointing_game(sal, d, has_mask, float(tolerance))


def pointing_game_ref(saliency: np.ndarray, dist: np.ndarray, tolerance: float) -> np.ndarray:
    sal = saliency.reshape(saliency.shape[0], -1)
    d = dist.reshape(dist.shape[0], -1)
    out = np.full(sal.shape[0], np.nan)
    for i in range(sal.shape[0]):
        if np.isfinite(d[i]).any():
            peak = sal[i] == sal[i].max()
            out[i] = (d[i][peak] <= tolerance).mean()
    return out


# -- relevance mass ---------------------------------------------------------------------------
@njit(parallel=True, cache=True)
def _mass(sal: np.ndarray, mask: np.ndarray) -> np.ndarray:
    n, p = sal.shape
    out = np.empty(n, dtype=np.float64)
    for i in prange(n):
        inside = 0.0
        total = 0.0
        area = 0
        for j in range(p):
            total += sal[i, j]
            if mask[i, j]:
                inside += sal[i, j]
                area += 1
        out[i] = inside / total if area > 0 and total > 0 else np.nan
    return out


def relevance_mass(saliency: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Share of the map's (non-negative) mass inside the mask: ``sum(L * M) / sum(L)``.

    NaN on an empty mask or an all-zero map (both make the ratio undefined).
    Negative values are refused: the caller chooses the sign handling.
    """
    sal, m = as_rows(saliency, masks)
    if (sal < 0).any():
        raise KernelInputError("relevance mass needs non-negative maps; apply a sign rule (positive or abs) first")
    return _mass(sal, m)


def relevance_mass_ref(saliency: np.ndarray, masks: np.ndarray) -> np.ndarray:
    sal = saliency.reshape(saliency.shape[0], -1).astype(np.float64)
    m = masks.reshape(masks.shape[0], -1)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = (sal * m).sum(1) / sal.sum(1)
    return np.where(m.any(1) & (sal.sum(1) > 0), out, np.nan)


# -- top-k selection and overlap --------------------------------------------------------------
_SELECT_BINS = 4096


@njit(cache=True)
def _bin(v: float, lo: float, scale: float) -> int:
    return min(_SELECT_BINS - 1, int((v - lo) * scale))


@njit(cache=True)
def _kth_largest(row: np.ndarray, k: int) -> float:
    """The k-th largest value of a finite row (1 <= k <= len) in O(P): a histogram select.

    One pass finds the range, one bins the values, and only the values of the bin
    holding the k-th largest (about P / 4096 of them on spread-out maps) are sorted.
    numba's ``np.partition`` was the slowest step of every top-k score.
    """
    p = row.shape[0]
    lo = np.float64(row[0])
    hi = lo
    for j in range(1, p):
        v = np.float64(row[j])
        if v < lo:
            lo = v
        elif v > hi:
            hi = v
    if lo == hi:
        return hi
    scale = _SELECT_BINS / (hi - lo)
    hist = np.zeros(_SELECT_BINS, np.int64)
    for j in range(p):
        hist[_bin(row[j], lo, scale)] += 1
    above = 0
    b = _SELECT_BINS - 1
    while above + hist[b] < k:
        above += hist[b]
        b -= 1
    candidates = np.empty(hist[b], row.dtype)
    c = 0
    for j in range(p):
        if _bin(row[j], lo, scale) == b:
            candidates[c] = row[j]
            c += 1
    candidates.sort()
    return candidates[c - (k - above)]


@njit(parallel=True, cache=True)
def _topk_cut(sal: np.ndarray, k: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row: the k-th largest value ``t`` and the weight given to pixels equal to ``t``."""
    n, p = sal.shape
    cut = np.empty(n, dtype=np.float32)
    weight = np.empty(n, dtype=np.float64)
    for i in prange(n):
        if k[i] <= 0:
            cut[i] = np.inf
            weight[i] = 0.0
            continue
        t = _kth_largest(sal[i], min(k[i], p))
        above = 0
        tied = 0
        for j in range(p):
            if sal[i, j] > t:
                above += 1
            elif sal[i, j] == t:
                tied += 1
        cut[i] = t
        weight[i] = (min(k[i], p) - above) / tied
    return cut, weight


@njit(parallel=True, cache=True)
def _overlap(sal: np.ndarray, mask: np.ndarray, cut: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Per row: (intersection, selected size, mask size) of a soft selection and the mask."""
    n, p = sal.shape
    out = np.empty((n, 3), dtype=np.float64)
    for i in prange(n):
        inter = 0.0
        size = 0.0
        area = 0.0
        for j in range(p):
            w = 1.0 if sal[i, j] > cut[i] else (weight[i] if sal[i, j] == cut[i] else 0.0)
            size += w
            if mask[i, j]:
                area += 1.0
                inter += w
        out[i, 0] = inter
        out[i, 1] = size
        out[i, 2] = area
    return out


OVERLAPS = ("iou", "dice", "coverage")


def _overlap_scores(counts: np.ndarray) -> dict[str, np.ndarray]:
    inter, size, area = counts.T
    with np.errstate(invalid="ignore", divide="ignore"):
        scores = {
            "iou": inter / (size + area - inter),
            "dice": 2 * inter / (size + area),
            "coverage": inter / area,
        }
    return {k: np.where(area > 0, v, np.nan) for k, v in scores.items()}


def overlap_top_k(saliency: np.ndarray, masks: np.ndarray, fraction: float) -> dict[str, np.ndarray]:
    """IoU, Dice and coverage (recall of the mask) of the map's top ``fraction`` of pixels.

    The selection holds exactly ``round(fraction * P)`` pixels (ties weighted, see the
    module doc). NaN on empty masks.
    """
    if not 0.0 < fraction <= 1.0:
        raise KernelInputError(f"top-k fraction must be in (0, 1], got {fraction}")
    sal, m = as_rows(saliency, masks)
    k = np.full(sal.shape[0], max(1, round(fraction * sal.shape[1])), dtype=np.int64)
    return _overlap_scores(_overlap(sal, m, *_topk_cut(sal, k)))


def overlap_threshold(saliency: np.ndarray, masks: np.ndarray, threshold: float) -> dict[str, np.ndarray]:
    """IoU, Dice and coverage of ``{L >= threshold}`` (maps already scaled as the caller wants)."""
    sal, m = as_rows(saliency, masks)
    n = sal.shape[0]
    return _overlap_scores(_overlap(sal, m, np.full(n, threshold, np.float32), np.ones(n)))


def rank_accuracy(saliency: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Relevance rank accuracy (Arras et al. 2022): share of the top-|M| pixels inside the mask M."""
    sal, m = as_rows(saliency, masks)
    return _overlap_scores(_overlap(sal, m, *_topk_cut(sal, m.sum(1).astype(np.int64))))["coverage"]


def _soft_top_k_ref(sal: np.ndarray, k: int) -> np.ndarray:
    """Selection weights of the top ``k`` values, ties shared equally."""
    if k <= 0:
        return np.zeros_like(sal, dtype=np.float64)
    t = np.sort(sal)[::-1][k - 1]
    above = sal > t
    tied = sal == t
    return above + tied * (k - above.sum()) / tied.sum()


def _overlap_ref(selection: np.ndarray, m: np.ndarray) -> dict[str, np.ndarray]:
    inter, size, area = (selection * m).sum(1), selection.sum(1), m.sum(1).astype(np.float64)
    return _overlap_scores(np.stack([inter, size, area], 1))


def overlap_top_k_ref(saliency: np.ndarray, masks: np.ndarray, fraction: float) -> dict[str, np.ndarray]:
    sal = saliency.reshape(saliency.shape[0], -1)
    m = masks.reshape(masks.shape[0], -1)
    k = max(1, round(fraction * sal.shape[1]))
    return _overlap_ref(np.stack([_soft_top_k_ref(row, k) for row in sal]), m)


def overlap_threshold_ref(saliency: np.ndarray, masks: np.ndarray, threshold: float) -> dict[str, np.ndarray]:
    sal = saliency.reshape(saliency.shape[0], -1)
    return _overlap_ref((sal >= np.float32(threshold)).astype(np.float64), masks.reshape(masks.shape[0], -1))


def rank_accuracy_ref(saliency: np.ndarray, masks: np.ndarray) -> np.ndarray:
    sal = saliency.reshape(saliency.shape[0], -1)
    m = masks.reshape(masks.shape[0], -1)
    sel = np.stack([_soft_top_k_ref(row, int(mi.sum())) for row, mi in zip(sal, m)])
    return _overlap_ref(sel, m)["coverage"]


# -- graded hit -------------------------------------------------------------------------------
@njit(parallel=True, cache=True)
def _graded_hit(sal: np.ndarray, levels: np.ndarray, top: float) -> np.ndarray:
    n, p = sal.shape
    out = np.empty(n, dtype=np.float64)
    for i in prange(n):
        relevant = False
        best = sal[i, 0]
        for j in range(p):
            if levels[i, j] > 0:
                relevant = True
            best = max(best, sal[i, j])
        if not relevant:
            out[i] = np.nan
            continue
        ties = 0
        total = 0.0
        for j in range(p):
            if sal[i, j] == best:
                ties += 1
                total += levels[i, j]
        out[i] = total / ties / top
    return out


def graded_hit(saliency: np.ndarray, regions: np.ndarray, top_level: int) -> np.ndarray:
    """Seed 001's graded hit: the region level at the map's peak divided by the top level.

    Levels run from ``top_level`` (fully relevant) down to negative values (distractors
    penalised); tied peaks average their levels. NaN where no pixel has a positive level.
    """
    if top_level <= 0:
        raise KernelInputError(f"the region map's top level must be positive, got {top_level}")
    sal, _ = as_rows(saliency)
    if regions.shape != saliency.shape:
        raise KernelInputError(f"region maps of shape {regions.shape} do not match saliency maps of shape {saliency.shape}")
    lv = np.ascontiguousarray(regions.reshape(regions.shape[0], -1), dtype=np.float64)
    return _graded_hit(sal, lv, float(top_level))


def graded_hit_ref(saliency: np.ndarray, regions: np.ndarray, top_level: int) -> np.ndarray:
    sal = saliency.reshape(saliency.shape[0], -1)
    lv = regions.reshape(regions.shape[0], -1).astype(np.float64)
    out = np.full(sal.shape[0], np.nan)
    for i in range(sal.shape[0]):
        if (lv[i] > 0).any():
            out[i] = lv[i][sal[i] == sal[i].max()].mean() / top_level
    return out


# -- area under a curve -----------------------------------------------------------------------
@njit(parallel=True, cache=True)
def _auc(curves: np.ndarray) -> np.ndarray:
    n, s = curves.shape
    out = np.empty(n, dtype=np.float64)
    for i in prange(n):
        acc = 0.0
        for j in range(1, s):
            acc += 0.5 * (curves[i, j - 1] + curves[i, j])
        out[i] = acc / (s - 1)
    return out


def auc(curves: np.ndarray) -> np.ndarray:
    """Trapezoid-rule area under ``(N, S)`` curves sampled evenly on a [0, 1] x-axis."""
    c = np.ascontiguousarray(curves, dtype=np.float64)
    if c.ndim != 2 or c.shape[1] < 2:
        raise KernelInputError(f"curves must be (N, S) with S >= 2 points, got shape {c.shape}")
    if not np.isfinite(c).all():
        raise KernelInputError("curves contain NaN or infinite values")
    return _auc(c)


def auc_ref(curves: np.ndarray) -> np.ndarray:
    return np.trapezoid(curves, dx=1.0 / (curves.shape[1] - 1), axis=1)
