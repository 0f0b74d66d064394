"""Continuity (Montavon, Samek and Müller, "Methods for Interpreting and Understanding Deep Neural
Networks", Digital Signal Processing 2018, Sec. 5.1 "explanation continuity"): nearly equivalent
inputs should get nearly equivalent explanations, measured as the largest ratio

    C = max_{x' != x} ||R(x) - R(x')||_1 / ||x - x'||_2

over inputs ``x'`` that are translations of ``x`` by each of ``shifts`` pixels along the last
spatial axis (positive: towards higher indices), the uncovered pixels set to the fill (zeros or the
training mean), the maps compared pixel by pixel as Montavon et al. compare them. A translation
that leaves the input unchanged (``x' = x``) is not a pair of the definition and is left out; NaN
where every translation does. Maps are scaled by their largest absolute value and taken absolute
(``normalise``, ``abs``, so that methods whose maps live on different scales compare): ``normalise:
sample`` (the default) scales each map by its own largest, ``batch`` the maps of the batch and those of
each translated batch by the batch's largest, as Quantus 0.6 does (a sample's score then depends on the
others, :mod:`xaibench_metrics.scaling`), ``none`` not at all; lower is better. Quantus 0.6's
``Continuity`` translates by ``-W + dx, -W + 2 dx, ...`` (``dx = (2W + 1) // nr_steps``), the zero shift
and a fully covered input among them, fills with the sample's minimum whatever its ``perturb_baseline``,
and divides by ``||x - x'|| + 1e-9`` (the zero shift then adds a ratio 0): on the same nonzero shifts and a
minimum of 0 the two agree, with ``normalise: batch`` as with unscaled maps (``none``).
Cost: one re-explanation of the cell's samples per shift.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from xaibench_metrics.completeness import fill_baseline
from xaibench_metrics.robustness import restacked
from xaibench_metrics.scaling import NORMALISE as SCALES
from xaibench_metrics.scaling import scaled


def translate(inputs: torch.Tensor, shift: int, canvas: torch.Tensor) -> torch.Tensor:
    """``inputs`` ``(N, C, *spatial)`` moved by ``shift`` positions along the last axis, uncovered positions from
    ``canvas`` (same shape); ``|shift| >= length`` gives the canvas."""
    length = inputs.shape[-1]
    out = canvas.clone()
    if abs(shift) >= length:
        return out
    if shift >= 0:
        out[..., shift:] = inputs[..., : length - shift]
    else:
        out[..., : length + shift] = inputs[..., -shift:]
    return out


#: ``normalise``: one of :data:`xaibench_metrics.scaling.NORMALISE`, or ``none`` (the maps as the method returns them).
NORMALISE = (*SCALES, "none")


def _scaled(maps: torch.Tensor, normalise: str, abs: bool) -> torch.Tensor:
    flat = maps.reshape(maps.shape[0], -1).double()
    if normalise != "none":
        flat = torch.from_numpy(scaled(flat.cpu().numpy(), normalise)).to(flat.device)
    return flat.abs() if abs else flat


def continuity(inputs: torch.Tensor, maps: torch.Tensor, explain: Callable[..., torch.Tensor],
               data_mean: torch.Tensor | None = None, shifts: Sequence[int] = (1, 2, 3, 4), fill: str = "zero",
               normalise: str = "sample", abs: bool = True) -> np.ndarray:
    """Continuity (Montavon et al. 2018): ``max_t ||R(x) - R(x_t)||_1 / ||x - x_t||_2`` over translations ``x_t``.

    ``(N,)`` float64 >= 0, lower is better; NaN where no shift changes the input. Raises
    :class:`ValueError` for no shifts, a zero shift, a bad ``fill`` or a ``normalise`` not in :data:`NORMALISE`.
    """
    if normalise not in NORMALISE:
        raise ValueError(f"normalise must be one of {', '.join(NORMALISE)}, got {normalise!r}")
    if not shifts or any(int(t) == 0 for t in shifts):
        raise ValueError(f"continuity needs non-zero translations in pixels, got shifts {list(shifts)}")
    canvas = fill_baseline(inputs, fill, data_mean).to(inputs)
    reference = _scaled(maps.to(inputs.device), normalise, abs)
    best = torch.full((inputs.shape[0],), float("nan"), dtype=torch.float64, device=inputs.device)
    every, maps_of = restacked(inputs, explain, torch.stack([translate(inputs, int(t), canvas) for t in shifts]))
    for moved, again in zip(every, maps_of):
        step = (inputs - moved).reshape(inputs.shape[0], -1).double().norm(dim=1)
        again = _scaled(again, normalise, abs)
        ratio = (again - reference).abs().sum(1) / step.clamp(min=1e-300)
        ratio = torch.where(step > 0, ratio, torch.full_like(ratio, float("nan")))
        best = torch.fmax(best, ratio)
    return best.cpu().numpy()
