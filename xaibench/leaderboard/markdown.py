"""Board -> ``<suite>.md``: provenance, datasets, one ranked table per dataset x model, agreement, figures.

The text is a pure function of the store (no timestamps, fixed orders), so an
unchanged store renders byte-identical markdown and ``--check`` can compare bytes.
The gallery and curve figures it links are drawn by ``xaibench run``; the
agreement heat maps by :func:`xaibench.leaderboard.publish.write`.
"""
from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable

import numpy as np
from tabulate import tabulate

from xaibench.scoring import stats
from xaibench.scoring.degenerate import constant_map_notes
from xaibench.running.environment import REPRODUCIBILITY
from xaibench.models.gate import evaluation_notes, quality_line
from xaibench.leaderboard import ranking, references, trust, verdict
from xaibench.figures.charts import FIGURE_KINDS, figure_path
from xaibench.leaderboard.chance import chance_text
from xaibench.leaderboard.board import AGREEMENT_RULE, CI_RULE, RANK_RULE, Block, Record, board
from xaibench.storage.store import Store

ARROW = {True: "↑", False: "↓"}


def column_format(values: Iterable[float | None]) -> Callable[[float | None], str]:
    """One number format for every score of a table column (means and CI bounds alike), from its largest
    finite ``|value|``: ``>= 1000`` scientific with 3 significant digits (``1.04e+03``), ``>= 10`` one
    decimal, otherwise three decimals; ``–`` for None, NaN and infinities. So a column never mixes
    ``689.3`` with ``1.04e+03``.
    """
    top = max((abs(v) for v in values if v is not None and math.isfinite(v)), default=0.0)
    spec = ".2e" if top >= 1000 else ".1f" if top >= 10 else ".3f"

    def fmt(v: float | None) -> str:
        return "–" if v is None or not math.isfinite(v) else format(v, spec)

    return fmt


def _md(text: object) -> str:
    """Text safe inside a markdown table cell."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def _rank_text(rank: int | None, tied: bool) -> str:
    return "–" if rank is None else f"{rank}{'=' if tied else ''}"


def _cell_text(r: Record, rank: int | None, tied: bool, samples: int, fmt: Callable[[float | None], str],
               standing: int | None = None) -> str:
    if r.status != "ok":
        return {"failed": "**failed**", "skipped": "n/a", "missing": "not run"}[r.status]
    if r.n == 0:
        return "undefined (n=0)"
    n = f" n={r.n}" if r.n < samples else ""
    at_chance = chance_text(standing)  # at or below chance: said instead of the rank, never bold
    text = f"{fmt(r.mean)} [{fmt(r.ci_low)}, {fmt(r.ci_high)}]{n} ({at_chance or _rank_text(rank, tied)})"
    return f"**{text}**" if rank == 1 and not at_chance else text


def _undefined_reason(r: Record, header: dict) -> str:  # type: ignore[type-arg]
    """Why cell ``r`` has no defined sample: constant maps, else the metric's declared NaN rule."""
    if r.constant_maps == r.n_total and r.n_total:
        return "every map is constant (no pixel ranking to score)"
    rule = header.get("metrics", {}).get(r.metric, {}).get("undefined", "")
    return rule or "the metric returned NaN for every sample"


def _params_text(params: object) -> str:
    """A metric's effective parameters (its defaults merged with the suite's), as the metric table shows them."""
    return _md(json.dumps(params, sort_keys=True)) if params else ""


def _agreement_table(b: Block) -> list[str]:
    names = b.agreement_metrics
    if len(names) < 2:
        return []
    rows = [[m] + [("–" if not math.isfinite(t) else f"{t:.2f}") for t in b.agreement[i]]
            for i, m in enumerate(names)]
    upper = [(b.agreement[i, j], names[i], names[j]) for i in range(len(names))
             for j in range(i + 1, len(names)) if math.isfinite(b.agreement[i, j])]
    lines = ["### Metric agreement", "", tabulate(rows, headers=["Kendall's tau"] + names, tablefmt="github",
                                                    disable_numparse=True), ""]
    if upper:
        mean = float(np.mean([t for t, _, _ in upper]))
        low = min(upper, key=lambda t: (t[0], t[1], t[2]))
        pairs = f"{len(upper)} metric pair{'s' if len(upper) > 1 else ''}"
        lines += [f"Mean tau over {pairs}: {mean:.2f}; least agreement: {low[1]} vs {low[2]} "
                  f"(tau {low[0]:.2f}).", ""]
    return lines


def _fold_table(b: Block) -> list[str]:
    """A pooled k-fold block's spread: each cell's mean of the fold means ± their sample standard deviation."""
    if not b.folds:
        return []
    k = max((n for per in b.folds.values() for _, _, n in per.values()), default=0)
    formats = {m: column_format(v for per in b.folds.values() if m in per for v in per[m][:2]) for m in b.metrics}
    table = [[r.method] + [f"{formats[m](b.folds[r.method][m][0])} ± {formats[m](b.folds[r.method][m][1])}"
                           if m in b.folds.get(r.method, {}) else "–" for m in b.metrics] for r in b.rows]
    return [f"Across the {k} folds (mean of the fold means ± their standard deviation; the table above pools "
            f"all held-out samples):", "",
            tabulate(table, headers=["method"] + b.metrics, tablefmt="github", disable_numparse=True), ""]


def _per_class_table(e: dict) -> list[str]:  # type: ignore[type-arg]
    """The model's precision, recall and F1 per class (``evaluation["per_class"]``); "–" where undefined."""
    per_class = e.get("per_class") or {}
    if not per_class:
        return []
    rows = [[_md(c), *("–" if v[k] is None else f"{v[k]:.3f}" for k in ("precision", "recall", "f1")),
             v["support"]] for c, v in per_class.items()]
    return [tabulate(rows, headers=["class", "precision", "recall", "F1", "n"], tablefmt="github",
                     disable_numparse=True),
            "", "– : undefined (precision of a class never predicted, recall of a class absent from the labels).", ""]


def _figure_links(suite: str, b: Block) -> list[str]:
    titles = {"agreement": "metric agreement heat map", "gallery": "saliency gallery",
              "curves": "perturbation curves"}
    drawn = any(c.status == "ok" for r in b.rows for c in r.cells.values())  # no maps, no gallery or curves
    links = [f"![{titles[k]}: {b.dataset} × {b.model}]({figure_path(suite, b.dataset, b.model, k)})"
             for k in FIGURE_KINDS if (len(b.agreement_metrics) >= 2 if k == "agreement" else drawn)]
    return ["### Figures", "", *(f"{link}\n" for link in links)] if links else []


def render(store: Store, suite: str) -> str:
    """The markdown leaderboard of ``suite``'s latest run in ``store`` (``<suite>.md``), ending in one newline.

    Raises :class:`~xaibench.base.errors.XaibenchError` when the store has no results for ``suite``.
    """
    header = store.header(suite) or {}
    blocks = board(store, suite)
    lines = [f"# Leaderboard: {suite}", ""]
    if header.get("description"):
        lines += [f"> {header['description'].strip()}", ""]
    lines += [
        f"Generated by `xaibench run --suite {suite}` and `xaibench leaderboard --suite {suite}` from the "
        "results store; do not edit by hand. The saliency galleries and deletion/insertion curves are drawn "
        "by `xaibench run` (they need the models and maps); everything else renders from the store alone.",
        "",
        f"**Reading the tables.** {CI_RULE} {RANK_RULE}",
        "",
    ]
    versions = header.get("versions", {})
    prov = [
        ["seed", header.get("seed")],
        ["samples per dataset", f"{header.get('samples')} (explained class: {header.get('target')})"],
        ["bootstrap", f"{stats.BOOTSTRAP_RESAMPLES} resamples per cell, percentile 95% CI"],
        ["rank test", f"paired Wilcoxon signed-rank, Holm-corrected, alpha {stats.ALPHA}"],
        ["device", header.get("device")],
        ["versions", ", ".join(f"{k} {v}" for k, v in sorted(versions.items()))],
        ["plugins", ", ".join(f"{k} ({v})" for k, v in sorted(header.get("plugins", {}).items()))],
    ]
    if "training_threads" in header:  # stores written before these were recorded render as they did
        prov += [["training threads", ", ".join(f"{m}: {n}" for m, n in header["training_threads"].items())
                  or "none (every model loaded from a checkpoint)"],
                 ["CPU kernels", header.get("cpu")],
                 ["could still change it", REPRODUCIBILITY]]
    lines += [tabulate(prov, headers=["provenance", ""], tablefmt="github"), ""]

    datasets = header.get("datasets", {})
    if datasets:
        rows = []
        for name, d in datasets.items():
            classes = ", ".join(f"{c} {k}" for c, k in d.get("classes", {}).items())
            masks = "none" if d.get("masks") is None else f"{d['masks']} of {d.get('samples')} non-empty"
            rows.append([name, d.get("modality"), "x".join(map(str, d.get("shape", []))),
                         "/".join(map(str, d.get("split_sizes", []))), d.get("samples"), classes, masks,
                         d.get("fingerprint")])
        lines += ["## Datasets", "",
                  tabulate(rows, headers=["dataset", "modality", "input", "train/val/test", "evaluated",
                                          "classes (evaluated)", "masks (evaluated)", "fingerprint"],
                           tablefmt="github"), ""]
        notes = [f"- **{n}**: {d['notes']}" for n, d in datasets.items() if d.get("notes")]
        lines += notes + ([""] if notes else [])

    for b in blocks:
        lines += [f"## {b.dataset} × {b.model}", ""]
        if b.skipped:
            lines += [f"No cell ran: {'; '.join(_md(r) for r in b.skipped)}.", ""]
            continue
        lines += verdict.markdown(verdict.section_verdict(b, header))
        if b.evaluation:
            e = b.evaluation
            lines += [quality_line(e), ""]
            lines += _per_class_table(e)
            lines += evaluation_notes(e)  # the model gate's verdict; device, dtype, autocast
        lines += [f"Samples per cell: {b.samples}.", ""]
        formats = {m: column_format(v for r in b.rows if m in r.cells and r.cells[m].status == "ok"
                                    for v in (r.cells[m].mean, r.cells[m].ci_low, r.cells[m].ci_high))
                   for m in b.metrics}
        table = [["ref" if r.baseline else _rank_text(r.rank, r.tied),
                  f"{r.method} ({r.baseline} baseline)" if r.baseline else r.method]
                 + [_cell_text(r.cells[m], r.metric_ranks[m], r.metric_tied[m], b.samples, formats[m],
                               r.metric_chance.get(m)) if m in r.cells else "–" for m in b.metrics] for r in b.rows]
        lines += [tabulate(table, headers=["rank", "method"] + [f"{m} {ARROW[b.higher_is_better[m]]}"
                                                                for m in b.metrics],
                           tablefmt="github", disable_numparse=True), ""]
        lines += references.chance_notes(b, header) + references.markdown(b)
        notes = sorted({_md((f"{c.method} / {c.metric} failed: " if c.status == "failed" else "")
                            + c.detail.splitlines()[0])
                        for r in b.rows for c in r.cells.values() if c.status in ("failed", "skipped") and c.detail}
                       | {_md(f"{c.method} / {c.metric} undefined on every sample: " + _undefined_reason(c, header))
                          for r in b.rows for c in r.cells.values() if c.status == "ok" and c.n == 0})
        if notes:
            lines += ["Cells without a score:", ""] + [f"- {n}" for n in notes] + [""]
        lines += constant_map_notes({r.method: max((c.constant_maps for c in r.cells.values()), default=0)
                                     for r in b.rows}, b.samples)
        lines += _fold_table(b)
        lines += _agreement_table(b)
        lines += trust.markdown(b, header)
        lines += ranking.markdown(ranking.aggregate([b], header), "Aggregate ranking", ranking.section_figure(suite, b),
                                  f"{b.dataset} × {b.model}")
        lines += [] if b.pooled_from is not None else _figure_links(suite, b)  # pooled folds: no maps of their own

    if len(blocks) > 1:
        lines += ["## Across all sections", ""] + ranking.markdown(
            ranking.aggregate(blocks, header), "Aggregate ranking over every section", ranking.overall_figure(suite),
            "all sections")

    if any(len(b.agreement_metrics) >= 2 for b in blocks):
        lines += ["## About the metric agreement", "", AGREEMENT_RULE, ""]
    lines += ["## About the meta-evaluation and the aggregate ranking", "", trust.LEGEND, "", ranking.RULE, ""]
    metric_info = header.get("metrics", {})
    if metric_info:
        rows = [[m, i.get("category"), ARROW[bool(i.get("higher_is_better"))], _md(i.get("description", "")),
                 _params_text(i.get("params")), _md(i.get("citation", ""))] for m, i in metric_info.items()]
        lines += ["## Metrics", "", ("Parameters: the values this run used (the metric's defaults with the suite's "
                                    "overrides)."), "",
                  tabulate(rows, headers=["metric", "category", "better", "what it measures", "parameters",
                                          "reference"], tablefmt="github"), ""]
    method_info = header.get("methods", {})
    if method_info:
        rows = [[m, i.get("plugin"), _md(json.dumps(i.get("params", {}), sort_keys=True)), _md(i.get("citation", ""))]
                for m, i in method_info.items()]
        lines += ["## Methods", "", tabulate(rows, headers=["method", "plugin", "parameters", "reference"],
                                             tablefmt="github"), ""]
    return "\n".join(lines).rstrip() + "\n"
