"""Hit rate / pointing game (Zhang et al., "Top-down Neural Attention by Excitation
Backprop", ECCV 2016; TorchRay's protocol): a hit when the map's maximum lies
within a tolerance of the annotated region. The tolerance is 15 px at 224 px and
scales with the input size (its longest side); on volumes it is in voxels, scaled by
the longest of ``(D, H, W)`` the same way (2.1 voxels at 32^3), and the distance is
the 3D Euclidean one. An empty mask gives NaN (undefined), never a hit.
"""
from __future__ import annotations

import numpy as np
import torch

from xaibench.scoring import kernels
from xaibench.contract.metric_inputs import Shared, unshared


def scaled_tolerance(tolerance: float, spatial: tuple[int, ...], reference: int) -> float:
    """The pointing tolerance in pixels for an input of ``spatial`` size: ``tolerance`` px at ``reference`` px, scaled
    by the longest side (15 px at 224 px is 2.14 px at 32 px).
    """
    return tolerance * max(spatial) / reference


def hit_rate(maps: torch.Tensor, masks: torch.Tensor | None, shared: Shared = unshared, tolerance: float = 15.0,
             reference_size: int = 224) -> np.ndarray:
    """Pointing game (Zhang et al., ECCV 2016; TorchRay's tolerance): ``(N,)`` float64 in [0, 1], higher is better.

    1 where the peak of ``maps`` ``(N, *spatial)`` lies within :func:`scaled_tolerance` pixels
    (Euclidean distance transform) of the mask ``masks`` ``(N, *spatial)`` bool; tied peaks count as
    the share of them that hit (the expectation under random tie-breaking). NaN on an empty mask
    (never a hit). The distance transform is computed once per tolerance and shared by the method's
    cells (``shared``). Raises ``ValueError`` without masks.
    """
    if masks is None:
        raise ValueError("hit rate needs masks")
    m = masks.cpu().numpy().astype(bool)
    tol = scaled_tolerance(tolerance, tuple(m.shape[1:]), reference_size)

    def compute() -> np.ndarray:  # the distance transform, once per mask, serves every map of the method
        return kernels.mask_scores(maps.cpu().numpy(), m, tolerance=tol).pointing

    return shared(("xaibench_metrics.hit_rate", tol), compute)
