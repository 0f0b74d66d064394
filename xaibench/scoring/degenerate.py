"""Degenerate saliency maps are caught, not ranked: CAM layers too coarse to localize, and constant maps.

A CAM is a weighted sum of the target layer's feature maps, upsampled to the input. A
layer whose map is 1x1 gives a constant map (every method of the family then scores
like an empty map and ties with ``random``); 2x2 and 3x3 give blocks, not locations.
:func:`check_cam_layer` measures the layer's output size with a forward hook on a
dummy input of the dataset's size, at plan time, and refuses layers below
:data:`~xaibench.contract.specs.MIN_CAM_SIZE` per spatial axis (the one rule, :func:`~xaibench.contract.specs.cam_size_ok`,
that the calibration verdict applies too) unless the method entry says ``allow_small_cam: true``
(from Python: ``allow_small_cam=True``); the refusal names a layer that passes
(:func:`suggested_layer`).

A map that is constant over a sample carries no ranking of its pixels: every metric
would score an arbitrary tie-break. :func:`constant_maps` flags those samples; the
runner scores them NaN (excluded from the mean, like an empty mask) and records their
count in the cell's provenance as ``constant_maps``.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn

from xaibench.base.errors import PlanError
from xaibench.contract.specs import MIN_CAM_SIZE, cam_size_ok


def layer_output_spatial(model: nn.Module, layer: nn.Module, in_channels: int, spatial: Sequence[int],
                         name: str = "?") -> tuple[int, ...]:
    """The spatial shape of ``layer``'s output for one zero input ``(1, in_channels, *spatial)`` (eval mode, no grad).

    Raises :class:`PlanError` when the layer (called ``name`` in the message) runs more than once in the
    forward pass: a module reused at several call sites (MONAI EfficientNet's ``_swish`` after the stem and
    after the head) has no single map, and the hooks of CAM methods would take one of its calls silently.
    """
    seen: list[tuple[int, ...]] = []

    def hook(_m: nn.Module, _i: object, out: object) -> None:
        t = out[0] if isinstance(out, (tuple, list)) else out
        if isinstance(t, torch.Tensor):
            seen.append(tuple(int(s) for s in t.shape[2:]))

    was_training = model.training
    handle = layer.register_forward_hook(hook)
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(1, in_channels, *spatial))
    finally:
        handle.remove()
        model.train(was_training)
    if len(seen) > 1:
        raise PlanError(f"layer {name!r} runs {len(seen)} times in one forward pass (one module reused at several "
                        f"call sites): a CAM of it would take one of its outputs silently; name a module that runs "
                        f"once with `layer:` (the BatchNorm or convolution before it)")
    return seen[0] if seen else ()


def suggested_layer(model: nn.Module, in_channels: int, spatial: Sequence[int]) -> tuple[str, tuple[int, ...]] | None:
    """The layer a CAM could explain instead, with its map's spatial shape: of the modules of ``model`` (an output
    adapter's inner model) that run once in a forward pass of one zero input ``(1, in_channels, *spatial)`` and give
    a map passing :func:`~xaibench.contract.specs.cam_size_ok`, the one that finishes last (the deepest such map: ``layer3``
    of a ResNet-18 at 64 px); None where no module does."""
    inner = getattr(model, "wrapped", model)
    finished: list[tuple[str, tuple[int, ...]]] = []

    def hook(name: str) -> Callable[..., None]:
        def record(_m: nn.Module, _i: object, out: object) -> None:
            if isinstance(out, torch.Tensor) and out.dim() == len(spatial) + 2:
                finished.append((name, tuple(int(s) for s in out.shape[2:])))
        return record

    handles = [m.register_forward_hook(hook(name)) for name, m in inner.named_modules() if name]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(1, in_channels, *spatial))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    calls = Counter(name for name, _ in finished)
    passing = [(name, size) for name, size in finished if calls[name] == 1 and cam_size_ok(size)]
    return passing[-1] if passing else None


def check_cam_layer(layer_name: str, size: Sequence[int], spatial: Sequence[int], where: str, method: str,
                    model_name: str, suggestion: tuple[str, tuple[int, ...]] | None = None,
                    python: bool = False) -> None:
    """Raise :class:`PlanError` (``where`` is ``file:line``, or the Python function) when a CAM layer's map ``size``
    (from :func:`layer_output_spatial` for inputs of shape ``spatial``) fails :func:`~xaibench.contract.specs.cam_size_ok`.

    The line names ``suggestion`` (:func:`suggested_layer`) and says what to change in the suite's keys, or with
    ``python`` in the keyword arguments of :func:`xaibench.explain` / :func:`xaibench.score`."""
    if not size or cam_size_ok(size):
        return
    dims = "x".join(map(str, size))
    such = "" if suggestion is None else f", such as {suggestion[0]!r} ({'x'.join(map(str, suggestion[1]))})"
    what = (f"pass a finer layer=<dotted name>{such}, or larger inputs; or accept it with allow_small_cam=True"
            if python else
            f"name a finer layer with `layer:`{such}, use a larger `image_size`, or `stem: small` on a torchvision "
            f"ResNet; or accept it with `allow_small_cam: true` on the method")
    raise PlanError(
        f"{where}: method {method!r}{'' if python else f' on model {model_name!r}'}: CAM layer {layer_name!r} gives a {dims} "
        f"map for {'x'.join(map(str, spatial))} inputs, too coarse to localize (at least {MIN_CAM_SIZE} per axis): "
        + what)


def constant_maps(maps: np.ndarray) -> np.ndarray:
    """``(N,)`` bool: whether each map of ``maps`` ``(N, *spatial)`` is constant (max - min <= 1e-6 of its max |value|).

    An all-zero map is constant.
    """
    flat = np.asarray(maps, dtype=np.float64).reshape(len(maps), -1)
    if flat.shape[1] == 0:
        return np.ones(len(flat), dtype=bool)
    spread = flat.max(1) - flat.min(1)
    return spread <= 1e-6 * np.abs(flat).max(1)


def mask_constant(values: np.ndarray, maps: np.ndarray) -> tuple[np.ndarray, int]:
    """``values`` (N,) with NaN where the sample's map is constant, and how many were."""
    constant = constant_maps(maps)
    out = np.where(constant, np.nan, values)
    return out, int(constant.sum())


def constant_map_notes(counts: dict[str, int], samples: int) -> list[str]:
    """Markdown lines naming each method with constant maps (``counts``: method -> samples) in a block."""
    named = [f"- {method}: {k} of {samples} maps constant, scored NaN (no pixel ranking to score)"
             for method, k in counts.items() if k]
    return ["Constant saliency maps:", ""] + named + [""] if named else []
