"""Localization metrics: how well the map's relevance falls on the annotated lesion.

All scores are numba kernels over flattened ``(N, P)`` maps (:mod:`xaibench.scoring.kernels`);
every one is NaN on an empty mask. The top-k and mass scores of one method's maps come
from a single fused kernel call, shared between the metric cells through ``shared``. Sign handling (``positive``: evidence for the
class only, the default of the papers below; ``abs``: both signs) is a parameter.

- Relevance mass accuracy (Arras et al., "CLEVR-XAI: A benchmark dataset for the
  ground truth evaluation of neural network explanations", Information Fusion 2022):
  ``R_within / R_total``, the share of the map's positive relevance inside the mask.
- Attribution localisation (Kohlbrenner et al., "Towards best practice in explaining
  neural network decisions with LRP", IJCNN 2020): the same inside/total ratio on
  the absolute map (Quantus's ``AttributionLocalisation`` default, unweighted).
- Relevance rank accuracy (Arras et al. 2022): with ``K = |mask|``, the share of the
  K highest-relevance pixels that lie inside the mask.
- Energy-based pointing game (Wang et al., "Score-CAM", CVPR-W 2020, Sec. 5.2): the
  share of the map's energy inside the *bounding box* of the annotation.
- IoU, Dice, coverage (the mask's recall) and precision of the thresholded map: either the
  top ``k`` fraction of pixels or ``L >= threshold`` with ``L`` scaled to [0, 1]. Precision of the
  top-k pixels is Top-K Intersection (Theiner, Müller-Budack, Ewerth, "Interpretable Semantic Photo
  Geolocation", WACV 2022, Sec. 4.2; Quantus's ``TopKIntersection``, whose ``k`` is a pixel count).
- AUC (Fawcett, "An introduction to ROC analysis", Pattern Recognition Letters 2006): the area under
  the ROC curve of the map as a pixel classifier of the mask, i.e. the probability that a random
  mask pixel outranks a random background pixel, ties counting 1/2 (Mann-Whitney U / (n_1 n_0)); 0.5
  for a map that does not tell them apart, 1 for a map ranking every mask pixel first. NaN on an
  empty or full mask (one class only). Quantus's ``AUC`` (scikit-learn's ``roc_curve``) gives the same.
- Graded hit rate (seed 001): the region level at the map's peak over the top level.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from scipy.stats import rankdata

from xaibench.scoring import kernels
from xaibench.scoring.maps import normalize
from xaibench.contract.metric_inputs import Shared, unshared
from xaibench.contract.specs import DataBundle
from xaibench.contract.validate import is_number
from xaibench_metrics.families import TOP_K

SELECTIONS = ("top-k", "threshold")


def _needs(masks: torch.Tensor | None, what: str) -> np.ndarray:
    if masks is None:
        raise ValueError(f"{what} needs masks")
    return masks.cpu().numpy().astype(bool)


def bounding_boxes(masks: np.ndarray) -> np.ndarray:
    """Each mask replaced by its axis-aligned bounding box (empty stays empty), any number of axes."""
    out = np.zeros_like(masks, dtype=bool)
    for i, m in enumerate(masks):
        if m.any():
            box = tuple(slice(idx.min(), idx.max() + 1) for idx in np.nonzero(m))
            out[i][box] = True
    return out


#: The top-k fraction of the overlap scores' defaults. Relevance mass and rank accuracy ask the
#: fused kernel for it too, so with default parameters all of them share one kernel call.


def mask_scores(shared: Shared, maps: torch.Tensor, masks: np.ndarray, sign: str,
                fraction: float = TOP_K, boxes: bool = False) -> kernels.MaskScores:
    """Every top-k and mass score of the maps scaled to [0, 1] by ``sign``, once per method's maps (``shared``)."""
    def compute() -> kernels.MaskScores:
        scaled = normalize(maps, sign).cpu().numpy()
        return kernels.mask_scores(scaled, bounding_boxes(masks) if boxes else masks, (fraction,))

    return shared(("xaibench_metrics.mask_scores", sign, fraction, boxes), compute)


def relevance_mass_accuracy(maps: torch.Tensor, masks: torch.Tensor | None, shared: Shared = unshared,
                            sign: str = "positive") -> np.ndarray:
    """``R_within / R_total`` (Arras et al. 2022, Eq. 1); with ``sign="abs"``, Kohlbrenner et al.'s ratio."""
    return mask_scores(shared, maps, _needs(masks, "relevance mass accuracy"), sign).mass


def energy_pointing_game(maps: torch.Tensor, masks: torch.Tensor | None, shared: Shared = unshared,
                         sign: str = "positive") -> np.ndarray:
    """``sum L in box / sum L`` with the box enclosing the annotation (Score-CAM, Sec. 5.2)."""
    return mask_scores(shared, maps, _needs(masks, "the energy-based pointing game"), sign, boxes=True).mass


def relevance_rank_accuracy(maps: torch.Tensor, masks: torch.Tensor | None, shared: Shared = unshared,
                            sign: str = "positive") -> np.ndarray:
    """``|P_top-K & GT| / K`` with ``K = |GT|`` (Arras et al. 2022, Eq. 2); ties shared (see kernels)."""
    return mask_scores(shared, maps, _needs(masks, "relevance rank accuracy"), sign).rank


def mask_overlap(maps: torch.Tensor, masks: torch.Tensor | None, shared: Shared = unshared, score: str = "iou",
                 selection: str = "top-k", k: float = TOP_K, threshold: float = 0.5,
                 sign: str = "positive") -> np.ndarray:
    """IoU, Dice, coverage (recall) or precision (Top-K Intersection) of the binarised map against the mask.

    ``selection="top-k"`` keeps the ``k`` fraction of pixels with the highest values
    (a fixed area, comparable across methods); ``selection="threshold"`` keeps
    ``L >= threshold`` with ``L`` the map scaled to [0, 1] (seed 001's mask from the map).
    """
    if score not in kernels.OVERLAPS:
        raise ValueError(f"score must be one of {kernels.OVERLAPS}, got {score!r}")
    m = _needs(masks, f"{score} of the thresholded map")
    if selection == "top-k":
        return mask_scores(shared, maps, m, sign, fraction=k).top_k[k][score]
    if selection == "threshold":
        return kernels.overlap_threshold(normalize(maps, sign).cpu().numpy(), m, threshold)[score]
    raise ValueError(f"selection must be one of {SELECTIONS}, got {selection!r}")


def overlap_check(params: Mapping[str, Any]) -> None:
    """The overlap metrics' own ``MetricSpec.check`` (IoU, Dice, coverage, Top-K Intersection), after
    :mod:`xaibench_metrics.checks`' rules: raise ``ValueError`` (one line) for a ``k`` outside (0, 1] (a fraction
    of the map's pixels, not a count: Quantus's ``k`` pixels are ``k / P`` here) or a ``threshold`` outside
    [0, 1] (the map is scaled to [0, 1])."""
    if "k" in params and not (is_number(params["k"]) and 0 < params["k"] <= 1):
        raise ValueError(f"k is the fraction of the map's pixels kept, in (0, 1], got {params['k']!r}; "
                         f"for a number of pixels n give n / (pixels per map)")
    if "threshold" in params and not (is_number(params["threshold"]) and 0 <= params["threshold"] <= 1):
        raise ValueError(f"threshold applies to the map scaled to [0, 1]: give a number in [0, 1], got "
                         f"{params['threshold']!r}")


def graded_hit_rate(maps: torch.Tensor, regions: torch.Tensor | None, dataset: DataBundle) -> np.ndarray:
    """``level(argmax L) / top level`` (seed 001, skin-layer maps scored 3 to -1); tied peaks average."""
    if regions is None:
        raise ValueError("the graded hit rate needs region maps")
    if dataset.region_top_level is None:
        raise ValueError("the dataset provides region maps but no region_top_level to normalise by")
    return kernels.graded_hit(maps.cpu().numpy(), regions.cpu().numpy(), dataset.region_top_level)


def pixel_auc(maps: torch.Tensor, masks: torch.Tensor | None) -> np.ndarray:
    """ROC-AUC of ``maps`` ``(N, *spatial)`` (raw values: a monotone rescaling changes nothing) against ``masks``.

    ``(N,)`` float64 in [0, 1]; NaN where the mask is empty or covers every pixel. Raises
    :class:`ValueError` without masks.
    """
    m = _needs(masks, "pixel AUC").reshape(len(maps), -1)
    a = maps.reshape(len(maps), -1).double().cpu().numpy()
    ranks = rankdata(a, axis=1)
    positives = m.sum(1).astype(np.float64)
    negatives = m.shape[1] - positives
    u = (ranks * m).sum(1) - positives * (positives + 1) / 2
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where((positives > 0) & (negatives > 0), u / (positives * negatives), np.nan)
