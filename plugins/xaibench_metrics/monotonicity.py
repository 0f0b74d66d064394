"""Faithfulness along the map's ranking of the pixels, in ``steps`` groups of consecutive ranks.

Pixels (all channels of a pixel together) are ranked by the map (:func:`xaibench.scoring.curves.pixel_ranks`;
ties in a random order seeded per sample from ``sample_seeds``, so two methods with the same map get
the same score) and cut into ``steps`` groups: group ``g`` holds the ranks
``[round(g P / steps), round((g + 1) P / steps))`` of the ``P`` pixels (Quantus's ``features_in_step``
is ``P / steps`` when that divides ``P``). Every perturbed input runs through the engine's batched
passes (:meth:`xaibench.scoring.engine.Engine.perturbed_scores`).

- Faithfulness Estimate (Alvarez-Melis and Jaakkola, "Towards Robust Interpretability with
  Self-Explaining Neural Networks", NeurIPS 2018, Sec. 3, "faithfulness"): the Pearson correlation,
  over the groups (most relevant first), between the map's sum over the group and the drop
  ``f(x) - f(x with the group set to the fill)`` of the target's output (logit by default, as
  Quantus's ``FaithfulnessEstimate`` with its ``softmax=False``). In [-1, 1], higher is better;
  NaN where the drops or the sums do not vary over the groups.
- Monotonicity (Arya et al., "One Explanation Does Not Fit All: A Toolkit and Taxonomy of AI
  Explainability Techniques", arXiv:1909.03012, 2019, Sec. 7 "monotonicity", AIX360's
  ``monotonicity_metric``): start from the fill, put the groups of the input back least relevant
  first, and score 1 when ``p_c`` never falls from one group to the next (the ``steps`` points after
  each insertion; the all-fill start is not one), else 0. In {0, 1}, higher is better.
- Monotonicity Correlation (Nguyen and Martinez, "On Quantitative Aspects of Model
  Interpretability", arXiv:2007.07584, 2020, Sec. 4.2 "monotonicity"): the Spearman correlation,
  over the groups, between the map's (absolute, with ``abs``) sum over the group and
  ``E[(f(x) - f(x with the group replaced))^2] / f(x)^2``, the expectation over ``draws``
  replacements of the whole group by one value drawn uniformly from ``[low, high]`` (Quantus's
  ``uniform`` baseline: one value per draw). Draw ``d`` of group ``g`` of sample ``i`` comes from
  ``sample_seeds[i]``: every method faces the same draws. ``1 / f(x)^2`` is constant per sample and
  does not change a rank correlation (it is kept for the definition). In [-1, 1], higher is better;
  NaN where either side is constant over the groups (a constant map, a saturated output).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from scipy.stats import rankdata

from xaibench.scoring.curves import perturbation_curve, pixel_ranks
from xaibench.scoring.engine import Engine
from xaibench_metrics.completeness import fill_baseline, pearson_rows


def group_bounds(pixels: int, steps: int) -> torch.Tensor:
    """``(steps + 1,)`` long: group ``g`` holds the ranks ``[bounds[g], bounds[g + 1])`` of ``pixels`` pixels.

    Raises :class:`ValueError` unless ``1 <= steps <= pixels`` (every group holds a pixel).
    """
    if not 1 <= steps <= pixels:
        raise ValueError(f"steps must be between 1 and the {pixels} pixels of the input, got {steps}")
    return torch.round(torch.arange(steps + 1, dtype=torch.float64) * pixels / steps).long()


def _groups(maps: torch.Tensor, sample_seeds: Sequence[int], steps: int, ascending: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Each pixel's group ``(N, P)`` long (0 = first perturbed) and the map's sum per group ``(N, steps)`` float64."""
    flat = maps.reshape(maps.shape[0], -1)
    ranks = pixel_ranks(-flat if ascending else flat, sample_seeds)
    bounds = group_bounds(flat.shape[1], steps).to(ranks.device)
    group = torch.bucketize(ranks, bounds[1:], right=True)
    sums = torch.zeros(flat.shape[0], steps, dtype=torch.float64, device=flat.device)
    sums.scatter_add_(1, group, flat.double())
    return group, sums


def faithfulness_estimate(inputs: torch.Tensor, targets: torch.Tensor, maps: torch.Tensor, engine: Engine,
                          base_logits: torch.Tensor, sample_seeds: Sequence[int],
                          data_mean: torch.Tensor | None = None, steps: int = 64, fill: str = "zero",
                          output: str = "logit") -> np.ndarray:
    """Faithfulness Estimate (Alvarez-Melis and Jaakkola 2018): ``corr_g(sum_g a, f(x) - f(x_{g <- fill}))``.

    ``inputs`` ``(N, C, *spatial)``, ``maps`` ``(N, *spatial)``; ``(N,)`` float64 in [-1, 1], NaN where either
    side is constant over the groups. Raises :class:`ValueError` for a bad ``steps``, ``fill`` or ``output``.
    """
    x = inputs.to(engine.device)
    group, sums = _groups(maps.to(x.device), sample_seeds, steps, ascending=False)
    canvas = fill_baseline(x, fill, data_mean).to(x)
    shape = (-1, 1, *x.shape[2:])

    def perturb(sample_idx: torch.Tensor, step_idx: torch.Tensor) -> torch.Tensor:
        removed = (group[sample_idx] == step_idx[:, None]).reshape(shape)
        return torch.where(removed, canvas[sample_idx], x[sample_idx])

    f_x = engine.select(base_logits.to(x.device), targets, output)
    drops = f_x[:, None].double() - engine.perturbed_scores(perturb, x.shape[0], steps, targets, output).double()
    return pearson_rows(sums.cpu().numpy(), drops.cpu().numpy())


def monotonicity_curve(inputs: torch.Tensor, targets: torch.Tensor, maps: torch.Tensor, engine: Engine,
                       base_logits: torch.Tensor, sample_seeds: Sequence[int],
                       data_mean: torch.Tensor | None, steps: int, fill: str, abs: bool) -> np.ndarray:
    """``p_c`` of the fill with the least relevant ``s`` groups of the input put back, ``s = 1..steps``: ``(N, steps)``."""
    group_bounds(int(np.prod(inputs.shape[2:])), steps)
    canvas = fill_baseline(inputs, fill, data_mean)
    order = -(maps.abs() if abs else maps)  # the least relevant first: insertion in decreasing order of -a
    curve = perturbation_curve(engine, inputs, targets, order, "insertion", canvas, steps,
                               input_scores=engine.select(base_logits, targets, "prob"),
                               sample_seeds=sample_seeds)
    return curve[:, 1:]


def monotonicity(inputs: torch.Tensor, targets: torch.Tensor, maps: torch.Tensor, engine: Engine,
                 base_logits: torch.Tensor, sample_seeds: Sequence[int],
                 data_mean: torch.Tensor | None = None, steps: int = 32, fill: str = "zero",
                 abs: bool = False) -> np.ndarray:
    """Monotonicity (Arya et al. 2019): 1.0 where ``p_c`` never falls as groups are put back least relevant first.

    ``(N,)`` float64 in {0, 1}; never NaN. Raises :class:`ValueError` for a bad ``steps`` or ``fill``.
    """
    curve = monotonicity_curve(inputs, targets, maps, engine, base_logits, sample_seeds, data_mean, steps, fill, abs)
    return np.all(np.diff(curve, axis=1) >= 0, axis=1).astype(np.float64)


def replacement_values(sample_seeds: Sequence[int], steps: int, draws: int, low: float, high: float) -> torch.Tensor:
    """``(N, steps, draws)`` float64: the value drawn uniformly in ``[low, high]`` for each sample, group and draw,
    from the sample's seed only. Raises :class:`ValueError` for ``draws < 1`` or ``low >= high``."""
    if draws < 1 or not low < high:
        raise ValueError(f"monotonicity-correlation needs draws >= 1 and low < high, got {draws}, [{low}, {high}]")
    return torch.stack([low + (high - low) * torch.rand(steps, draws, generator=torch.Generator().manual_seed(int(s)),
                                                        dtype=torch.float64) for s in sample_seeds])


def spearman_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise Spearman rank correlation of ``(N, S)`` arrays (average ranks for ties); NaN where a row is constant."""
    return pearson_rows(rankdata(a, axis=1), rankdata(b, axis=1))


def monotonicity_correlation(inputs: torch.Tensor, targets: torch.Tensor, maps: torch.Tensor, engine: Engine,
                             base_logits: torch.Tensor, sample_seeds: Sequence[int], steps: int = 32,
                             draws: int = 8, low: float = 0.0, high: float = 1.0, abs: bool = True,
                             output: str = "prob") -> np.ndarray:
    """Monotonicity Correlation (Nguyen and Martinez 2020): ``spearman_g(sum_g |a|, E[(f(x) - f(x_g'))^2] / f(x)^2)``.

    ``(N,)`` float64 in [-1, 1]; NaN where either side is constant over the groups. ``steps * draws``
    forward passes per sample. Raises :class:`ValueError` for a bad ``steps``, ``draws``, range or ``output``.
    """
    x = inputs.to(engine.device)
    values = (maps.abs() if abs else maps).to(x.device)
    group, sums = _groups(values, sample_seeds, steps, ascending=True)
    fills = replacement_values(sample_seeds, steps, draws, low, high).to(x)
    shape = (-1, 1, *x.shape[2:])

    def perturb(sample_idx: torch.Tensor, step_idx: torch.Tensor) -> torch.Tensor:
        g, d = step_idx // draws, step_idx % draws
        replaced = (group[sample_idx] == g[:, None]).reshape(shape)
        value = fills[sample_idx, g, d].reshape(-1, *[1] * (x.dim() - 1))
        return torch.where(replaced, value, x[sample_idx])

    f_x = engine.select(base_logits.to(x.device), targets, output).double()
    scores = engine.perturbed_scores(perturb, x.shape[0], steps * draws, targets, output).double()
    spread = ((scores.view(x.shape[0], steps, draws) - f_x[:, None, None]) ** 2).mean(2)
    spread = spread / (f_x[:, None] ** 2).clamp(min=1e-300)
    return spearman_rows(sums.cpu().numpy(), spread.cpu().numpy())
