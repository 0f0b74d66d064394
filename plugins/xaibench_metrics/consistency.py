"""Consistency (Dasgupta, Frost and Moshkovitz, "Framework for Evaluating Faithfulness of Local Explanations",
ICML 2022, Sec. 3): do inputs that receive the same explanation receive the same prediction?

Explanations are discretised into labels ``e(x)``; for sample ``i`` the score is the
share of the *other* evaluated samples ``j`` with ``e(x_j) = e(x_i)`` whose predicted
class equals ``i``'s: an estimate of ``P[f(x') = f(x) | e(x') = e(x)]``. 1: the
explanation determines the prediction; lower: the same explanation is given for
different decisions. This is the paper's local consistency ``m(x) = Pr_{x'}[f(x') = f(x) | e(x') = e(x)]``
estimated on the cell's other samples; the mean over the samples (the leaderboard's) is its global
consistency ``E_x[m(x)]``. NaN where no other sample shares ``i``'s label (Quantus 0.6
returns 0 there, which reads as "inconsistent"); the score depends on the other
samples of the cell, which every method of a cell shares.

Discretisation (a parameter of the definition; Dasgupta et al. use discrete
explanations): ``grid`` cells per spatial axis, and the label is the cell holding the
map's peak (of ``|map|`` with ``abs``, as Quantus's default). A coarse grid makes
labels shared and the score defined; a grid of 1 makes every sample share one label,
so the score is the share of the predicted class. No forward pass beyond the cell's
unperturbed one: cheap on any suite.

Sufficiency (Dasgupta et al. 2022, Sec. 3, in the operational form of Quantus's ``Sufficiency``):
the same share, among the other samples whose *maps are close* to sample ``i``'s instead of sharing
its label: maps are taken absolute (``abs``) and scaled by their largest absolute value (``normalise``:
each map by its own, the default, or all by the batch's as Quantus does, :mod:`xaibench_metrics.scaling`),
their pairwise
standardised Euclidean distances (each pixel divided by its variance over the cell's samples, as
scipy's ``seuclidean``) are divided by the largest distance of the cell, and ``j`` is a neighbour of
``i`` when that is at most ``threshold``. A pixel with the same value in every map (zero variance)
adds nothing to any distance and is left out (scipy would divide 0 by 0 and make every distance NaN,
so Quantus would find no neighbours). NaN where no other sample is a neighbour (Quantus: 0).
"""
from __future__ import annotations

import numpy as np
import torch
from scipy.spatial.distance import cdist

from xaibench_metrics.scaling import scaled


def peak_cells(maps: torch.Tensor, grid: int, abs: bool = True) -> torch.Tensor:
    """The label of each map ``(N, *spatial)``: the flat index of the grid cell that holds its peak, ``(N,)`` long.

    Each spatial axis of length ``S`` is cut into ``grid`` cells of ``S / grid`` positions
    (the peak at position ``p`` lies in cell ``floor(p * grid / S)``); the first maximum wins
    ties. Raises :class:`ValueError` for ``grid < 1``.
    """
    if grid < 1:
        raise ValueError(f"consistency needs grid >= 1 cells per axis, got {grid}")
    spatial = maps.shape[1:]
    values = maps.abs() if abs else maps
    flat = values.reshape(maps.shape[0], -1).argmax(1)
    coords, rest = [], flat
    for size in reversed(spatial):  # row-major flat index -> one coordinate per axis
        coords.append(rest % size)
        rest = rest // size
    label = torch.zeros_like(flat)
    for size, coord in zip(spatial, reversed(coords)):
        label = label * grid + (coord * grid) // size
    return label


def consistency(maps: torch.Tensor, base_logits: torch.Tensor, grid: int = 4, abs: bool = True) -> torch.Tensor:
    """Per-sample consistency ``(N,)`` float64 in [0, 1] of ``maps`` ``(N, *spatial)``, predictions from
    ``base_logits`` ``(N, K)``; NaN where no other sample shares the sample's label (see the module)."""
    labels = peak_cells(maps, grid, abs)
    return agreement(labels[:, None] == labels[None, :], base_logits)


def agreement(peers: torch.Tensor, base_logits: torch.Tensor) -> torch.Tensor:
    """Per sample ``i``, the share of its peers ``j != i`` (``peers`` ``(N, N)`` bool) predicted as ``i`` is.

    ``(N,)`` float64 in [0, 1]; NaN where sample ``i`` has no peer besides itself.
    """
    predicted = base_logits.argmax(1).to(peers.device)
    others = ~torch.eye(len(peers), dtype=torch.bool, device=peers.device)
    same_label = peers & others
    same_prediction = (predicted[:, None] == predicted[None, :]) & same_label
    count = same_label.sum(1).double()
    agree = same_prediction.sum(1).double()
    return torch.where(count > 0, agree / count.clamp(min=1), torch.full_like(count, float("nan")))


def sufficiency(maps: torch.Tensor, base_logits: torch.Tensor, threshold: float = 0.6, abs: bool = True,
                normalise: str = "sample") -> torch.Tensor:
    """Per-sample sufficiency ``(N,)`` float64 in [0, 1] (module doc): the share of the samples whose scaled maps lie
    within ``threshold`` of the sample's (standardised Euclidean distance / the cell's largest) that get its prediction.

    Maps are scaled by their own largest ``|a|`` or the batch's (``normalise``, :mod:`xaibench_metrics.scaling`).
    NaN where no other sample is that close. Raises :class:`ValueError` unless ``0 <= threshold <= 1``, or for an
    unknown ``normalise``.
    """
    if not 0 <= threshold <= 1:
        raise ValueError(f"sufficiency's threshold is a fraction of the largest distance in [0, 1], got {threshold}")
    a = maps.reshape(maps.shape[0], -1).double().cpu().numpy()
    a = scaled(np.abs(a) if abs else a, normalise)
    varies = a.var(0, ddof=1) > 0 if len(a) > 1 else np.zeros(a.shape[1], dtype=bool)
    if varies.any():
        dist = cdist(a[:, varies], a[:, varies], "seuclidean")
        dist = dist / dist.max()
    else:  # every map is the same: all at distance 0
        dist = np.zeros((len(a), len(a)))
    return agreement(torch.from_numpy(dist <= threshold), base_logits.cpu())
