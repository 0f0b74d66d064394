"""Aggregation of per-sample scores: mean with a seeded 95% percentile bootstrap CI."""
from __future__ import annotations

import hashlib

import numpy as np

BOOTSTRAP_RESAMPLES = 2000


def seed_from(*parts: object) -> int:
    """A stable 32-bit seed from arbitrary parts (never Python's salted ``hash``)."""
    digest = hashlib.sha256(":".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:4], "little")


def summarize(values: np.ndarray, seed: int) -> tuple[float, float, float, int]:
    """``(mean, ci_low, ci_high, n)`` over the finite values; NaNs mark undefined samples.

    The CI is the 2.5/97.5 percentiles of ``BOOTSTRAP_RESAMPLES`` bootstrap means,
    seeded so that the same scores always give the same interval.
    """
    v = np.asarray(values, dtype=np.float64)
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
