"""A method's maps of samples, as the runner computes them: in calls of at most ``batch_size`` samples, each
with its per-sample seeds and the engine's pass batch, validated and upsampled to the input size; and the
stacked copies of the samples a metric re-explains (robustness draws, sMPRT's noise, continuity's shifts).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import numpy as np
import torch
from torch import nn

from xaibench.base.errors import CellError
from xaibench.scoring.maps import coarser_fits, expected_maps, upsample
from xaibench.contract.specs import MethodContext, MethodSpec, Samples
from xaibench.scoring.stats import seed_from


def copies(samples: Samples, target: torch.Tensor, inputs: torch.Tensor | None,
           targets: torch.Tensor | None) -> tuple[Samples, torch.Tensor]:
    """What a metric re-explains: ``samples`` with ``inputs`` in place of their inputs and ``targets`` of their
    classes. ``inputs`` ``(k N, C, *spatial)`` are ``k`` copies of the ``N`` samples stacked copy-major (robustness
    draws), each row keeping its sample's id (so its seed), label and masks; ``targets`` are ``(k N,)``, or ``(N,)``
    repeated for every copy; None keeps the samples' own. Raises :class:`CellError` for a row count that is not a
    multiple of ``N``."""
    n = len(samples)
    rows = n if inputs is None else int(inputs.shape[0])
    if n == 0 or rows % n:
        raise CellError(f"re-explaining needs k copies of the cell's {n} samples, stacked; got {rows} inputs")
    k = rows // n
    out = samples if k == 1 else samples.subset(np.tile(np.arange(n), k))
    if inputs is not None:
        out = dataclasses.replace(out, x=inputs.detach().cpu())
    classes = target if targets is None else targets.to(target.device)
    if classes.shape[0] == n and k > 1:
        classes = classes.repeat(k)
    if classes.shape[0] != rows:
        raise CellError(f"re-explaining {rows} inputs needs {rows} or {n} target classes, got {classes.shape[0]}")
    return out, classes


def explain_samples(spec: MethodSpec, model: nn.Module, samples: Samples, target: torch.Tensor,
                    params: Mapping[str, Any], *, layer: nn.Module | None, batch_size: int, seed: int,
                    data_mean: torch.Tensor | None, device: torch.device, engine_batch: int | None = None,
                    group: int | None = None) -> np.ndarray:
    """``spec``'s maps of ``samples`` for classes ``target`` ``(N,)``, in calls of at most ``batch_size`` samples,
    validated and upsampled to the input size: ``(N, *spatial)`` float32. Sample ``i``'s seed is
    ``seed_from(seed, ids[i])``; ``engine_batch`` is the batch of the method's own forward passes
    (:attr:`MethodContext.pass_batch`). ``group``: ``samples`` are copies of that many samples, stacked (a
    metric's re-explanations): a method that is not ``batch_invariant`` gets each copy in the calls its maps
    were computed in, never a call that mixes copies.

    Raises :class:`CellError` for a map of the wrong shape or with NaN/infinite values."""
    spatial = tuple(samples.x.shape[2:])
    total = len(samples)
    out = np.empty((total, *spatial), dtype=np.float32)  # filled chunk by chunk: one copy of the maps, never two
    block = max(1, group if group and not spec.batch_invariant else total)  # rows one call may mix
    for start, stop in [(s, min(s + batch_size, b + block, total))
                        for b in range(0, total, block) for s in range(b, min(b + block, total), batch_size)]:
        chunk = samples.subset(slice(start, stop))
        masks = chunk.masks.to(device) if "masks" in spec.needs and chunk.masks is not None else None
        ctx = MethodContext(layer=layer, batch_size=batch_size,
                            sample_seeds=tuple(seed_from(seed, sid) for sid in chunk.ids),
                            data_mean=data_mean, masks=masks, engine_batch=engine_batch)
        x = chunk.x.to(device)
        with torch.enable_grad():
            sal = spec.explain(model, x, target[start:stop].to(device), ctx, **params)
        sal = real_tensor(sal, "method")
        if sal.dim() != len(spatial) + 1 or sal.shape[0] != len(chunk) or not coarser_fits(tuple(sal.shape[1:]),
                                                                                           spatial):
            raise CellError(f"method returned shape {tuple(sal.shape)} for inputs {tuple(x.shape)}; "
                            f"{expected_maps(len(chunk), spatial)}")
        sal = upsample(sal.detach().float(), spatial)
        if not torch.isfinite(sal).all():
            raise CellError("method returned NaN or infinite values")
        out[start:stop] = sal.cpu().numpy()
    return out


def real_tensor(value: Any, who: str) -> torch.Tensor:
    """A plugin's output as a real-valued tensor, or a :class:`CellError` saying what came back instead."""
    if not isinstance(value, torch.Tensor):
        array = np.asarray(value)
        if array.dtype.kind not in "biuf":
            raise CellError(f"{who} returned {type(value).__name__} of dtype {array.dtype}; expected real numbers")
        value = torch.from_numpy(np.ascontiguousarray(array))
    if value.is_complex():
        raise CellError(f"{who} returned dtype {value.dtype}; expected real numbers")
    return value
