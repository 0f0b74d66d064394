"""Infidelity (Yeh, Hsieh, Suggala, Inouye, Ravikumar, "On the (In)fidelity and
Sensitivity of Explanations", NeurIPS 2019, Def. 2.1):

    INFD(Phi, f, x) = E_I[ (I^T Phi(x) - (f(x) - f(x - I)))^2 ]

the mean squared error between the map's linear prediction of the output change and
the actual change, under random perturbations ``I``. Here ``I`` is Gaussian noise of
standard deviation ``noise`` per pixel, shared by all channels of the pixel (the map
scores pixels), ``runs`` perturbations per sample, ``f`` the target logit (or
probability). With ``normalize`` (the paper's Sec. 5 practice, captum's ``normalize``)
the map is first rescaled by the optimal ``beta = E[a b] / E[a^2]`` (a = I^T Phi,
b = output change), so the score measures the direction of the map, not its units.
Lower is better. Equal to ``captum.metrics.infidelity`` on the same perturbations.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from xaibench.scoring.engine import OUTPUTS, Engine


def pixel_noise(x: torch.Tensor, runs: int, noise: float, sample_seeds: Sequence[int]) -> torch.Tensor:
    """Perturbations ``(N * runs, C, *spatial)``, sample-major, equal across the channels of a pixel; sample ``i``'s
    ``runs`` drawn from ``sample_seeds[i]`` alone. Raises :class:`ValueError` for seeds not one per sample."""
    if len(sample_seeds) != x.shape[0]:
        raise ValueError(f"need one seed per sample, got {len(sample_seeds)} for {x.shape[0]} samples")
    per_pixel = noise * torch.cat([torch.randn(runs, 1, *x.shape[2:], generator=torch.Generator().manual_seed(int(s)))
                                   for s in sample_seeds])
    return per_pixel.to(x).expand(-1, x.shape[1], *x.shape[2:])


def infidelity(inputs: torch.Tensor, targets: torch.Tensor, maps: torch.Tensor, engine: Engine,
               sample_seeds: Sequence[int],
               runs: int = 32, noise: float = 0.1,
               normalize: bool = True, output: str = "logit") -> np.ndarray:
    """``mean_I (beta * I^T Phi - (f(x) - f(x - I)))^2`` over ``runs`` perturbations per sample."""
    if output not in OUTPUTS:
        raise ValueError(f"output must be one of {OUTPUTS}, got {output!r}")
    if runs < 1 or noise <= 0:
        raise ValueError("infidelity needs runs >= 1 and a positive noise level")
    n = inputs.shape[0]
    perturbations = pixel_noise(inputs, runs, noise, sample_seeds)
    f_x = engine.scores(inputs, targets, output).double()
    f_pert = engine.perturbed_scores(lambda s, t: inputs[s] - perturbations[s * runs + t], n, runs, targets, output)
    change = f_x[:, None] - f_pert.double()
    pixel = perturbations[:, 0].reshape(n, runs, -1).double()
    predicted = (pixel * maps.reshape(n, 1, -1).double().to(pixel.device)).sum(-1)
    if normalize:
        denom = (predicted**2).sum(1)
        beta = torch.where(denom > 0, (predicted * change).sum(1) / denom.clamp(min=1e-300), torch.zeros_like(denom))
        predicted = predicted * beta[:, None]
    return ((predicted - change) ** 2).mean(1).cpu().numpy()
