"""ARCC (Domeniconi, "How to Evaluate and Refine your CAM", ICPR 2026; pytorch-grad-cam PR #595,
``pytorch_grad_cam.metrics.arcc.ARCC``): one score from three properties of a map ``L`` scaled to [0, 1]
(min-max per map, as pytorch-grad-cam scales its CAMs):

- Complexity (Poppi et al., "Revisiting the Evaluation of Class Activation Mapping for Explainability",
  CVPR-W 2021): ``mean |L|``, the share of the image the map lights up (lower is simpler);
- Coherency (Poppi et al. 2021): ``(rho(L', L) + 1) / 2`` with ``L'`` the method's (scaled) map of the
  input masked by its own map, ``x * L``, and ``rho`` Pearson's correlation: a coherent map keeps
  pointing at what it kept;
- ROAD (Rong et al., ICML 2022), combined as pytorch-grad-cam's ``ROADCombined``: half the difference of
  the mean ``p_c`` after removing the least and the most relevant pixels (noisy linear imputation,
  :func:`xaibench_metrics.road.road`) at the removed fractions ``1 - q/100`` of the ``percentiles`` ``q``
  (20, 40, 60, 80: pytorch-grad-cam keeps the pixels below the ``q``-th percentile), in [-0.5, 0.5],
  then ``R = clip(2 * ROAD, 0, 1)``. Exactly ``round(f P)`` pixels are removed at fraction ``f`` (ties in
  index order, as ROAD defines the fractions); pytorch-grad-cam removes every pixel at or above the
  percentile, more than the fraction when a tie crosses it (CAMs with many exact zeros).

    ARCC = 3 / (1 / Coherency + 1 / (1 - Complexity) + 1 / R)

the harmonic mean of the three, as the reference implementation computes it (its docstring says
"geometric mean", its code and ADCC, Poppi et al.'s predecessor, use the harmonic mean; we follow
the code). The reference adds 1e-8 to each denominator, so a zero component gives about 3e-8; here
the harmonic mean's limit, 0. In [0, 1], higher is better. NaN where the map or the map of the
masked input is constant (Pearson's correlation undefined; the reference divides by 1e-8 and scores
the coherency 0.5). ``noise`` is ROAD's imputation noise, drawn from each sample's seed in ``sample_seeds`` (every
method faces the same draws). Cost: one re-explanation plus ``2 * len(percentiles)`` imputed passes per sample.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from xaibench.scoring.engine import Engine
from xaibench_metrics.completeness import pearson_rows
from xaibench_metrics.road import road


def min_max(maps: torch.Tensor) -> torch.Tensor:
    """Each map ``(N, *spatial)`` scaled to [0, 1] by its minimum and maximum (a constant map stays 0), float64."""
    flat = maps.reshape(maps.shape[0], -1).double()
    low = flat.amin(1, keepdim=True)
    span = flat.amax(1, keepdim=True) - low
    return torch.where(span > 0, (flat - low) / span.clamp(min=1e-300), torch.zeros_like(flat)).reshape(maps.shape)


def arcc(inputs: torch.Tensor, targets: torch.Tensor, maps: torch.Tensor, engine: Engine, sample_seeds: Sequence[int],
         explain: Callable[..., torch.Tensor], percentiles: Sequence[float] = (20, 40, 60, 80),
         noise: float = 0.01) -> np.ndarray:
    """ARCC (module doc), ``(N,)`` float64 in [0, 1]; NaN where the map or its re-explanation is constant.

    Raises :class:`ValueError` for percentiles outside (0, 100).
    """
    if not percentiles or not all(0 < q < 100 for q in percentiles):
        raise ValueError(f"ARCC's percentiles must lie strictly between 0 and 100, got {list(percentiles)}")
    scaled = min_max(maps.to(inputs.device))
    complexity = scaled.flatten(1).abs().mean(1).cpu().numpy()
    again = min_max(explain(inputs=inputs * scaled[:, None].to(inputs.dtype)).to(inputs.device))
    coherency = (pearson_rows(again.flatten(1).cpu().numpy(), scaled.flatten(1).cpu().numpy()) + 1) / 2
    fractions = [1 - q / 100 for q in percentiles]
    lerf = road(inputs, targets, scaled.float(), engine, sample_seeds, "lerf", fractions, noise)
    morf = road(inputs, targets, scaled.float(), engine, sample_seeds, "morf", fractions, noise)
    removal = np.clip(lerf - morf, 0.0, 1.0)  # 2 * ROADCombined
    parts = np.stack([coherency, 1 - complexity, removal], 1)
    with np.errstate(divide="ignore"):
        harmonic = np.where((parts > 0).all(1), 3 / (1 / np.where(parts > 0, parts, 1)).sum(1), 0.0)
    return np.where(np.isfinite(coherency), harmonic, np.nan)
