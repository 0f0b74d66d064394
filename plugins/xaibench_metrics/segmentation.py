"""Metrics that mean something for a segmenter: task-level faithfulness and context reliance (issue 41, item 4).

Both read the sample's region target (``MetricContext.segmentation``, a
:class:`xaibench.scoring.segmentation.RegionScore`: the region ``R`` fixed on the unperturbed input, the class ``k``,
the per-pixel model), so they score one sample per call and are not applicable to classifiers.

- **Deletion-Dice** (task-level faithfulness; the deletion protocol of Petsiuk et al. 2018 with the task's own
  score, as Hammoud et al. 2025 ask of segmentation explanations): the pixels are removed in decreasing
  order of the map (``order: most``), ``P / steps`` per step, replaced by the fill, and at each step the
  Dice ``2 |A ∩ B| / (|A| + |B|)`` of ``A``, class ``k``'s predicted mask on the perturbed input, against
  ``B``, class ``k``'s predicted mask on the unperturbed input, is recorded; the score is the curve's area
  on [0, 1] (trapezoids, ``steps + 1`` points from the input, where the Dice is 1). Lower is better: a
  faithful map destroys the prediction fast. ``order: least`` removes the least relevant pixels first
  (``deletion-dice-least``): higher is better, the prediction survives. Ties are broken in a random order
  seeded per sample, as for ``deletion-auc``. NaN where ``B`` is empty (a box, pixel or ground-truth target
  whose class the model does not predict anywhere): there is no prediction to keep.
- **Relevance shares** (context reliance; Hammoud et al. 2025 find the context around the target region
  matters): the share of the map's positive relevance ``a+ = max(a, 0)`` inside the region ``R``, in the
  ring of ``width`` pixels around it (``R`` dilated ``width`` times by the full 3x3(x3) neighbourhood:
  the pixels at Chebyshev distance 1..width from ``R``), and beyond the ring; the three sum to 1. In
  [0, 1]; NaN where the map has no positive relevance (``sum a+ = 0``). A uniformly random map's
  expected share is the zone's area fraction.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
from scipy import ndimage
from torch import nn

from xaibench.scoring import kernels
from xaibench.scoring.curves import perturbation_curve
from xaibench.scoring.engine import Engine
from xaibench.base.errors import CellError
from xaibench_metrics.completeness import fill_baseline

FILLS = ("zero", "mean")
ORDERS = ("most", "least")
ZONES = ("inside", "ring", "beyond")


class DiceToReference(nn.Module):
    """``forward(x)`` ``(B, K)``: column ``c`` is the Dice of class ``c``'s predicted mask on ``x`` against
    class ``c``'s mask in ``reference`` ``(*spatial)`` (class indices); 1 where both masks are empty."""

    def __init__(self, segmenter: nn.Module, reference: torch.Tensor) -> None:
        super().__init__()
        self.segmenter = segmenter
        self.reference = reference

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, K)`` Dice per class of ``x`` ``(B, C, *spatial)``'s prediction against the reference."""
        logits = self.segmenter(x)
        k = int(logits.shape[1])
        pred = nn.functional.one_hot(logits.argmax(1), k).flatten(1, -2).float()  # (B, P, K)
        ref = nn.functional.one_hot(self.reference.to(x.device), k).reshape(1, -1, k).float()  # (1, P, K)
        inter, sizes = (pred * ref).sum(1), pred.sum(1) + ref.sum(1)
        return torch.where(sizes > 0, 2 * inter / sizes.clamp_min(1), torch.ones_like(sizes))


def _one(inputs: torch.Tensor, segmentation: Any) -> None:
    if segmentation is None:
        raise CellError("a segmentation metric needs the sample's region target (MetricContext.segmentation)")
    if inputs.shape[0] != 1:
        raise CellError(f"a segmentation metric scores one sample per call (its region), got {inputs.shape[0]}")


def deletion_dice_curve(inputs: torch.Tensor, maps: torch.Tensor, engine: Engine, segmentation: Any,
                        sample_seeds: Sequence[int], data_mean: torch.Tensor | None = None, steps: int = 32,
                        fill: str = "zero", *, order: str) -> np.ndarray:
    """``(1, steps + 1)`` float64 in [0, 1]: the Dice of class ``k``'s prediction with the ``s / steps`` most
    (``order: most``) or least relevant pixels set to the fill against its unperturbed prediction; NaN where
    that prediction is empty (module doc)."""
    _one(inputs, segmentation)
    segmenter = segmentation.segmenter()
    with torch.inference_mode():
        reference = segmenter(inputs.to(engine.device)).argmax(1)[0]
    if not (reference == segmentation.cls).any():
        return np.full((1, steps + 1), np.nan)
    dice = Engine(DiceToReference(segmenter, reference), engine.device, engine.batch_size)
    target = torch.tensor([segmentation.cls])
    return perturbation_curve(dice, inputs, target, maps if order == "most" else -maps, "deletion",
                              fill_baseline(inputs, fill, data_mean), steps, output="logit",
                              input_scores=torch.ones(1), sample_seeds=sample_seeds)


def deletion_dice(inputs: torch.Tensor, maps: torch.Tensor, engine: Engine, segmentation: Any,
                  sample_seeds: Sequence[int], data_mean: torch.Tensor | None = None, steps: int = 32,
                  fill: str = "zero", *, order: str) -> np.ndarray:
    """``(1,)``: the area under :func:`deletion_dice_curve` on [0, 1]; NaN where it is undefined."""
    curve = deletion_dice_curve(inputs, maps, engine, segmentation, sample_seeds, data_mean, steps, fill, order=order)
    return np.full(1, np.nan) if np.isnan(curve).any() else kernels.auc(curve)


def zones(region: np.ndarray, width: int) -> dict[str, np.ndarray]:
    """The ``inside``, ``ring`` and ``beyond`` masks of ``region`` ``(*spatial)`` bool for a ring of ``width``
    pixels (module doc); they partition the input."""
    grown = ndimage.binary_dilation(region, ndimage.generate_binary_structure(region.ndim, region.ndim),
                                    iterations=width)
    return {"inside": region, "ring": grown & ~region, "beyond": ~grown}


def relevance_share(maps: torch.Tensor, segmentation: Any, *, zone: str, width: int = 4) -> np.ndarray:
    """``(1,)`` in [0, 1]: ``sum_{zone} a+ / sum a+`` with ``a+`` the map's positive part; NaN where
    ``sum a+ = 0`` (module doc)."""
    _one(maps[:, None], segmentation)
    positive = maps[0].clamp_min(0).double().cpu().numpy()
    total = positive.sum()
    if not total > 0:
        return np.full(1, np.nan)
    mask = zones(segmentation.region.cpu().numpy(), width)[zone]
    return np.array([positive[mask].sum() / total])
