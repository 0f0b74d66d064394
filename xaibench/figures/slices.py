"""Orthogonal slices of a volume through a map's peak: how figures draw volumes ``(C, D, H, W)``.

A volume's gallery panel is three planes stacked top to bottom through one point: axial
(the ``D`` plane, ``H x W``), coronal (the ``H`` plane, ``D x W``) and sagittal (the
``W`` plane, ``D x H``), separated by one blank row and right-padded to a common
width, so that a gallery of many methods stays about as wide as it is tall. The point is the map's peak (its first maximum of ``|map|`` in C order), or,
for the input alone, the mask voxel nearest its centre of mass (the volume's centre without a mask),
so each panel shows where the method points and whether the lesion is there.
"""
from __future__ import annotations

import numpy as np

#: The planes, top to bottom, as figure captions name them.
PLANES = ("axial", "coronal", "sagittal")


def slice_point(saliency: np.ndarray | None, mask: np.ndarray | None, shape: tuple[int, int, int]) -> tuple[int, ...]:
    """``(d, h, w)``: the peak of ``|saliency|``; else the mask voxel nearest the mask's centre of mass
    (first in C order on ties: inside the mask even when it is not convex); else the centre of ``shape``."""
    if saliency is not None:
        return tuple(int(i) for i in np.unravel_index(int(np.argmax(np.abs(saliency))), shape))
    if mask is not None and np.asarray(mask).any():
        voxels = np.argwhere(mask)
        return tuple(int(i) for i in voxels[np.argmin(((voxels - voxels.mean(0)) ** 2).sum(1))])
    return tuple(s // 2 for s in shape)


def _planes(v: np.ndarray, point: tuple[int, ...]) -> list[np.ndarray]:
    """The axial, coronal and sagittal planes of ``v`` ``(..., D, H, W)`` through ``point``."""
    d, h, w = point
    return [v[..., d, :, :], v[..., :, h, :], v[..., :, :, w]]


def _stacked(planes: list[np.ndarray], fill: float) -> np.ndarray:
    """Planes ``(..., rows_i, cols_i)`` joined top to bottom, one ``fill`` row between, right-padded."""
    cols = max(p.shape[-1] for p in planes)
    parts = []
    for k, p in enumerate(planes):
        pad = [(0, 0)] * (p.ndim - 2) + [(0, 0 if k == len(planes) - 1 else 1), (0, cols - p.shape[-1])]
        parts.append(np.pad(p.astype(np.float64), pad, constant_values=fill))
    return np.concatenate(parts, axis=-2)


def orthogonal_slices(x: np.ndarray, saliency: np.ndarray | None, mask: np.ndarray | None
                      ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """``x`` ``(C, D, H, W)``, ``saliency`` and ``mask`` ``(D, H, W)`` (or None) as one 2D composite each.

    Returns ``(x2d (C, R, K), saliency2d (R, K) | None, mask2d (R, K) bool | None)`` with
    ``R = H + D + D + 2`` and ``K = max(W, H)``: the three planes through :func:`slice_point`.
    Padding is the input's minimum, 0 for the map and False for the mask. Raises ValueError
    when ``x`` is not 4D or the shapes disagree.
    """
    if x.ndim != 4:
        raise ValueError(f"a volume is (C, D, H, W), got shape {x.shape}")
    shape = tuple(x.shape[1:])
    for name, a in (("saliency", saliency), ("mask", mask)):
        if a is not None and tuple(np.shape(a)) != shape:
            raise ValueError(f"{name} of shape {np.shape(a)} does not match the volume {shape}")
    point = slice_point(saliency, mask, shape)  # type: ignore[arg-type]
    x2d = _stacked(_planes(x, point), float(x.min()))
    s2d = None if saliency is None else _stacked(_planes(np.asarray(saliency), point), 0.0)
    m2d = None if mask is None else _stacked(_planes(np.asarray(mask, dtype=bool), point), 0.0) > 0.5
    return x2d, s2d, m2d
