"""A run's cells on a segmentation model: each sample explained and scored through its region score.

The runner's groups (:meth:`xaibench.execution.Execution.execute_group`) read ``(N, K)`` logits.
On a segmenter (:func:`xaibench.outputs.dense`) each evaluated sample gets its own
:class:`~xaibench.segmentation.RegionScore`, the segmenter with the sample's region fixed on
the unperturbed input (the suite's region target, ``Suite.region``; None: the predicted region
of class 1, summed), and its group runs on it as on a classifier's (maps cached per sample id,
seeds per sample id). A sample whose region is empty (no pixel predicted as the class: an image
without a lesion) has no region score to explain: NaN in every cell, as a hit rate on an empty
mask is. The cells' per-sample scores are then put back together in the evaluated order and
summarised over all of them (mean and bootstrap CI, as for a classifier's cells).
"""
from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import numpy as np
import torch

from xaibench.engine import Engine
from xaibench.errors import XaibenchError
from xaibench.segmentation import RegionScore, target_regions
from xaibench.stats import summarize
from xaibench.store import CellResult
from xaibench.targets import RegionTarget, region_target

if TYPE_CHECKING:
    from xaibench.execution import Execution, GroupContext, Outcome
    from xaibench.plan import Cell, Resolved

def sample_regions(target: RegionTarget, logits: torch.Tensor,
                   masks: torch.Tensor | None) -> tuple[list[torch.Tensor | None], str]:
    """Each sample's region ``(*spatial)`` bool (:func:`~xaibench.segmentation.target_regions`), None where there
    is none (an empty region), and the first sample's reason for having none ("" when every sample has one)."""
    try:
        return list(target_regions(target, logits, masks)), ""
    except XaibenchError:
        out: list[torch.Tensor | None] = []
        reason = ""
        for i in range(int(logits.shape[0])):
            try:
                out.append(target_regions(target, logits[i : i + 1], None if masks is None else masks[i : i + 1])[0])
            except XaibenchError as exc:
                out.append(None)
                reason = reason or str(exc).replace("sample(s) 0 have", f"sample {i} has")
        return out, reason


def sample_contexts(execution: Execution, g: GroupContext) -> tuple[str, list[GroupContext | None]]:
    """Per sample of ``g`` (a segmenter's context) the context of its region score for the suite's region target
    (None where it has no region), and the first sample's reason for having none ("": every sample has one)."""
    settings = execution.settings
    target = region_target(settings.suite.region)
    masks = None if g.samples.masks is None else g.samples.masks.to(settings.device)
    out: list[GroupContext | None] = []
    regions, reason = sample_regions(target, g.base_logits, masks)
    for i, region in enumerate(regions):
        if region is None:
            out.append(None)
            continue
        net = RegionScore(g.model, region, target.reduce, target.cls).train(g.model.training)
        engine = Engine(net, settings.device, g.engine.batch_size, autocast=settings.options.autocast)
        one = g.samples.subset([i])
        out.append(dataclasses.replace(g, model=net, engine=engine, samples=one, base_logits=engine.logits(one.x),
                                       target=torch.tensor([target.cls], device=settings.device)))
    return reason, out


def segmented_maps(execution: Execution, g: GroupContext, me: Resolved) -> tuple[np.ndarray | None, str | None, int]:
    """:meth:`~xaibench.execution.Execution.maps` on a segmenter: each sample's map for its region score (from the
    saliency cache where possible), a zero map where its region is empty (drawn blank; its cells are NaN)."""
    _, contexts = sample_contexts(execution, g)
    maps, computed = np.zeros((len(g.samples), *g.samples.x.shape[2:]), dtype=np.float32), 0
    for i, h in enumerate(contexts):
        if h is not None:
            one, error, k = execution.maps(h, me)
            if one is None:
                return None, error, computed
            maps[i], computed = one[0], computed + k
    return maps, None, computed


def segmented_curves(execution: Execution, g: GroupContext, c: Cell, maps: np.ndarray) -> np.ndarray:
    """:meth:`~xaibench.execution.Execution.curves` on a segmenter: each sample's curve for its region score, a NaN
    row where its region is empty."""
    _, contexts = sample_contexts(execution, g)
    rows = {i: execution.curves(h, c, maps[i : i + 1])[0] for i, h in enumerate(contexts) if h is not None}
    steps = len(next(iter(rows.values()))) if rows else 0
    return np.stack([rows.get(i, np.full(steps, np.nan)) for i in range(len(contexts))])


def execute_segmented(execution: Execution, g: GroupContext, cells: list[Cell]) -> list[Outcome]:
    """``cells`` (one method's metric cells on segmenter ``g.model``), each sample through its region score."""
    from xaibench.execution import Outcome, bootstrap_seed

    settings = execution.settings
    reason, contexts = sample_contexts(execution, g)
    n = len(g.samples)
    values = {c.row.cell_key: np.full(n, np.nan) for c in cells}
    failures: dict[str, str] = {}
    first: dict[str, CellResult] = {}
    seconds = {c.row.cell_key: 0.0 for c in cells}
    constant = {c.row.cell_key: 0 for c in cells}
    computed = 0
    for i, h in enumerate(contexts):
        if h is None:
            continue
        for outcome in execution.execute_group(h, cells):
            key, result = outcome.cell_key, outcome.result
            computed += outcome.maps_computed
            if outcome.values is None:
                failures.setdefault(key, result.error or "")
                continue
            values[key][i] = outcome.values[0]
            first.setdefault(key, result)
            seconds[key] += float(result.provenance.get("seconds", 0.0))
            constant[key] += int(result.provenance.get("constant_maps", 0))
    out = []
    for k, c in enumerate(cells):
        key = c.row.cell_key
        if key in failures or key not in first:
            error = failures.get(key) or f"no sample has a region to explain: {reason}"
            out.append(Outcome(key, execution.failed(c, error), None, computed if k == 0 else 0))
            continue
        mean, low, high, count = summarize(values[key], bootstrap_seed(settings.suite.seed, c.metric.spec), g.samples.ids)
        result = first[key]
        provenance = {**result.provenance, "seconds": round(seconds[key], 3), "constant_maps": constant[key],
                      "region_target": settings.suite.target,
                      "empty_regions": sum(h is None for h in contexts)}
        out.append(Outcome(key, dataclasses.replace(result, mean=mean, ci_low=low, ci_high=high, n=count,
                                                    n_total=n, provenance=provenance),
                           values[key].tolist(), computed if k == 0 else 0))
    return out
