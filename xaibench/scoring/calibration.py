"""Calibration facts of a run: what each leaderboard section's verdict needs besides the scores.

Computed once when a run is planned and stored in the run's header, so that
:mod:`xaibench.leaderboard.verdict` renders from the store alone: each metric's
chance level and oracle score (``MetricSpec.chance``/``.oracle``), each method's
calibration role (``MethodSpec.calibration``), the evaluated masks' mean area
fraction per dataset, and the spatial size of every CAM method's target layer.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from xaibench.base.errors import SuiteError


def calibration_facts(runner: Any) -> dict[str, Any]:
    """What the verdict needs besides the scores, for the run's header: ``{"calibration": {...}}``.

    ``runner`` is a :class:`xaibench.running.runner.Runner` (typed loosely: the runner calls this).

    ``metrics``: each metric's chance level name and oracle score; ``methods``: each
    method's calibration role; ``mask_fraction``: per dataset, the mean area fraction of
    the evaluated samples' non-empty masks (None without masks), and for a dataset cut into
    folds (``folds: K``) the same over every fold's held-out samples, under the dataset's
    own name (the pooled leaderboard section's chance level); ``cam_layers``: per
    ``"dataset × model"``, each layer-taking method's layer shape at the suite's input
    size, from an untrained copy of the model (shapes do not depend on weights); ``cam_layer_names``: the
    same layers' dotted module names (the model's default layer, or the method's ``layer:``).
    """
    metrics = {mt.entry.display: {"chance": mt.spec.chance(mt.params) if mt.spec.chance else None,
                                  "oracle": mt.spec.oracle} for mt in runner.metrics}
    methods = {me.entry.display: me.spec.calibration for me in runner.methods}
    fractions: dict[str, float | None] = {}
    pooled: dict[str, list[np.ndarray | None]] = {}  # source dataset -> each fold's non-empty mask areas
    layers: dict[str, dict[str, list[int]]] = {}
    names: dict[str, dict[str, str]] = {}
    cams = [me for me in runner.methods if me.spec.takes_layer]
    for ds in runner.datasets:
        if runner.unavailable(ds) is not None:
            continue
        samples = runner.evaluated_samples(ds)
        fractions[ds.entry.display] = None
        if samples.masks is not None:
            area = samples.masks.reshape(len(samples), -1).float().mean(1).numpy()
            nonempty = area[area > 0]
            fractions[ds.entry.display] = float(np.mean(nonempty)) if len(nonempty) else None
        if ds.entry.fold:
            pooled.setdefault(ds.entry.source, []).append(None if samples.masks is None else nonempty)
        for mo in (m for m in runner.models if runner.fits(ds, m)) if cams else ():
            found_layers = {method: found for method, found in runner.cam_layers(ds, mo).items()
                            if not isinstance(found, SuiteError)}  # an unknown name fails the method's cells
            layers[f"{ds.entry.display} × {mo.entry.display}"] = {m: list(f[1]) for m, f in found_layers.items()}
            names[f"{ds.entry.display} × {mo.entry.display}"] = {m: f[0] for m, f in found_layers.items()}
    for source, parts in pooled.items():
        areas = None if any(p is None for p in parts) else np.concatenate(parts)
        fractions[source] = float(np.mean(areas)) if areas is not None and len(areas) else None
    return {"calibration": {"metrics": metrics, "methods": methods, "mask_fraction": fractions,
                            "cam_layers": layers, "cam_layer_names": names}}
