"""Numba kernels for mask-based scores (their plain numpy references live in ``tests/oracles.py``).

Kernels work on flattened ``(N, P)`` arrays, parallel over maps. One fused kernel
(:func:`mask_scores`) gives the pointing game, relevance mass, rank accuracy and
top-k overlaps of a batch together: one vectorised pass over each map, then work
only on the few percent of pixels that can be in a top-k selection.

Ties score their expectation under random tie-breaking: a peak shared by several
pixels hits with the fraction of them inside the mask; a top-k cut through equal
values takes each tied pixel with weight ``(k - #above) / #tied`` (a constant map scores chance).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from xaibench.storage.jit import njit, prange  # numba loads at the first kernel call


class KernelInputError(ValueError):
    """Saliency maps or masks that a kernel refuses (NaN, wrong shapes)."""


def as_rows(saliency: np.ndarray, masks: np.ndarray | None = None,
            check_finite: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
    """Flatten ``(N, *spatial)`` maps (and masks) to contiguous ``(N, P)`` float32 (bool) rows, refusing NaN.

    Kernels that sum every row anyway pass ``check_finite=False`` and test the sums:
    a separate check would be a whole extra pass over the maps. Raises
    :class:`KernelInputError` for fewer than 2 dimensions, NaN or infinite values, or
    masks whose shape differs from the maps'.
    """
    saliency = np.asarray(saliency)
    if saliency.ndim < 2:
        raise KernelInputError(f"saliency maps must be (N, *spatial), got shape {saliency.shape}")
    sal = np.ascontiguousarray(saliency.reshape(saliency.shape[0], -1), dtype=np.float32)
    if check_finite and not np.isfinite(sal).all():
        raise KernelInputError("saliency maps contain NaN or infinite values")
    if masks is None:
        return sal, None
    if masks.shape != saliency.shape:
        raise KernelInputError(f"masks of shape {masks.shape} do not match saliency maps of shape {saliency.shape}")
    return sal, np.ascontiguousarray(masks.reshape(masks.shape[0], -1), dtype=np.bool_)


def distance_to_mask(masks: np.ndarray) -> np.ndarray:
    """Euclidean distance of every pixel to the nearest mask pixel, ``(N, *spatial)`` float32, in pixels.

    ``masks``: ``(N, *spatial)`` bool. Computed once per mask (scipy's exact EDT) and
    shared by every map and tolerance; 0 inside the mask; an empty mask gives +inf everywhere.
    """
    from scipy import ndimage

    out = np.empty(masks.shape, dtype=np.float32)
    for i, m in enumerate(masks):
        out[i] = ndimage.distance_transform_edt(~m) if m.any() else np.inf
    return out


# -- fused localization scores ----------------------------------------------------------------
#: Values sampled per row to find a floor that the largest ``k`` values almost surely clear, and
#: its margin in standard deviations of a sample rank. Rows whose floor fails (about 1 in 10^4,
#: or adversarial ones) are rescanned whole: the result is exact either way.
_SAMPLE = 1024
_SPREAD = 4.0
_BINS = 1024  # histogram of the candidates above the floor: a few per bin
_REDUCE = {"reassoc", "contract"}  # lets numba vectorise the sums; NaN handling stays exact


@njit(cache=True)
def _select(a: np.ndarray, r: int) -> float:
    """The ``r``-th smallest value of ``a`` (0-based) by quickselect, reordering ``a`` in place.

    Expected O(len): a sort of the same sample was the slowest step of every top-k score.
    """
    lo, hi = 0, a.shape[0] - 1
    while lo < hi:
        pivot = a[(lo + hi) // 2]
        i, j = lo, hi
        while i <= j:
            while a[i] < pivot:
                i += 1
            while a[j] > pivot:
                j -= 1
            if i <= j:
                a[i], a[j] = a[j], a[i]
                i += 1
                j -= 1
        if r <= j:
            hi = j
        elif r >= i:
            lo = i
        else:
            break  # a[j + 1 : i] all equal the pivot
    return a[r]


@njit(cache=True)
def _floor(row: np.ndarray, k: int) -> np.float32:
    """A value that at least ``k`` of the row's values exceed or equal, with high probability.

    The ``k``-th largest of an evenly strided sample, lowered by ``_SPREAD`` standard
    deviations of its rank: the candidates kept above it are a few percent more than k.
    """
    p = row.shape[0]
    s = min(_SAMPLE, p)
    stride = p // s
    sample = np.empty(s, row.dtype)
    for j in range(s):
        sample[j] = row[j * stride]
    q = k / p
    rank = int(np.ceil(q * s + _SPREAD * np.sqrt(s * q * (1.0 - q)) + 2.0))  # descending, 0-based
    return np.float32(-np.inf) if rank >= s else _select(sample, s - 1 - rank)


@njit(cache=True)
def _candidates(row: np.ndarray, floor: np.float32, values: np.ndarray, index: np.ndarray) -> int:
    """Values ``>= floor`` and their positions (a float32 floor: no conversion per pixel)."""
    c = 0
    for j in range(row.shape[0]):
        v = row[j]
        if v >= floor:
            values[c] = v
            index[c] = j
            c += 1
    return c


@njit(cache=True)
def _top_k_inside(values: np.ndarray, inside: np.ndarray, bins: np.ndarray, hist: np.ndarray, k: int) -> float:
    """How many of the ``k`` largest candidates lie in the mask, the values tied at the cut shared.

    ``hist`` counts candidates per (bin, inside) pair; walking it from the top finds the
    bin holding the cut, and only that bin's few members are sorted.
    """
    above, inside_above = 0, 0
    b = _BINS - 1
    while above + hist[2 * b] + hist[2 * b + 1] < k:
        above += hist[2 * b] + hist[2 * b + 1]
        inside_above += hist[2 * b + 1]
        b -= 1
    members = np.empty(hist[2 * b] + hist[2 * b + 1], values.dtype)
    flags = np.empty(members.shape[0], np.bool_)
    c = 0
    for j in range(values.shape[0]):
        if bins[j] == b:
            members[c] = values[j]
            flags[c] = inside[j]
            c += 1
    r = k - above  # the cut is the r-th largest member of bin b
    cut = _select(members.copy(), c - r)
    greater, tied, inside_greater, inside_tied = 0, 0, 0, 0
    for j in range(c):
        if members[j] > cut:
            greater += 1
            inside_greater += flags[j]
        elif members[j] == cut:
            tied += 1
            inside_tied += flags[j]
    return inside_above + inside_greater + inside_tied * (r - greater) / tied


@njit(parallel=True, cache=True, fastmath=_REDUCE)
def _mask_scores(sal: np.ndarray, mask: np.ndarray, dist: np.ndarray, tol: float,
                 ks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row: (total, inside, area, negatives, peak ties, peak hits) and top-k intersections.

    One vectorised pass from memory sums the row; every other step works on the few
    candidates above a sampled floor (the peak is among them), from cache. Column 0 of
    the intersections is rank accuracy's ``k = |mask|``, the others follow ``ks``.
    A NaN total marks a row holding NaN or infinity.
    """
    n, p = sal.shape
    stats = np.zeros((n, 6))
    inter = np.full((n, ks.shape[0] + 1), np.nan)
    use_dist = dist.shape[0] == n
    for i in prange(n):
        row = sal[i]
        m = mask[i]
        total, inside, area, negatives = 0.0, np.float32(0.0), np.int32(0), np.int32(0)
        for j in range(p):
            v = row[j]
            total += v
            inside += v if m[j] else np.float32(0.0)
            area += np.int32(m[j])
            negatives += np.int32(v < 0)
        stats[i, 0], stats[i, 1], stats[i, 2], stats[i, 3] = total, inside, area, negatives
        if not np.isfinite(total) or area == 0:
            continue
        k_max = area
        for s in range(ks.shape[0]):
            k_max = max(k_max, ks[s])
        values = np.empty(p, row.dtype)
        index = np.empty(p, np.int32)
        c = _candidates(row, _floor(row, k_max), values, index)
        if c < k_max:  # the sampled floor was too high: every value is a candidate
            c = _candidates(row, np.float32(-np.inf), values, index)
        values = values[:c]
        lo, peak = values[0], values[0]
        for j in range(c):
            lo = min(lo, values[j])
            peak = max(peak, values[j])
        inside_flags = np.empty(c, np.bool_)
        ties, hits = 0, 0
        for j in range(c):
            inside_flags[j] = m[index[j]]
            if values[j] == peak:
                ties += 1
                hits += (dist[i, index[j]] <= tol) if use_dist else inside_flags[j]
        stats[i, 4], stats[i, 5] = ties, hits
        scale = _BINS / (np.float64(peak) - np.float64(lo)) if peak > lo else 0.0
        bins = np.empty(c, np.int16)
        hist = np.zeros(2 * _BINS, np.int32)
        for j in range(c):
            b = min(_BINS - 1, int((values[j] - lo) * scale))
            bins[j] = b
            hist[2 * b + inside_flags[j]] += 1
        for s in range(ks.shape[0] + 1):
            k = area if s == 0 else ks[s - 1]  # both at most P (top_k_size)
            if ties == p or k == p:  # a constant map: every pixel tied, each selected with weight k / P
                inter[i, s] = area * k / p
            else:
                inter[i, s] = _top_k_inside(values, inside_flags, bins, hist, k)
    return stats, inter


OVERLAPS = ("iou", "dice", "coverage", "precision")


def _overlap_scores(counts: np.ndarray) -> dict[str, np.ndarray]:
    """IoU, Dice, coverage (recall) and precision from ``(N, 3)`` rows of (intersection, selected size, mask area);
    NaN on empty masks (precision also on an empty selection)."""
    inter, size, area = counts.T
    with np.errstate(invalid="ignore", divide="ignore"):
        scores = {"iou": inter / (size + area - inter), "dice": 2 * inter / (size + area), "coverage": inter / area,
                  "precision": inter / size}
    return {k: np.where(area > 0, v, np.nan) for k, v in scores.items()}


def top_k_size(fraction: float, pixels: int) -> int:
    """The number of pixels a top-``fraction`` selection holds: ``round(fraction * P)``, at least 1.

    Raises :class:`KernelInputError` unless ``0 < fraction <= 1``.
    """
    if not 0.0 < fraction <= 1.0:
        raise KernelInputError(f"top-k fraction must be in (0, 1], got {fraction}")
    return max(1, round(fraction * pixels))


@dataclass(frozen=True)
class MaskScores:
    """Every mask score of a batch of maps, from one fused kernel call (:func:`mask_scores`).

    Each array is ``(N,)`` float64 in [0, 1] (``top_k[fraction]``: ``iou``, ``dice``, ``coverage``, ``precision``),
    NaN on an empty mask (``mass`` also on a map summing to <= 0). ``mass`` is a share
    of the map's mass only for non-negative maps (``negative`` False): signed maps need a sign rule.
    """

    pointing: np.ndarray
    mass: np.ndarray
    rank: np.ndarray
    top_k: dict[float, dict[str, np.ndarray]]
    negative: bool


def mask_scores(saliency: np.ndarray, masks: np.ndarray, fractions: tuple[float, ...] = (),
                tolerance: float = 0.0, dist: np.ndarray | None = None) -> MaskScores:
    """Pointing game, relevance mass, rank accuracy and top-k overlaps of ``(N, *spatial)`` maps in one pass.

    - pointing game (Zhang et al. 2016): does the peak lie within ``tolerance`` of the
      mask? (tolerance 0: in the mask; otherwise ``dist`` from :func:`distance_to_mask`,
      computed here if not given);
    - relevance mass accuracy (Arras et al. 2022): ``sum(L * M) / sum(L)``, NaN on an all-zero map;
    - relevance rank accuracy (Arras et al. 2022): the share of the top-|M| pixels in M;
    - for each of ``fractions``: IoU, Dice, coverage and precision of the top ``round(fraction * P)`` pixels.

    ``saliency``: ``(N, *spatial)`` real; ``masks`` and ``dist``: the same shape. Ties are
    scored by their expectation (module doc): a constant map scores chance. Raises
    :class:`KernelInputError` on NaN maps, mismatched shapes or a fraction outside (0, 1].
    """
    sal, m = as_rows(saliency, masks, check_finite=False)
    n, p = sal.shape
    ks = np.array([top_k_size(f, p) for f in fractions], dtype=np.int64)
    if tolerance > 0 and dist is None:
        dist = distance_to_mask(masks)
    d = np.ascontiguousarray(dist.reshape(n, -1), dtype=np.float32) if dist is not None and tolerance > 0 \
        else np.zeros((0, 0), np.float32)
    if d.size and d.shape != sal.shape:
        raise KernelInputError(f"distance maps of shape {dist.shape} do not match saliency maps of shape {saliency.shape}")
    stats, inter = _mask_scores(sal, m, d, np.float32(tolerance), ks)  # tolerance at the distances' precision
    total, inside, area, negatives, ties, hits = stats.T
    if not np.isfinite(total).all():
        raise KernelInputError("saliency maps contain NaN or infinite values")
    empty = area == 0
    with np.errstate(invalid="ignore", divide="ignore"):
        pointing = np.where(empty, np.nan, hits / ties)
        mass = np.where(empty | (total <= 0), np.nan, inside / total)
    return MaskScores(pointing=pointing, mass=mass, rank=np.where(empty, np.nan, inter[:, 0] / np.maximum(area, 1)),
                      top_k={f: _overlap_scores(np.stack([inter[:, s + 1], np.full(n, ks[s], np.float64), area], 1))
                             for s, f in enumerate(fractions)},
                      negative=bool(negatives.any()))


# -- threshold selection ----------------------------------------------------------------------
@njit(parallel=True, cache=True)
def _overlap_threshold(sal: np.ndarray, mask: np.ndarray, threshold: float) -> np.ndarray:
    """Per row: (intersection, selected size, mask size) of ``{L >= threshold}`` and the mask."""
    n, p = sal.shape
    out = np.empty((n, 3), dtype=np.float64)
    for i in prange(n):
        inter, size, area = 0.0, 0.0, 0.0
        for j in range(p):
            w = 1.0 if sal[i, j] >= threshold else 0.0
            size += w
            if mask[i, j]:
                area += 1.0
                inter += w
        out[i, 0], out[i, 1], out[i, 2] = inter, size, area
    return out


def overlap_threshold(saliency: np.ndarray, masks: np.ndarray, threshold: float) -> dict[str, np.ndarray]:
    """IoU, Dice, coverage and precision (each ``(N,)`` in [0, 1]) of ``{L >= threshold}`` and the mask.

    Maps come already scaled as the caller wants (the threshold is in their units);
    NaN on an empty mask. Raises :class:`KernelInputError` on NaN maps or mismatched shapes.
    """
    sal, m = as_rows(saliency, masks)
    return _overlap_scores(_overlap_threshold(sal, m, np.float32(threshold)))


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
    penalised); tied peaks average their levels. Returns ``(N,)`` float64 in
    ``[min level / top_level, 1]``; NaN where no pixel has a positive level. Raises
    :class:`KernelInputError` for ``top_level <= 0``, NaN maps or mismatched shapes.
    """
    if top_level <= 0:
        raise KernelInputError(f"the region map's top level must be positive, got {top_level}")
    sal, _ = as_rows(saliency)
    if regions.shape != saliency.shape:
        raise KernelInputError(f"region maps of shape {regions.shape} do not match saliency maps of shape {saliency.shape}")
    lv = np.ascontiguousarray(regions.reshape(regions.shape[0], -1), dtype=np.float64)
    return _graded_hit(sal, lv, float(top_level))


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
    """Trapezoid-rule area under ``(N, S)`` curves sampled evenly on a [0, 1] x-axis: ``(N,)`` float64.

    The area is in the curves' units (a probability curve gives a value in [0, 1];
    the deletion/insertion AUC of Petsiuk et al. 2018, RISE). Raises
    :class:`KernelInputError` for ``S < 2`` or NaN/infinite values.
    """
    c = np.ascontiguousarray(curves, dtype=np.float64)
    if c.ndim != 2 or c.shape[1] < 2:
        raise KernelInputError(f"curves must be (N, S) with S >= 2 points, got shape {c.shape}")
    if not np.isfinite(c).all():
        raise KernelInputError("curves contain NaN or infinite values")
    return _auc(c)
