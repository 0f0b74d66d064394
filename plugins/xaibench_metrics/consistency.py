"""Consistency (Dasgupta, Frost and Moshkovitz, "Framework for Evaluating Faithfulness of Local Explanations",
ICML 2022, Sec. 3): do inputs that receive the same explanation receive the same prediction?

Explanations are discretised into labels ``e(x)``; for sample ``i`` the score is the
share of the *other* evaluated samples ``j`` with ``e(x_j) = e(x_i)`` whose predicted
class equals ``i``'s: an estimate of ``P[f(x') = f(x) | e(x') = e(x)]``. 1: the
explanation determines the prediction; lower: the same explanation is given for
different decisions. NaN where no other sample shares ``i``'s label (Quantus 0.6
returns 0 there, which reads as "inconsistent"); the score depends on the other
samples of the cell, which every method of a cell shares.

Discretisation (a parameter of the definition; Dasgupta et al. use discrete
explanations): ``grid`` cells per spatial axis, and the label is the cell holding the
map's peak (of ``|map|`` with ``abs``, as Quantus's default). A coarse grid makes
labels shared and the score defined; a grid of 1 makes every sample share one label,
so the score is the share of the predicted class. No forward pass beyond the cell's
unperturbed one: cheap on any suite.
"""
from __future__ import annotations


import torch




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
    predicted = base_logits.argmax(1).to(labels.device)
    others = ~torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    same_label = (labels[:, None] == labels[None, :]) & others
    same_prediction = (predicted[:, None] == predicted[None, :]) & same_label
    peers = same_label.sum(1).double()
    agree = same_prediction.sum(1).double()
    return torch.where(peers > 0, agree / peers.clamp(min=1), torch.full_like(peers, float("nan")))
