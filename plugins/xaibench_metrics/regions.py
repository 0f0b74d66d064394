"""Faithfulness over a grid of patches, removed cumulatively in the order of the map's sum per patch.

The input is cut into patches of ``patch`` pixels per spatial axis from the origin (the last patch
of an axis that ``patch`` does not divide is shorter; Quantus pads the input symmetrically instead,
so the two grids agree where ``patch`` divides every axis). Patches are ordered by the map's sum
over them (ties in a random order seeded per sample from ``sample_seeds``) and removed one after the
other, each set to the fill (zeros or the training mean; Quantus's ``black`` is the sample's minimum),
and the target's softmax probability is read after each removal: one batched pass per removal and
sample through the engine.

- Region Perturbation (Samek, Binder, Montavon, Lapuschkin, Müller, "Evaluating the Visualization of
  What a Deep Neural Network Has Learned", IEEE TNNLS 2017, Sec. III, Eq. 12): the area over the
  perturbation curve ``AOPC = 1/(L+1) sum_{k=0}^{L} (f(x) - f(x^(k)))`` after removing ``L`` patches
  (``steps``; all of them by default), most relevant first (MoRF: higher is better) or least
  relevant first (LeRF: lower is better). Samek et al. fill a removed patch with uniform noise; the
  fill here is a constant (``zero`` or ``mean``), as in Quantus's ``RegionPerturbation``, whose
  per-step curve ``f(x) - f(x^(k))``, ``k = 1..L``, this AOPC sums.
- Selectivity (Montavon, Samek, Müller, "Methods for Interpreting and Understanding Deep Neural
  Networks", Digital Signal Processing 2018, Sec. 5.2): the area under the curve of ``p_c`` as the
  patches are removed most relevant first, from the input (point 0) to every patch removed, by the
  trapezoid rule on an x-axis scaled to [0, 1]; lower is better. Quantus's ``Selectivity`` returns the
  curve without point 0 and its ``get_auc_score`` integrates it with unit steps.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from xaibench.scoring import kernels
from xaibench.scoring.engine import Engine
from xaibench_metrics.completeness import fill_baseline

ORDERS = ("morf", "lerf")


def patch_index(spatial: Sequence[int], patch: int) -> tuple[torch.Tensor, int]:
    """Each pixel's patch ``(prod(spatial),)`` long, row-major over the patch grid, and the number of patches.

    Raises :class:`ValueError` for ``patch < 1``.
    """
    if patch < 1:
        raise ValueError(f"patch must be at least 1 pixel, got {patch}")
    index = torch.zeros((), dtype=torch.long)
    cells = 1
    for size in spatial:
        per_axis = -(-size // patch)
        index = index[..., None] * per_axis + torch.arange(size) // patch
        cells *= per_axis
    return index.reshape(-1), cells


def patch_order(maps: torch.Tensor, sample_seeds: Sequence[int], patch: int, order: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Each pixel's patch ``(P,)`` and each sample's patches in removal order ``(N, patches)`` long.

    Raises :class:`ValueError` for an unknown ``order`` or seeds that are not one per map.
    """
    if order not in ORDERS:
        raise ValueError(f"order must be one of {', '.join(ORDERS)}, got {order!r}")
    if len(sample_seeds) != maps.shape[0]:
        raise ValueError(f"{len(sample_seeds)} sample seeds for {maps.shape[0]} maps: one seed per map")
    index, cells = patch_index(tuple(maps.shape[1:]), patch)
    flat = maps.reshape(maps.shape[0], -1).double().cpu()
    sums = torch.zeros(flat.shape[0], cells, dtype=torch.float64).index_add_(1, index, flat)
    key = -sums if order == "morf" else sums
    shuffle = torch.stack([torch.randperm(cells, generator=torch.Generator().manual_seed(int(s))) for s in sample_seeds])
    ranked = shuffle.gather(1, torch.argsort(key.gather(1, shuffle), dim=1, stable=True))
    return index.to(maps.device), ranked.to(maps.device)


def patch_curve(inputs: torch.Tensor, targets: torch.Tensor, maps: torch.Tensor, engine: Engine,
                sample_seeds: Sequence[int], data_mean: torch.Tensor | None, patch: int, order: str,
                removals: int | None, fill: str, output: str = "prob") -> np.ndarray:
    """``f(x^(k))`` after removing the first ``k = 1..L`` patches in ``order``: ``(N, L)`` float64.

    ``L`` is ``removals`` (None: every patch). Raises :class:`ValueError` for ``removals`` outside
    1..patches, a bad ``patch``, ``order`` or ``fill``.
    """
    x = inputs.to(engine.device)
    index, ranked = patch_order(maps.to(x.device), sample_seeds, patch, order)
    cells = ranked.shape[1]
    steps = cells if removals is None else int(removals)
    if not 1 <= steps <= cells:
        raise ValueError(f"steps must be between 1 and the {cells} patches of {patch} px, got {removals}")
    position = torch.empty_like(ranked)  # position[i, c]: when patch c of sample i is removed
    position.scatter_(1, ranked, torch.arange(cells, device=ranked.device).expand_as(ranked))
    pixel_step = position[:, index]
    canvas = fill_baseline(x, fill, data_mean).to(x)
    shape = (-1, 1, *x.shape[2:])

    def perturb(sample_idx: torch.Tensor, step_idx: torch.Tensor) -> torch.Tensor:
        removed = (pixel_step[sample_idx] <= step_idx[:, None]).reshape(shape)
        return torch.where(removed, canvas[sample_idx], x[sample_idx])

    return engine.perturbed_scores(perturb, x.shape[0], steps, targets, output).double().cpu().numpy()


def region_perturbation(inputs: torch.Tensor, targets: torch.Tensor, maps: torch.Tensor, engine: Engine,
                        base_logits: torch.Tensor, sample_seeds: Sequence[int],
                        data_mean: torch.Tensor | None = None, patch: int = 8, order: str = "morf",
                        steps: int | None = None, fill: str = "zero") -> np.ndarray:
    """Region perturbation AOPC (Samek et al. 2017, Eq. 12): ``1/(L+1) sum_{k=0}^{L} (p_c(x) - p_c(x^(k)))``.

    ``(N,)`` float64 in [-1, 1]; never NaN. Raises :class:`ValueError` for bad parameters.
    """
    curve = patch_curve(inputs, targets, maps, engine, sample_seeds, data_mean, patch, order, steps, fill)
    f_x = engine.select(base_logits, targets, "prob").double().cpu().numpy()
    return (f_x[:, None] - curve).sum(1) / (curve.shape[1] + 1)


def selectivity(inputs: torch.Tensor, targets: torch.Tensor, maps: torch.Tensor, engine: Engine,
                base_logits: torch.Tensor, sample_seeds: Sequence[int],
                data_mean: torch.Tensor | None = None, patch: int = 8, fill: str = "zero") -> np.ndarray:
    """Selectivity (Montavon et al. 2018): the [0, 1]-scaled area under ``p_c`` as patches go, most relevant first.

    ``(N,)`` float64 in [0, 1]; never NaN. Raises :class:`ValueError` for bad parameters.
    """
    curve = patch_curve(inputs, targets, maps, engine, sample_seeds, data_mean, patch, "morf", None, fill)
    f_x = engine.select(base_logits, targets, "prob").double().cpu().numpy()
    return kernels.auc(np.concatenate([f_x[:, None], curve], axis=1))
