"""Average Drop / Drop in Confidence (DiC) and Increase in Confidence (IiC).

Chattopadhay et al., "Grad-CAM++", WACV 2018, Sec. 5.1: with ``p_c(x)`` the
softmax probability of the explained class and ``L`` the map scaled to [0, 1]
(after the sign handling, its minimum subtracted and divided by its range: the
heat map's min-max scaling, :func:`xaibench.scoring.maps.normalize` with ``subtract_min``),

    Average Drop = 100/N * sum_i max(0, p_c(x_i) - p_c(x_i * L_i)) / p_c(x_i)
    Increase in Confidence = 100/N * sum_i 1[p_c(x_i * L_i) > p_c(x_i)]

Each function returns the per-sample term (so the runner's mean is the paper's
score). Seed 001 covers pixels two ways, darkening by the heat map (``x * L``) and
zeroing by a binary mask thresholded from it, each applied to the non-essential
part (the paper's setting: keep what the map marks) or to the important part
(``x * (1 - L)``: remove what the map marks). Note that pytorch-grad-cam's
``DropInConfidence`` is a different quantity (no division by ``p_c(x)``, logits).

Degenerate maps: a map that is constant after the sign handling (all zero, or a
uniform offset) scales to all zeros, so it keeps nothing of the image (the worst drop
with the non-essential part covered, never the best); the runner scores a map that
is constant before it NaN and counts it.
"""
from __future__ import annotations

import numpy as np
import torch

from xaibench.scoring.engine import Engine
from xaibench.scoring.maps import normalize
from xaibench.contract.metric_inputs import Shared, unshared

COVERS = ("nonessential", "important")
FILLS = ("darken", "zero")


def covered_inputs(x: torch.Tensor, saliency: torch.Tensor, cover: str, fill: str, threshold: float,
                   sign: str) -> torch.Tensor:
    """``x`` with the non-essential (or the important) part darkened or zeroed."""
    if cover not in COVERS:
        raise ValueError(f"cover must be one of {COVERS}, got {cover!r}")
    if fill not in FILLS:
        raise ValueError(f"fill must be one of {FILLS}, got {fill!r}")
    keep = normalize(saliency, sign, subtract_min=True)
    if fill == "zero":
        keep = (keep >= threshold).float()
    if cover == "important":
        keep = 1.0 - keep
    return x * keep.unsqueeze(1)


def _probs(inputs: torch.Tensor, targets: torch.Tensor, maps: torch.Tensor, engine: Engine,
           base_logits: torch.Tensor, cover: str, fill: str,
           threshold: float, sign: str, shared: Shared) -> tuple[torch.Tensor, torch.Tensor]:
    """``p_c(x)`` and ``p_c(x_L)``; the covered pass is shared (``shared``) by DiC and IiC of the same variant."""
    base = engine.select(base_logits, targets, "prob")
    covered = shared(("confidence-covered", cover, fill, float(threshold), sign, tuple(targets.tolist())), lambda: engine.scores(
        covered_inputs(inputs, maps, cover, fill, threshold, sign), targets, "prob"))
    return base, covered


def drop_in_confidence(inputs: torch.Tensor, targets: torch.Tensor, maps: torch.Tensor, engine: Engine,
                       base_logits: torch.Tensor,
                       cover: str = "nonessential", fill: str = "darken", threshold: float = 0.5,
                       sign: str = "positive", shared: Shared = unshared) -> np.ndarray:
    """Average Drop (Chattopadhay et al., WACV 2018, Sec. 5.1) per sample: ``100 * max(0, p_c(x) - p_c(x_L)) / p_c(x)``.

    ``x_L`` is ``inputs`` ``(N, C, *spatial)`` with the part ``cover`` names (``nonessential`` or
    ``important``) darkened by the map (``fill: darken``, ``x * L`` or ``x * (1 - L)``) or zeroed below
    or above ``threshold`` (``fill: zero``); ``L`` is ``maps`` ``(N, *spatial)`` after ``sign`` handling,
    min-max scaled per map. ``p_c`` is the softmax probability of ``targets`` ``(N,)``, the unperturbed
    one read from ``base_logits`` ``(N, K)``; the covered pass is computed once for DiC and IiC of the same
    variant (``shared``). Returns ``(N,)`` float in [0, 100], in percent; NaN where
    ``p_c(x)`` is 0 in floating point. Raises ``ValueError`` for an unknown ``cover``, ``fill`` or ``sign``.
    """
    base, covered = _probs(inputs, targets, maps, engine, base_logits, cover, fill, threshold, sign, shared)
    return (100.0 * (base - covered).clamp(min=0) / base).cpu().numpy()


def increase_in_confidence(inputs: torch.Tensor, targets: torch.Tensor, maps: torch.Tensor, engine: Engine,
                           base_logits: torch.Tensor,
                           cover: str = "nonessential", fill: str = "darken", threshold: float = 0.5,
                           sign: str = "positive", shared: Shared = unshared) -> np.ndarray:
    """Increase in Confidence (Chattopadhay et al., WACV 2018, Sec. 5.1) per sample: ``100 * 1[p_c(x_L) > p_c(x)]``.

    ``x_L``, ``p_c`` and the parameters as in :func:`drop_in_confidence`. Returns ``(N,)`` float, each
    0 or 100 (percent of samples, once averaged); a tie (``p_c(x_L) == p_c(x)``) is not an increase.
    Raises ``ValueError`` for an unknown ``cover``, ``fill`` or ``sign``.
    """
    base, covered = _probs(inputs, targets, maps, engine, base_logits, cover, fill, threshold, sign, shared)
    return (100.0 * (covered > base).float()).cpu().numpy()
