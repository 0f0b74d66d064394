"""A small hand-built store for the leaderboard sections: methods, calibration baselines and per-sample scores."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from xaibench.scoring.stats import seed_from, summarize
from xaibench.storage.store import CellResult, PlanRow, Store

N = 10
IDS = [f"s{i:02d}" for i in range(N)]
#: metric -> (category, higher_is_better, bounds)
METRICS = {"hit-rate": ("localization", True, [0.0, 1.0]), "mass": ("localization", True, [0.0, 1.0]),
           "dic": ("faithfulness", False, [0.0, 100.0])}
ROLES = {"a": "", "b": "", "c": "", "random": "chance", "ground-truth": "oracle"}


def scores() -> dict[tuple[str, str], np.ndarray]:
    """Per-sample scores: a > b > c on every metric and sample; ground-truth hits everywhere (beats every method)."""
    rng = np.random.default_rng(0)
    out = {}
    for k, me in enumerate(("a", "b", "c")):
        out[(me, "hit-rate")] = (rng.random(N) < 0.8 - 0.3 * k).astype(float)
        out[(me, "mass")] = 0.6 - 0.2 * k + 0.05 * rng.random(N)
        out[(me, "dic")] = 20.0 + 20 * k + rng.random(N)
    out[("random", "hit-rate")] = (rng.random(N) < 0.3).astype(float)
    out[("random", "mass")] = 0.1 + 0.05 * rng.random(N)
    out[("random", "dic")] = 90.0 + rng.random(N)
    out[("ground-truth", "hit-rate")] = np.ones(N)
    out[("ground-truth", "mass")] = np.ones(N)
    out[("ground-truth", "dic")] = 95.0 + rng.random(N)
    return out


def store(path: Path, suite: str = "demo", datasets: tuple[str, ...] = ("ds",)) -> Store:
    """A store with ``suite``'s plan and scores on each of ``datasets`` (one model ``net``)."""
    return scored_store(path, {(ds, "net"): scores() for ds in datasets}, METRICS, ROLES, suite)


def scored_store(path: Path, sections: dict[tuple[str, str], dict[tuple[str, str], np.ndarray | None]],
                 metrics: dict[str, tuple[str, bool, list[float] | None]], roles: dict[str, str],
                 suite: str = "demo", facts: dict | None = None) -> Store:  # type: ignore[type-arg]
    """A store of hand-written per-sample scores: ``sections[(dataset, model)][(method, metric)]`` is ``(N,)``
    (the sample ids :data:`IDS`' first N), or None for a cell the plan skips (not applicable). ``metrics`` maps a
    metric to (category, higher_is_better, bounds); ``roles`` names the calibration baselines; ``facts`` adds
    to the header's calibration facts (metric chance levels, mask fractions)."""
    s = Store(path)
    rows = []
    samples = 0
    for (ds, model), cells in sections.items():
        for (me, mt), values in cells.items():
            key = f"{ds}-{model}-{me}-{mt}"
            category, hib, _ = metrics[mt]
            rows.append(PlanRow(key, ds, model, f"mk-{ds}-{model}", me, mt, category, hib,
                                None if values is not None else "not applicable: drawn so"))
            if values is None:
                continue
            samples = len(values)
            ids = [f"s{i:02d}" for i in range(samples)]
            mean, low, high, n = summarize(values, seed_from(0, key), ids)
            s.put_cell(CellResult(key, ds, model, me, mt, "ok", mean, low, high, n, samples, None, {}), ids, values)
        s.put_model(f"mk-{ds}-{model}", ds, model, "sha", {"accuracy": 0.9, "precision": 0.8, "recall": 0.7,
                                                          "f1": 0.75, "n": 20, "majority": 0.5}, {})
    s.put_plan(suite, rows, {
        "seed": 7, "samples": samples, "target": "predicted", "versions": {},
        "datasets": {ds: {"samples": samples, "modality": "image", "shape": [1, 8, 8]} for ds, _ in sections},
        "metrics": {m: {"category": c, "higher_is_better": h, "bounds": b} for m, (c, h, b) in metrics.items()},
        "calibration": {"methods": roles, "metrics": {}, "mask_fraction": {}, "cam_layers": {}, **(facts or {})}})
    return s


#: Kinds of cell a drawn table holds: scored (random, constant across methods, partly NaN, all NaN) or not.
CELL_KINDS = ("random", "tied", "some-nan", "all-nan", "failed", "skipped", "missing")


def shaped_store(path: Path, sections: dict[tuple[str, str], dict[str, dict[str, str]]], metrics: dict[str, bool],
                 samples: int, seed: int = 0, suite: str = "shape", roles: dict[str, str] | None = None) -> Store:
    """A store of any suite shape: ``sections[(dataset, model)][method][metric]`` is a kind of :data:`CELL_KINDS`;
    ``metrics`` maps each metric to higher-is-better. ``roles`` names the calibration baselines (default: ``random``
    and ``ground-truth``). Scores are drawn from ``seed``; "tied" cells score the same on every method."""
    rng = np.random.default_rng(seed)
    ids = [f"s{i:02d}" for i in range(samples)]
    tied = {m: rng.random(samples) for m in metrics}
    s = Store(path)
    rows = []
    for (ds, model), methods in sections.items():
        for me, cells in methods.items():
            for mt, kind in cells.items():
                key = f"{ds}-{model}-{me}-{mt}"
                rows.append(PlanRow(key, ds, model, f"mk-{ds}-{model}", me, mt, "faithfulness", metrics[mt],
                                    "not applicable: drawn so" if kind == "skipped" else None))
                if kind in ("skipped", "missing"):
                    continue
                if kind == "failed":
                    s.put_cell(CellResult(key, ds, model, me, mt, "failed", None, None, None, 0, samples, "boom", {}))
                    continue
                values = {"random": rng.random(samples), "tied": tied[mt].copy(),
                          "some-nan": np.where(rng.random(samples) < 0.5, np.nan, rng.random(samples)),
                          "all-nan": np.full(samples, np.nan)}[kind]
                mean, low, high, n = summarize(values, seed_from(0, key), ids)
                s.put_cell(CellResult(key, ds, model, me, mt, "ok", mean, low, high, n, samples, None, {}), ids, values)
        s.put_model(f"mk-{ds}-{model}", ds, model, "sha", {"accuracy": 0.9, "precision": 0.8, "recall": 0.7,
                                                          "f1": 0.75, "n": 20, "majority": 0.5}, {})
    datasets = {ds for ds, _ in sections}
    s.put_plan(suite, rows, {
        "seed": 7, "samples": samples, "target": "predicted", "versions": {},
        "datasets": {ds: {"samples": samples, "modality": "image", "shape": [1, 8, 8]} for ds in datasets},
        "metrics": {m: {"category": "faithfulness", "higher_is_better": h, "bounds": [0.0, 1.0]}
                    for m, h in metrics.items()},
        "calibration": {"methods": {m: ROLES[m] for m in ("random", "ground-truth")} if roles is None else roles,
                        "metrics": {},
                        "mask_fraction": {}, "cam_layers": {}}})
    return s
