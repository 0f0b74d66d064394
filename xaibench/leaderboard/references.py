"""Calibration baselines beside the ranking: where one beats every method on a metric, it is said as a finding.

Baselines (``MethodSpec.calibration``: ``random`` at chance, ``centre`` a centre
bias, ``ground-truth`` the annotated mask) are references for reading a metric, never
contenders: :func:`xaibench.leaderboard.board.board` leaves them out of every
ranking. When a baseline's mean is better than every method's on a metric, that is a
finding about the metric or the methods on this data (an oracle mask beating every
method on a localization metric is expected; ``random`` beating them is a warning),
and the leaderboard states it with the numbers.
"""
from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np

from xaibench.scoring import metaeval
from xaibench.leaderboard.board import Block, MethodRow
from xaibench.leaderboard.chance import closed_form


def _mean(row: MethodRow, metric: str) -> float:
    r = row.cells.get(metric)
    ok = r is not None and r.status == "ok" and r.n > 0 and r.mean is not None
    return float(r.mean) if ok else math.nan  # type: ignore[union-attr]


def findings(block: Block) -> list[dict[str, str]]:
    """``{"metric", "baseline", "text"}`` per metric and baseline whose mean beats every method's mean there.

    Methods and baselines are compared on their means over the samples each scored; a
    metric on which no method has a score gives no finding. ``text`` is one markdown sentence with the numbers.
    """
    rows = block.rows
    means = np.array([[_mean(r, m) for m in block.metrics] for r in rows], dtype=np.float64).reshape(
        len(rows), len(block.metrics))
    names = [r.method for r in rows]
    pairs = metaeval.baseline_findings(means, names, block.metrics,
                                       [block.higher_is_better[m] for m in block.metrics],
                                       [r.method for r in rows if r.baseline])
    out = []
    for metric, base in pairs:
        j = block.metrics.index(metric)
        sign = 1.0 if block.higher_is_better[metric] else -1.0
        methods = [(sign * means[i, j], names[i]) for i, r in enumerate(rows)
                   if not r.baseline and math.isfinite(means[i, j])]
        best = max(methods)[1]
        role = next(r.baseline for r in rows if r.method == base)
        out.append({"metric": metric, "baseline": base, "text":
                    f"`{base}` ({role} baseline) beats every method on {metric}: {means[names.index(base), j]:.3f} "
                   f"vs {means[names.index(best), j]:.3f} for the best method, `{best}`."})
    return out


def markdown(block: Block) -> list[str]:
    """The findings of :func:`findings` as markdown lines (nothing when there are none)."""
    found = findings(block)
    if not found:
        return []
    return ["**Findings: a baseline beats every method.** A baseline is a reference, never a winner; read these "
            "as statements about the metric on this data (an oracle beating every method is expected on "
            "localization; chance or a centre bias beating them means the metric or the methods fail here).", "",
            *(f"- {f['text']}" for f in found), ""]


def chance_notes(block: Block, header: Mapping[str, Any]) -> list[str]:
    """Markdown lines under a section's table: the metrics uninformative here, with the reason, and, in a section
    without a chance baseline, the chance levels known in closed form (from the run's header)."""
    lines = []
    useless = [(m, block.calibration[m].uninformative) for m in block.metrics
               if m in block.calibration and block.calibration[m].uninformative]
    if useless:
        lines += ["**Uninformative here** (no rank; left out of the overall rank, the winners and the aggregate "
                  "ranking):", "", *(f"- {m}: {why}." for m, why in useless), ""]
    if not any(r.baseline == "chance" for r in block.rows):
        facts = header.get("calibration", {})
        known = [(m, closed_form(m, facts, block.pooled_from or block.dataset)) for m in block.metrics]
        levels = [f"{m} {chance:.3f} ({source.removeprefix('closed form: ')})" for m, (chance, source, _) in known
                  if chance is not None]
        if levels:
            lines += [f"Chance levels known in closed form (this suite has no `random` method to compare the "
                      f"methods with): {', '.join(levels)}.", ""]
    return lines
