"""Complexity of the map itself: how concentrated the relevance is (no model passes).

- Sparseness (Chalasani et al., "Concise Explanations of Neural Networks using
  Adversarial Training", ICML 2020): the Gini index of the absolute map (Hurley and
  Rickard 2009), with ``a`` sorted ascending and ``n`` pixels,
  ``G = sum_k (2k - n - 1) a_k / (n * sum_k a_k)``; 0 for a uniform map, ``1 - 1/n``
  for a single pixel. Higher is sparser (more concise), which the paper prefers.
- Entropy (Bhatt et al., "Evaluating and Aggregating Feature-based Model
  Explanations", IJCAI 2020, "complexity"): the Shannon entropy (nats) of the
  distribution ``|a_i| / sum_j |a_j|``. Lower is simpler.

- Effective Complexity (Nguyen and Martinez, "On Quantitative Aspects of Model
  Interpretability", arXiv:2007.07584, 2020, Sec. 4.3): the number of pixels whose absolute
  relevance, scaled by the map's largest (``normalise: sample``; ``batch``: the batch's largest, as
  Quantus, :mod:`xaibench_metrics.scaling`), exceeds ``eps``; reported as a share of the ``P``
  pixels (Quantus's ``EffectiveComplexity`` returns the count, ``P`` times this) so that maps of
  different sizes compare. In [0, 1], lower is simpler.

All are NaN for an all-zero map (no distribution to measure; Quantus refuses a batch holding one).
"""
from __future__ import annotations

import numpy as np
import torch

from xaibench_metrics.scaling import scaled


def _abs_rows(saliency: torch.Tensor) -> np.ndarray:
    return saliency.reshape(saliency.shape[0], -1).abs().double().cpu().numpy()


def sparseness(maps: torch.Tensor) -> np.ndarray:
    """Gini index of ``|a|`` (Chalasani et al. 2020, Hurley and Rickard's formula)."""
    a = np.sort(_abs_rows(maps), axis=1)
    n = a.shape[1]
    k = np.arange(1, n + 1)
    total = a.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        gini = ((2 * k - n - 1) * a).sum(1) / (n * total)
    return np.where(total > 0, gini, np.nan)


def entropy(maps: torch.Tensor) -> np.ndarray:
    """``-sum p_i log p_i`` with ``p = |a| / sum |a|`` (Bhatt et al. 2020)."""
    a = _abs_rows(maps)
    total = a.sum(1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = a / total
        h = -np.where(p > 0, p * np.log(p), 0.0).sum(1)
    return np.where(total[:, 0] > 0, h, np.nan)


def effective_complexity(maps: torch.Tensor, eps: float = 1e-5, normalise: str = "sample") -> np.ndarray:
    """Share of pixels with ``|a| / max|a| > eps`` (Nguyen and Martinez 2020), ``(N,)`` in [0, 1]; NaN on a zero map.

    ``max|a|`` is the map's own largest (``normalise: sample``) or the batch's (``batch``, Quantus 0.6's;
    :mod:`xaibench_metrics.scaling`). Raises :class:`ValueError` unless ``0 <= eps < 1``, or for an unknown
    ``normalise``.
    """
    if not 0 <= eps < 1:
        raise ValueError(f"eps is a fraction of the map's largest value in [0, 1), got {eps}")
    a = _abs_rows(maps)
    share = (scaled(a, normalise) > eps).mean(1)
    return np.where(a.max(1) > 0, share, np.nan)
