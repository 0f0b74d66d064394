"""Board -> machine-readable views: the JSON document for websites (``<suite>.json``) and flat JSON/CSV.

Both render from the store alone, with fixed key orders and rounded numbers, so
the same store gives the same bytes.
"""
from __future__ import annotations

import csv
import io
import json
import math

from xaibench.scoring import stats
from xaibench.leaderboard import ranking, references, trust, verdict
from xaibench.base.errors import XaibenchError
from xaibench.figures.charts import FIGURE_KINDS, figure_path
from xaibench.leaderboard.board import AGREEMENT_RULE, CI_RULE, RANK_RULE, board, records
from xaibench.storage.store import Store

#: Version of the ``<suite>.json`` document layout; the index reads only documents of this schema.
JSON_SCHEMA = 1


def export(store: Store, suite: str, fmt: str) -> str:
    """``json`` or ``csv`` with keys dataset, model, method, metric, mean, ci_low, ci_high, n, status and the
    cell's wall-clock time apart: ``seconds`` (scoring), ``maps_seconds`` (the method's maps, on the first
    cell of each method) and ``training_seconds`` (models the metric had trained); empty where not scored."""
    keys = ("dataset", "model", "method", "metric", "mean", "ci_low", "ci_high", "n", "status")
    times = ("seconds", "maps_seconds", "training_seconds")
    provenance = [(cell.provenance or {}) if cell is not None else {} for _, cell in store.iter_cells(suite)]
    rows = [{**{k: getattr(r, k) for k in keys}, **{t: prov.get(t) for t in times}}
            for r, prov in zip(records(store, suite), provenance)]
    if fmt == "json":
        return json.dumps(rows, indent=2) + "\n"
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=keys + times, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        return buf.getvalue()
    raise XaibenchError(f"unknown format {fmt!r}; use json or csv")


def _num(v: float | None) -> float | None:
    """A JSON number with 6 significant digits (null for NaN/inf): float noise in the last bits of a
    score computed on another CPU does not change the file."""
    return None if v is None or not math.isfinite(v) else float(f"{v:.6g}")


def to_json(store: Store, suite: str) -> str:
    """The leaderboard as one JSON document (schema 1), for a website to render.

    ``blocks[*].verdict`` is the section's calibration verdict (:mod:`xaibench.leaderboard.verdict`);
    ``blocks[*].rows`` are ordered best first; each carries its overall ``rank``
    (``tied``: shared), and per metric the cell's mean, CI, n, status, rank, tie
    flag and ``versus_chance`` (1 above, 0 at, -1 below chance, null: not compared);
    ``uninformative`` maps a metric that ranks nothing on this model to the reason and
    ``min_effect`` each metric to its smallest meaningful difference (:mod:`~xaibench.leaderboard.chance`); ``agreement.tau[i][j]`` is Kendall's tau between ``agreement.metrics[i]``
    and ``[j]`` (null where undefined); ``figures`` are paths relative to the
    markdown. Numbers have 6 significant digits, NaN and infinities become null,
    keys are sorted: the same store gives the same bytes. ``write`` puts it beside
    the markdown as ``<suite>.json``; the index is rendered from these files.
    """
    header = store.header(suite) or {}
    blocks = []
    for b in board(store, suite):
        rows = []
        for r in b.rows:
            cells = {m: {"mean": _num(c.mean), "ci_low": _num(c.ci_low), "ci_high": _num(c.ci_high), "n": c.n,
                         "status": c.status, "rank": r.metric_ranks[m], "tied": r.metric_tied[m],
                         "versus_chance": r.metric_chance.get(m),
                         "detail": c.detail.splitlines()[0] if c.detail else None}
                     for m, c in r.cells.items()}
            rows.append({"method": r.method, "rank": r.rank, "tied": r.tied, "mean_rank": _num(r.mean_rank),
                         "baseline": r.baseline,
                         "cells": cells})
        blocks.append({
            "dataset": b.dataset, "model": b.model, "samples": b.samples, "evaluation": b.evaluation,
            "metrics": [{"name": m, "higher_is_better": b.higher_is_better[m]} for m in b.metrics],
            "rows": rows, "winners": b.winners, "baseline_findings": references.findings(b),
            "uninformative": {m: c.uninformative for m, c in b.calibration.items() if c.uninformative},
            "min_effect": {m: _num(c.min_effect) for m, c in b.calibration.items()},
            "agreement": {"metrics": b.agreement_metrics, "tau": [[_num(t) for t in row] for row in b.agreement]},
            "figures": {k: figure_path(suite, b.dataset, b.model, k) for k in FIGURE_KINDS
                        if b.pooled_from is None or k == "agreement"},  # a pooled k-fold block has no maps of its own
            "verdict": verdict.as_json(verdict.section_verdict(b, header)),
            "meta_evaluation": trust.as_json(b, header),
            "aggregate": ranking.as_json(ranking.aggregate([b], header)),
            **({} if b.folds is None else {"folds": {me: {m: {"mean": _num(v[0]), "sd": _num(v[1]), "folds": v[2]}
                                                          for m, v in per.items()} for me, per in b.folds.items()}}),
        })
    doc = {
        "schema": JSON_SCHEMA, "suite": suite,
        "header": {k: header.get(k) for k in ("description", "seed", "samples", "target", "device", "versions",
                                              "cpu", "training_threads", "plugins", "datasets", "metrics",
                                              "methods")},
        "statistics": {"cells": CI_RULE, "ranks": RANK_RULE, "agreement": AGREEMENT_RULE,
                       "bootstrap_resamples": stats.BOOTSTRAP_RESAMPLES, "alpha": stats.ALPHA},
        "blocks": blocks,
    }
    return json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False) + "\n"
