"""Numba kernels for mask-based scores, with plain numpy references for the tests.

Every localization score is a cheap reduction of one saliency map against one
mask, but it is computed for every map x metric x threshold of a run, so the
kernels work on flattened ``(N, P)`` arrays, parallel over maps, one pass per map.
Each ``*_ref`` function is the obvious numpy formulation the kernel must equal.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange
from scipy import ndimage


class KernelInputError(ValueError):
    """Saliency maps or masks that a kernel refuses (NaN, wrong shapes)."""


def as_rows(saliency: np.ndarray, masks: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Flatten ``(N, *spatial)`` maps (and masks) to contiguous ``(N, P)`` rows, refusing NaN."""
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
            if sal[i, j] > best:
                best = sal[i, j]
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
