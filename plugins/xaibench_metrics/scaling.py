"""How a metric that thresholds or compares maps on a common scale divides them: ``normalise``.

Sufficiency, Effective Complexity and Non-Sensitivity (Nguyen and Martinez 2020; Dasgupta et al.
2022) compare relevance with a threshold or with other maps after scaling by a largest absolute
value. Which largest is a convention the papers leave open:

- ``sample`` (the default): each map by its own largest. A sample's score depends on its own map
  only (Sufficiency: on its batch-mates' maps as maps, never on their scale), so it is the same
  alone, in any batch and under any rescaling of another method's maps: what a per-sample score
  on a leaderboard needs.
- ``batch``: every map by the largest over the evaluated batch, Quantus 0.6's default
  (``normalise=True`` with ``normalise_by_max`` over the whole ``a_batch``; an all-zero batch is
  left as is). A map much smaller than its batch-mates then falls under ``eps`` everywhere
  (Effective Complexity 0) and maps that differ only in scale stop being neighbours (Sufficiency).
  Use it to compare numbers with Quantus or papers computed with it; the score of a sample then
  changes with the samples evaluated beside it.
"""
from __future__ import annotations

import numpy as np

NORMALISE = ("sample", "batch")


def largest(values: np.ndarray, normalise: str) -> np.ndarray:
    """The divisor of each row of ``values`` ``(N, K)``: ``(N, 1)`` float64, its own largest ``|value|``
    (``sample``) or the largest over every row (``batch``); 0 where that largest is 0 (nothing to scale).

    Raises :class:`ValueError` for a ``normalise`` not in :data:`NORMALISE`.
    """
    if normalise not in NORMALISE:
        raise ValueError(f"normalise must be one of {', '.join(NORMALISE)}, got {normalise!r}")
    top = np.abs(np.asarray(values, dtype=np.float64)).max(1, keepdims=True)
    return top if normalise == "sample" else np.full_like(top, top.max(initial=0.0))


def scaled(values: np.ndarray, normalise: str) -> np.ndarray:
    """``values`` ``(N, K)`` divided by :func:`largest` (float64); rows whose divisor is 0 stay 0."""
    v = np.asarray(values, dtype=np.float64)
    top = largest(v, normalise)
    return np.divide(v, top, out=np.zeros_like(v), where=top > 0)
