"""SISE (Sattarzadeh et al., AAAI 2021; arXiv 2010.00672), for images and 1D signals.

Semantic Input Sampling for Explanation explains a CNN with its own feature
maps used as input masks, from several depths, and fuses the per-layer results:

1. **Layer selection**: the last layer of each convolutional block, i.e. the
   last module whose output has a given spatial resolution before the network
   downsamples (one layer per pooling stage, plus the last feature layer before
   global pooling). Chosen automatically from one forward pass, or by
   ``layers:`` (dotted module names).
2. **Feature-map selection**: the gradient of the target logit with respect to
   each layer's feature maps, averaged over space; maps with a non-positive
   average gradient (or constant maps, which give no mask) are discarded.
3. **Attribution masks**: each kept map is upsampled to the input size and
   min-max normalised to [0, 1].
4. **Layer visualisation maps**: ``A_l = sum_k f_c(x * M_k) * M_k`` with
   ``f_c`` the target class's softmax probability (``output: prob``) or logit:
   every (sample, mask) pair of every layer is scored through
   :meth:`xaibench.scoring.engine.Engine.masked_score_sum` in full batches of
   ``ctx.pass_batch`` (the engine's calibrated batch).
5. **Block-wise cascading fusion**, shallow to deep: ``F_1 = n(A_1)``, then
   ``F_l = n(A_l) + n(F_{l-1}) * [n(A_l) > otsu(n(A_l))]`` with ``n`` min-max
   normalisation: the deeper map's Otsu-thresholded support gates the finer
   detail of the shallower result, which is added to the deeper map.
   A layer where no map was kept for a sample is left out of its fusion.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from torch import nn

from xaibench.scoring.engine import Engine
from xaibench.scoring.maps import normalize, upsample
from xaibench.contract.specs import MethodContext


@dataclass(frozen=True)
class LayerMaps:
    """One layer's feature maps ``(N, K, *s)`` and which of them are kept, ``(N, K)`` bool."""

    name: str
    activations: torch.Tensor
    keep: torch.Tensor


def _is_feature_map(t: object, x: torch.Tensor) -> bool:
    return (isinstance(t, torch.Tensor) and t.dim() == x.dim() and t.shape[0] == x.shape[0]
            and any(s > 1 for s in t.shape[2:]))


def block_outputs(model: nn.Module, x: torch.Tensor, layers: Sequence[str] | None = None
                  ) -> tuple[torch.Tensor, list[tuple[str, torch.Tensor]]]:
    """Logits and the chosen layers' outputs ``(name, (N, K, *s))``, shallow to deep, from one pass.

    Automatic choice: among all module outputs shaped like feature maps, in order of
    completion, the last one at each spatial resolution (the outermost block that
    completes last wins, so a ResNet gives its stem and ``layer1`` ... ``layer4``).
    With ``layers``, the last call of each named module.
    """
    events: list[tuple[str, torch.Tensor]] = []
    named = dict(model.named_modules())
    if layers is not None:
        missing = [n for n in layers if n not in named]
        if missing:
            raise ValueError(f"SISE layers not in the model: {', '.join(missing)}")
    wanted = set(layers) if layers is not None else {n for n in named if n}

    def hook(name: str):  # type: ignore[no-untyped-def]
        def record(module: nn.Module, args: object, output: object) -> None:
            if _is_feature_map(output, x):
                events.append((name, output))  # type: ignore[arg-type]
        return record

    handles = [named[n].register_forward_hook(hook(n)) for n in wanted]
    try:
        logits = model(x)
    finally:
        for h in handles:
            h.remove()
    if layers is not None:
        last = {name: out for name, out in events}
        absent = [n for n in layers if n not in last]
        if absent:
            raise ValueError(f"SISE layers produced no (N, C, *spatial) output: {', '.join(absent)}")
        return logits, [(n, last[n]) for n in layers]
    by_resolution: dict[tuple[int, ...], tuple[str, torch.Tensor]] = {}
    for name, out in events:  # insertion order of a resolution = its first appearance: shallow to deep
        by_resolution[tuple(out.shape[2:])] = (name, out)
    if not by_resolution:
        raise ValueError("SISE found no layer with spatial feature maps in this model")
    return logits, list(by_resolution.values())


def select_feature_maps(model: nn.Module, x: torch.Tensor, target: torch.Tensor,
                        layers: Sequence[str] | None = None) -> list[LayerMaps]:
    """Steps 1-2: each block's feature maps and the positive-average-gradient selection."""
    x = x.detach().clone().requires_grad_(True)  # gradients reach the maps even with frozen parameters
    with torch.enable_grad():
        logits, outputs = block_outputs(model, x, layers)
        score = logits.gather(1, target[:, None]).sum()
        grads = torch.autograd.grad(score, [out for _, out in outputs])
    chosen = []
    for (name, out), grad in zip(outputs, grads):
        acts = out.detach()
        flat = acts.flatten(2)
        varies = flat.amax(2) > flat.amin(2)
        chosen.append(LayerMaps(name, acts, (grad.flatten(2).mean(2) > 0) & varies))
    return chosen


def attribution_masks(acts: torch.Tensor, spatial: tuple[int, ...]) -> torch.Tensor:
    """Step 3: feature maps ``(B, *s)`` -> masks ``(B, *spatial)`` upsampled and min-max scaled to [0, 1]."""
    return normalize(upsample(acts, spatial), sign="raw")


def layer_maps(model: nn.Module, x: torch.Tensor, target: torch.Tensor, selected: list[LayerMaps],
               batch_size: int, output: str = "prob") -> list[torch.Tensor]:
    """Step 4: ``A_l`` for each layer, ``(N, *spatial)``; every kept mask scored once, in full batches."""
    spatial = tuple(int(s) for s in x.shape[2:])
    pairs = [(layer, *torch.nonzero(lm.keep, as_tuple=True)) for layer, lm in enumerate(selected)]
    pair_layer = torch.cat([torch.full_like(s, layer) for layer, s, _ in pairs])
    pair_sample = torch.cat([s for _, s, _ in pairs])
    pair_map = torch.cat([k for _, _, k in pairs])
    total = int(pair_layer.numel())

    def masks(idx: torch.Tensor) -> torch.Tensor:
        out = torch.empty((idx.numel(),) + spatial, device=x.device)
        for layer, lm in enumerate(selected):
            here = pair_layer[idx] == layer
            if here.any():
                out[here] = attribution_masks(lm.activations[pair_sample[idx][here], pair_map[idx][here]], spatial)
        return out

    n = x.shape[0]
    if total == 0:
        return [torch.zeros((n,) + spatial, device=x.device) for _ in selected]
    flat = Engine(model, x.device, batch_size).masked_score_sum(x, masks, pair_sample, pair_layer * n + pair_sample,
                                                                len(selected) * n, target, output)
    return list(flat.view(len(selected), n, *spatial))


def otsu_gate(m: torch.Tensor) -> torch.Tensor:
    """Binary support of a [0, 1] map above its Otsu threshold (scikit-image)."""
    from skimage.filters import threshold_otsu

    values = m.detach().cpu().numpy().astype(np.float64)
    if values.max() <= values.min():
        return torch.zeros_like(m, dtype=torch.bool)
    return m > float(threshold_otsu(values))


def cascade_fusion(maps: Sequence[torch.Tensor], present: Sequence[bool]) -> torch.Tensor:
    """Step 5 for one sample: maps shallow to deep (each ``(*spatial)``); absent layers are skipped."""
    fused: torch.Tensor | None = None
    for a, here in zip(maps, present):
        if not here:
            continue
        higher = normalize(a[None], sign="raw")[0]
        fused = higher if fused is None else higher + normalize(fused[None], sign="raw")[0] * otsu_gate(higher)
    return fused if fused is not None else torch.zeros_like(maps[0])


def sise(model: nn.Module, x: torch.Tensor, target: torch.Tensor, ctx: MethodContext,
         layers: Sequence[str] | None = None, output: str = "prob") -> torch.Tensor:
    """SISE saliency ``(N, *spatial)`` at the input resolution."""
    selected = select_feature_maps(model, x, target, layers)
    maps = layer_maps(model, x, target, selected, ctx.pass_batch, output)
    present = torch.stack([lm.keep.any(1) for lm in selected], dim=1)  # (N, L)
    return torch.stack([cascade_fusion([m[i] for m in maps], present[i].tolist()) for i in range(x.shape[0])])
