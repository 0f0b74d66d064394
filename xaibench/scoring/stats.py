"""Statistics of the leaderboard: per-cell mean with a seeded 95% bootstrap CI,
ranks that admit ties (paired Wilcoxon tests, Holm-corrected), and the agreement
between metrics (Kendall's tau between their rankings of the methods).
"""
from __future__ import annotations

import hashlib
import math
from typing import Sequence

import numpy as np

BOOTSTRAP_RESAMPLES = 2000


def seed_from(*parts: object) -> int:
    """A stable 32-bit seed from arbitrary parts (never Python's salted ``hash``)."""
    digest = hashlib.sha256(":".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:4], "little")


def summarize(values: np.ndarray, seed: int, ids: Sequence[str]) -> tuple[float, float, float, int]:
    """``(mean, ci_low, ci_high, n)`` over the finite values; NaNs mark undefined samples.

    ``values``: one score per sample, ``(N,)``, in the metric's units; ``ids``: the samples'
    ids, ``(N,)`` unique strings. The CI is the percentile bootstrap 95% interval (Efron &
    Tibshirani 1993, *An Introduction to the Bootstrap*, ch. 13): the 2.5/97.5 percentiles of
    ``BOOTSTRAP_RESAMPLES`` bootstrap means, seeded so that the same scores always give the
    same interval. The resamples index the samples sorted by id, so the interval depends on
    which sample has which score, never on the order the samples came in (permuting values
    and ids together changes nothing). ``n`` counts the finite values; n = 0 gives
    ``(nan, nan, nan, 0)`` and n = 1 a zero-width interval. Raises :class:`ValueError` when
    ``ids`` is not one unique id per value.
    """
    v = np.asarray(values, dtype=np.float64)
    names = [str(i) for i in ids]
    if len(names) != v.size or len(set(names)) != v.size:
        raise ValueError(f"summarize needs one unique id per value, got {len(set(names))} unique ids for {v.size} "
                         "values")
    v = v[sorted(range(v.size), key=names.__getitem__)]
    v = v[np.isfinite(v)]
    n = int(v.size)
    if n == 0:
        return (np.nan, np.nan, np.nan, 0)
    mean = float(v.mean())
    if n == 1:
        return (mean, mean, mean, 1)
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, n, size=(BOOTSTRAP_RESAMPLES, n))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return (mean, float(low), float(high), n)


# -- ranks that admit ties: paired tests over the same samples ---------------------------------------

#: Family-wise significance level of the paired tests behind tied ranks.
ALPHA = 0.05
#: Paired differences within this relative tolerance of the scores' magnitude (``rtol * max(1, |a|, |b|)``)
#: are ties: float64 rounding (a Spearman of 0.9999999999999998 against 1.0) never decides a rank.
TIE_RTOL = 1e-9


def paired_pvalue(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sided Wilcoxon signed-rank p-value (Wilcoxon 1945) of ``a - b`` over the samples finite in both.

    Wilcoxon (scipy.stats.wilcoxon, zero differences dropped) rather than a t-test
    because per-sample scores are often bounded or binary (a hit is 0 or 1, IiC is
    0 or 100) and far from normal; rather than a paired bootstrap because it gives
    exact p-values for small n, which Holm's correction needs. Zero differences, and
    differences below :data:`TIE_RTOL` of the scores' magnitude (rounding, not a
    difference), are dropped (Wilcoxon's original rule); the p-value is exact when the remaining
    absolute differences have no ties, else the tie-corrected normal approximation
    (binary scores: the sign test's). No non-zero difference: p = 1.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"paired scores need equal shapes, got {a.shape} and {b.shape}")
    keep = np.isfinite(a) & np.isfinite(b)
    diff = a[keep] - b[keep]
    scale = np.maximum(1.0, np.maximum(np.abs(a[keep]), np.abs(b[keep])))
    diff = diff[np.abs(diff) > TIE_RTOL * scale]
    if diff.size == 0:
        return 1.0
    from scipy.stats import wilcoxon

    exact = np.unique(np.abs(diff)).size == diff.size
    return float(wilcoxon(diff, alternative="two-sided", method="exact" if exact else "asymptotic").pvalue)


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (Holm 1979): controls the family-wise error rate.

    Written out (eight lines) rather than imported from statsmodels, whose import pulls
    in pandas and patsy and costs every ``xaibench leaderboard`` about a second; the
    tests check it equals ``statsmodels.stats.multitest.multipletests(method="holm")``.
    """
    p = np.asarray(pvalues, dtype=np.float64)
    m = p.size
    order = np.argsort(p, kind="stable")
    adjusted = np.empty(m)
    running = 0.0
    for k, i in enumerate(order):
        running = max(running, min(1.0, (m - k) * p[i]))
        adjusted[i] = running
    return adjusted.tolist()


def significance_ranks(scores: Sequence[np.ndarray | None], higher_is_better: bool,
                       alpha: float = ALPHA, min_effect: float = 0.0,
                       tiers: Sequence[int | None] | None = None) -> list[int | None]:
    """Rank of each method = 1 + the number of methods that beat it.

    ``scores[i]`` holds method i's per-sample scores over the same samples as the
    others (``None``: no score, no rank). Every pair is compared with
    :func:`paired_pvalue`; the p-values of all pairs are Holm-corrected together;
    a pair differs when its adjusted p-value is below ``alpha`` and the absolute mean
    of its paired differences (over the shared samples) is at least ``min_effect``, in
    the metric's units (a smaller difference is no meaningful effect: a tie); the better
    one is the one with the higher (or, for lower-is-better metrics, lower) mean over
    the shared samples (a significant pair with exactly equal means, possible when the
    differences are skewed, has no better one and beats neither). ``tiers`` (one int per
    method, such as 1 above chance, 0 at chance, -1 below: :func:`versus_reference`)
    come first: a method beats every method of a lower tier whatever the test, and the
    test decides within a tier. So methods that no method beats share rank 1, and two
    methods share a rank whenever as many methods beat each of them.
    """
    idx = [i for i, s in enumerate(scores) if s is not None and np.isfinite(s).any()]
    tier = {i: 0 if tiers is None or tiers[i] is None else int(tiers[i]) for i in idx}  # type: ignore[index]
    pairs = [(i, j) for k, i in enumerate(idx) for j in idx[k + 1:]]
    adjusted = holm([paired_pvalue(scores[i], scores[j]) for i, j in pairs]) if pairs else []
    beaten = {i: 0 for i in idx}
    for (i, j), p in zip(pairs, adjusted):
        if tier[i] != tier[j]:
            beaten[j if tier[i] > tier[j] else i] += 1
            continue
        better = _better(scores[i], scores[j], p, higher_is_better, alpha, min_effect)  # type: ignore[arg-type]
        if better:
            beaten[j if better > 0 else i] += 1
    return [beaten[i] + 1 if i in beaten else None for i in range(len(scores))]


def _better(a: np.ndarray, b: np.ndarray, p: float, higher_is_better: bool, alpha: float, min_effect: float) -> int:
    """1 when ``a`` is better than ``b`` (adjusted p-value ``p`` below ``alpha``, mean paired difference at least
    ``min_effect`` in absolute value, in the better direction), -1 when ``b`` is, 0 for a tie."""
    if p >= alpha:
        return 0
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    keep = np.isfinite(a) & np.isfinite(b)
    diff = float(a[keep].mean() - b[keep].mean())
    if diff == 0 or abs(diff) < min_effect:  # equal means: a difference without a direction beats neither
        return 0
    return 1 if (diff > 0) == higher_is_better else -1


def versus_reference(scores: Sequence[np.ndarray | None], reference: np.ndarray, higher_is_better: bool,
                     alpha: float = ALPHA, min_effect: float = 0.0) -> list[int | None]:
    """Each method against a reference on the same samples (the chance baseline): 1 better, 0 no difference,
    -1 worse, None without a score.

    ``scores[i]`` and ``reference`` are per-sample scores ``(S,)`` over the same sample ids.
    Each method's :func:`paired_pvalue` against the reference is Holm-corrected over the
    methods, and a method differs when the adjusted p-value is below ``alpha`` and its mean
    paired difference is at least ``min_effect`` (the rule of :func:`significance_ranks`).
    So a method whose scores equal the reference's on most samples, or differ by less than
    ``min_effect``, is 0: it ties the reference.
    """
    idx = [i for i, s in enumerate(scores) if s is not None and np.isfinite(s).any()]
    adjusted = holm([paired_pvalue(scores[i], reference) for i in idx]) if idx else []  # type: ignore[arg-type]
    out: list[int | None] = [None] * len(scores)
    for i, p in zip(idx, adjusted):
        out[i] = _better(scores[i], reference, p, higher_is_better, alpha, min_effect)  # type: ignore[arg-type]
    return out


def competition_ranks(values: Sequence[float | None], higher_is_better: bool) -> list[int | None]:
    """Standard competition ranks ("1224"): equal values share the best of their ranks."""
    sign = 1.0 if higher_is_better else -1.0
    defined = [sign * v for v in values if v is not None and math.isfinite(v)]
    return [None if v is None or not math.isfinite(v) else 1 + sum(d > sign * v for d in defined) for v in values]


# -- metric agreement ----------------------------------------------------------------------------------

def agreement(means: Sequence[Sequence[float | None]], higher_is_better: Sequence[bool]) -> np.ndarray:
    """Kendall's tau-b (Kendall 1945) between metrics' rankings of the methods (Tomsett et al. 2020).

    ``means[k][i]`` is method i's mean on metric k. Scores are oriented so that
    higher is better on every metric before comparing, so tau = 1 means two metrics
    order the methods identically from best to worst and tau = -1 means they
    reverse it. A pair of metrics gets NaN when fewer than 3 methods have values
    on both or when either metric gives all of them the same value. Returns a symmetric
    ``(K, K)`` float64 matrix in [-1, 1] (1 on the diagonal where defined), via scipy's ``kendalltau``.
    """
    from scipy.stats import kendalltau

    k = len(means)
    oriented = [np.array([np.nan if v is None else (v if hib else -v) for v in row], dtype=np.float64)
                for row, hib in zip(means, higher_is_better)]
    out = np.full((k, k), np.nan)
    for a in range(k):
        for b in range(k):
            keep = np.isfinite(oriented[a]) & np.isfinite(oriented[b])
            x, y = oriented[a][keep], oriented[b][keep]
            if keep.sum() >= 3 and np.ptp(x) > 0 and np.ptp(y) > 0:
                out[a, b] = float(kendalltau(x, y).statistic)
    return out
