"""Occlusion completeness (seed 003): how much of the output change the map accounts for.

Completeness error, after the completeness axiom of Sundararajan et al. 2017 (ICML)
and the "summation-to-delta" property of Shrikumar et al. 2017: with ``f`` the
target logit (what the methods explain) and ``b`` the fully occluded input,

    error = |sum_i a_i - (f(x) - f(b))| / |f(x) - f(b)|

0 for a complete attribution; NaN where the model's output does not change.

Sensitivity-n (Ancona et al., "Towards better understanding of gradient-based
attribution methods", ICLR 2018): the Pearson correlation, over random sets S of n
patches, between ``sum_{i in S} a_i`` and ``f(x) - f(x with S occluded)``.

Faithfulness correlation (Bhatt et al., "Evaluating and Aggregating Feature-based
Model Explanations", IJCAI 2020, Eq. 2) is the same correlation over random subsets
S of single pixels of a fixed size (``subset``, a fraction of the pixels), set to a
baseline: ``corr_S( sum_{i in S} g_i , f(x) - f(x_{S <- baseline}) )``. Bhatt et al.
leave ``f`` as the model's output for the class; we take the target *logit* by default
(``output: logit``, as Quantus's ``FaithfulnessCorrelation`` does with its default
``softmax=False``), because a float32 softmax saturates: a confident model's ``p_c``
stays exactly 1.0 when 5% of the pixels are zeroed, every drop is 0, and the
correlation is undefined on every sample (seen on a 28 px ultrasound set), while the
logit still moves. ``output: prob`` is the probability version; the leaderboard's
metric table shows which one a run used.

Undefined (NaN): where the output drops or the map's subset sums do not vary over the
sets (Pearson's correlation has a zero denominator); the leaderboard names the rule.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from xaibench.scoring.engine import OUTPUTS, Engine
from xaibench.scoring.fills import mean_fill
from xaibench_metrics.references import FILLS


def fill_baseline(x: torch.Tensor, fill: str, data_mean: torch.Tensor | None) -> torch.Tensor:
    """The uninformative input that occluded pixels take: zeros or the training mean per channel."""
    if fill not in FILLS:
        raise ValueError(f"fill must be one of {', '.join(FILLS)}, got {fill!r}")
    return torch.zeros_like(x) if fill == "zero" else mean_fill(x, data_mean)


def completeness_error(inputs: torch.Tensor, targets: torch.Tensor, maps: torch.Tensor, engine: Engine,
                       data_mean: torch.Tensor | None = None,
                       fill: str = "zero", output: str = "logit", eps: float = 1e-6) -> np.ndarray:
    """Completeness error (seed 003; Sundararajan et al. 2017's completeness axiom), ``(N,)`` float64 >= 0, lower is better.

    ``|sum_i a_i - (f_c(x) - f_c(x_0))| / |f_c(x) - f_c(x_0)|`` with ``x_0`` the input set to ``fill``
    (``zero`` or ``mean``: the training data's per-channel mean ``data_mean``) and ``f_c`` the target's
    ``output`` (``logit`` or ``prob``). ``inputs`` ``(N, C, *spatial)``, ``targets`` ``(N,)``, ``maps``
    ``(N, *spatial)`` in the output's units. NaN where ``|f_c(x) - f_c(x_0)| <= eps`` (nothing to account
    for). Raises ``ValueError`` for an unknown ``output`` or ``fill``.
    """
    if output not in OUTPUTS:
        raise ValueError(f"output must be one of {OUTPUTS}")
    f_x = engine.scores(inputs, targets, output)
    f_b = engine.scores(fill_baseline(inputs, fill, data_mean), targets, output)
    delta = (f_x - f_b).double()
    total = maps.reshape(maps.shape[0], -1).double().sum(1).to(delta.device)
    err = (total - delta).abs() / delta.abs()
    return torch.where(delta.abs() > eps, err, torch.full_like(err, float("nan"))).cpu().numpy()


def patch_sets(sample_seeds: Sequence[int], spatial: tuple[int, ...], patch: int, n: int, sets: int) -> torch.Tensor:
    """Random sets of ``n`` patches per sample: bool ``(N, sets, *spatial)``, sample ``i``'s drawn from
    ``sample_seeds[i]`` alone (the same sets whatever its position or batch-mates)."""
    grid = tuple(max(1, s // patch) for s in spatial)
    cells = int(np.prod(grid))
    if not 0 < n < cells:
        raise ValueError(f"n must be between 1 and {cells - 1} patches for a {spatial} input with patch {patch}")
    scores = torch.cat([torch.rand(sets, cells, generator=torch.Generator().manual_seed(int(s))) for s in sample_seeds])
    chosen = torch.zeros_like(scores, dtype=torch.bool)
    chosen.scatter_(1, scores.topk(n, dim=1).indices, True)
    coarse = chosen.float().reshape(len(sample_seeds) * sets, 1, *grid)
    full = F.interpolate(coarse, size=spatial, mode="nearest")[:, 0] > 0.5
    return full.reshape(len(sample_seeds), sets, *spatial)


def sensitivity_n(inputs: torch.Tensor, targets: torch.Tensor, maps: torch.Tensor, engine: Engine,
                  sample_seeds: Sequence[int],
                  data_mean: torch.Tensor | None = None,
                  n: int = 8, patch: int = 8, sets: int = 32, fill: str = "zero", output: str = "logit") -> np.ndarray:
    """Sensitivity-n (Ancona et al., ICLR 2018, Sec. 4): Pearson correlation, ``(N,)`` float64 in [-1, 1], higher is better.

    Over ``sets`` random sets of ``n`` patches of ``patch`` pixels per axis (sample ``i``'s drawn from
    ``sample_seeds[i]``, the same for every method), the correlation between the map's sum over the set and the
    drop of the target's ``output`` when the set is set to ``fill``. ``inputs`` ``(N, C, *spatial)``, ``maps``
    ``(N, *spatial)``. NaN where either series is constant over the sets. Raises ``ValueError`` when
    ``n`` is not between 1 and the number of patches minus 1, for an unknown ``output``/``fill``, or for seeds
    that are not one per sample.
    """
    if len(sample_seeds) != inputs.shape[0]:
        raise ValueError(f"need one seed per sample, got {len(sample_seeds)} for {inputs.shape[0]} samples")
    spatial = tuple(inputs.shape[2:])
    s_masks = patch_sets(sample_seeds, spatial, patch, n, sets).to(inputs.device)
    baseline = fill_baseline(inputs, fill, data_mean)

    def perturb(sample_idx: torch.Tensor, step_idx: torch.Tensor) -> torch.Tensor:
        m = s_masks[sample_idx, step_idx].unsqueeze(1)
        return torch.where(m, baseline[sample_idx], inputs[sample_idx])

    f_x = engine.scores(inputs, targets, output)
    f_s = engine.perturbed_scores(perturb, inputs.shape[0], sets, targets, output)
    drop = (f_x[:, None] - f_s).double()
    attr = (s_masks.flatten(2).double() * maps.reshape(maps.shape[0], 1, -1).double().to(inputs.device)).sum(-1)
    return pearson_rows(attr.cpu().numpy(), drop.cpu().numpy())


def pearson_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise Pearson correlation; NaN where either row is constant."""
    a = a - a.mean(1, keepdims=True)
    b = b - b.mean(1, keepdims=True)
    den = np.sqrt((a**2).sum(1) * (b**2).sum(1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (a * b).sum(1) / den, np.nan)


def faithfulness_correlation(inputs: torch.Tensor, targets: torch.Tensor, maps: torch.Tensor, engine: Engine,
                             sample_seeds: Sequence[int],
                             data_mean: torch.Tensor | None = None, subset: float = 0.05, runs: int = 64,
                             fill: str = "zero",
                             output: str = "logit") -> np.ndarray:
    """Bhatt et al.'s ``corr_S(sum_S g, f(x) - f(x_S))``: sensitivity-n with single-pixel patches."""
    if not 0 < subset < 1:
        raise ValueError(f"subset must be a fraction of the pixels in (0, 1), got {subset}")
    n = max(1, round(subset * int(np.prod(inputs.shape[2:]))))
    return sensitivity_n(inputs, targets, maps, engine, sample_seeds, data_mean, n=n, patch=1, sets=runs, fill=fill,
                         output=output)
