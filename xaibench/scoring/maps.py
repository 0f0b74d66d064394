"""Helpers every method and metric plugin shares for handling saliency maps."""
from __future__ import annotations

import torch
import torch.nn.functional as F

SIGNS = ("abs", "positive", "raw")


def upsample(saliency: torch.Tensor, spatial: tuple[int, ...]) -> torch.Tensor:
    """Resize ``(N, *s)`` maps to ``(N, *spatial)`` (linear/bilinear, corners aligned off).

    The harness does this for every method, so CAM plugins return their native
    feature-map resolution and all methods are upsampled the same way.
    """
    if tuple(saliency.shape[1:]) == tuple(spatial):
        return saliency
    if saliency.dim() - 1 != len(spatial):
        raise ValueError(f"map of shape {tuple(saliency.shape)} cannot be resized to {spatial}")
    mode = {1: "linear", 2: "bilinear", 3: "trilinear"}[len(spatial)]
    return F.interpolate(saliency[:, None].float(), size=spatial, mode=mode, align_corners=False)[:, 0]


def coarser_fits(shape: tuple[int, ...], spatial: tuple[int, ...]) -> bool:
    """True where a map of spatial ``shape`` is ``spatial`` (an input's) or coarser in its proportions, the way a
    network's feature map is: no axis larger, and one stride ``s >= 1`` for the image plane (a signal's axis,
    an image's height and width, a volume's last two axes), each map axis ``spatial_i / s`` rounded down or up
    (``|spatial_i / s - shape_i| < 1``: convolutions and pooling floor or pad ``spatial_i / s``). A volume's
    depth (or time) axis may have a stride of its own, as 3D networks stride it differently (r3d-18: 8 in
    time, 16 in space). A map with height and width swapped ((12, 8) for a 32x48 input: strides 2.7 and 6)
    is not, nor a map with another number of axes."""
    if len(shape) != len(spatial) or any(m < 1 or m > n for m, n in zip(shape, spatial)):
        return False
    plane = list(zip(shape, spatial))[-2:]
    low = max(max(1.0, n / (m + 1)) for m, n in plane)  # s > n / (m + 1) on every axis (s >= 1)
    return all(m == 1 or n / (m - 1) > low for m, n in plane)  # s < n / (m - 1) on every axis


def expected_maps(n: int, spatial: tuple[int, ...]) -> str:
    """The one phrase every refusal of a map's shape ends with: what it should have been."""
    return (f"expected ({n}, {', '.join(map(str, spatial))}) or a coarser map in the same proportions (each axis "
            f"the input's divided by one stride; no channel axis)")


def normalize(saliency: torch.Tensor, sign: str = "positive", subtract_min: bool = False) -> torch.Tensor:
    """``(N, *s)`` maps -> ``(N, *s)`` float32 in [0, 1], each map scaled on its own after sign handling.

    ``abs`` keeps evidence of both signs, ``positive`` only evidence for the class
    (negative values become 0), ``raw`` keeps the signed values. ``raw`` always, and the
    others with ``subtract_min``, subtract the map's minimum and divide by its range
    (min-max scaling): the scaling of a heat map to [0, 1] behind the Grad-CAM++
    explanation map ``E = L * x`` (Chattopadhay et al. 2018, Sec. 5.1; pytorch-grad-cam's
    ``scale_cam_image`` does the same), so that a constant offset over the whole map
    (a RISE map whose minimum is 84% of its maximum) does not keep the whole image.
    Without it, ``abs`` and ``positive`` divide by the maximum only, keeping the ratios
    of the values (what relevance mass and the other mass scores read).

    Any positive range is divided out exactly (a map of gradients around 1e-20 still spans [0, 1]).
    A map that is constant after sign handling carries no ranking: with min-max scaling,
    and wherever it is all zero, it becomes all zeros; a positive constant map without
    ``subtract_min`` becomes all ones (uniform relevance). Raises ``ValueError`` for an
    unknown ``sign``.
    """
    if sign == "abs":
        s = saliency.abs()
    elif sign == "positive":
        s = saliency.clamp(min=0)
    elif sign == "raw":
        s = saliency
    else:
        raise ValueError(f"sign must be one of {SIGNS}, got {sign!r}")
    flat = s.reshape(s.shape[0], -1).float()
    low = flat.min(dim=1, keepdim=True).values if sign == "raw" or subtract_min else torch.zeros_like(flat[:, :1])
    span = flat.max(dim=1, keepdim=True).values - low
    safe = torch.where(span > 0, span, torch.ones_like(span))  # no 0 / 0 even in the branch not taken
    out = torch.where(span > 0, (flat - low) / safe, torch.zeros_like(flat))
    return out.reshape(s.shape)


def reduce_channels(attribution: torch.Tensor, how: str = "sum") -> torch.Tensor:
    """``(N, C, *s)`` input attributions -> ``(N, *s)`` maps ("sum", "abs" or "max_abs")."""
    if how == "sum":
        return attribution.sum(dim=1)
    if how == "abs":
        return attribution.abs().sum(dim=1)
    if how == "max_abs":
        return attribution.abs().amax(dim=1)
    raise ValueError(f"channel reduction must be sum, abs or max_abs, got {how!r}")
