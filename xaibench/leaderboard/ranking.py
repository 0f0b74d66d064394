"""One answer to "which method": mean ranks per family, a Friedman test and a critical difference diagram.

Per leaderboard section (dataset x model) and across all sections of a suite, from
the methods' mean scores (the calibration baselines are references and take no
part), with the functions of :mod:`xaibench.scoring.metaeval`:

- the **aggregate rank** per family (metric category) and over all metrics: each
  metric ranks the methods by their means (1 = best, ties averaged), and a method's
  aggregate is its mean rank with the standard deviation across the metrics (LATEC,
  Klein et al. 2024);
- the **Friedman test** over the metrics as blocks (across all sections: every
  section x metric) with the methods scored on all of them, then pairwise Wilcoxon
  signed-rank tests with Holm's correction (Demšar, JMLR 2006, Sec. 3.2);
- the **critical difference diagram** of that test (scikit-posthocs), saved beside
  the leaderboard (:func:`write_figures`) and linked from it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
from tabulate import tabulate

from xaibench.scoring import metaeval, stats
from xaibench.figures.charts import suite_figure_path
from xaibench.leaderboard.board import Block, MethodRow

RULE = (
    "**Aggregate ranking.** Each metric ranks the methods by their mean scores (1 = best, ties averaged); a "
    "method's aggregate is its mean rank over the metrics of a family (and over all metrics) ± the standard "
    "deviation across them, as LATEC does (Klein et al. 2024). The Friedman test asks whether the methods' ranks "
    "over the metrics (blocks) differ at all; the pairwise Wilcoxon signed-rank tests are Holm-corrected "
    f"(alpha {stats.ALPHA}); in the critical difference diagram, methods joined by a bar do not differ "
    "(Demšar, JMLR 2006; scikit-posthocs). Baselines are references and are not ranked; a cell at chance counts as "
    "the chance baseline's mean, and a metric uninformative here is left out. Over n metrics no "
    "two-sided Wilcoxon p-value is below 2/2^n, so with fewer than "
    f"{metaeval.posthoc_blocks(stats.ALPHA)} metrics no pair can differ: then the board shows the Friedman test "
    "alone and says so. An aggregate ranks the methods scored in every section it covers, over the metrics that "
    "score every one of them, and lists the methods and metrics it leaves out with the reason. The "
    "table's overall rank and this aggregate can differ: the first counts significant differences in per-sample "
    "scores, the second ranks the means whatever their uncertainty."
)


@dataclass(frozen=True)
class Aggregate:
    """Aggregate ranks of ``methods`` (non-baselines) over ``metrics`` (``(section, metric)`` labels)."""

    methods: list[str]
    #: family (``"all"`` first) -> (mean rank (L,), standard deviation (L,), number of metrics)
    families: dict[str, tuple[np.ndarray, np.ndarray, int]]
    test: metaeval.RankTest | None
    #: Why there is no Friedman test (empty when there is one).
    why_not: str
    blocks: int
    #: Methods left out, each with why (``"method (no score on ...)"``): the aggregate ranks only methods scored in
    #: every section it covers.
    left_out: tuple[str, ...] = ()
    #: Metrics left out, each with why (``"metric (uninformative here)"``, ``"metric (no score for ...)"``): every
    #: metric the aggregate ranks over scores every ranked method.
    left_out_metrics: tuple[str, ...] = ()


def _means(block: Block) -> tuple[list[str], np.ndarray]:
    """Non-baseline methods and their ``(L, M)`` means over the block's metrics (NaN: no score); a cell at chance
    (:mod:`~xaibench.leaderboard.chance`) counts as the chance baseline's mean, so it ties chance and its peers."""
    methods = [r for r in block.rows if not r.baseline]
    chance = next((r for r in block.rows if r.baseline == "chance"), None)

    def mean(r: MethodRow, m: str) -> float:
        c = chance if r.metric_chance.get(m) == 0 and chance is not None else r
        cell = c.cells.get(m)
        ok = cell is not None and cell.status == "ok" and cell.n > 0 and cell.mean is not None
        return float(cell.mean) if ok else np.nan  # type: ignore[union-attr]

    means = np.array([[mean(r, m) for m in block.metrics] for r in methods], dtype=np.float64)
    return [r.method for r in methods], means.reshape(len(methods), len(block.metrics))


def aggregate(blocks: Sequence[Block], header: Mapping[str, Any]) -> Aggregate:
    """The aggregate over the metrics of ``blocks`` (one section, or all).

    ``header`` gives each metric's category (``metrics``). The methods ranked are those with a score in every
    block; the metrics ranked over are the informative ones (:mod:`~xaibench.leaderboard.chance`) that score
    every ranked method; the others are listed in ``left_out`` and ``left_out_metrics`` with the reason.
    """
    info = header.get("metrics", {})
    per_block = [_means(b) for b in blocks]
    label = (lambda b, m: m) if len(blocks) == 1 else (lambda b, m: f"{b.dataset} × {b.model}: {m}")
    useful = [[j for j, m in enumerate(b.metrics) if not _uninformative(b, m)] for b in blocks]
    scored = [{n for i, n in enumerate(names) if np.isfinite(means[i, keep]).any()}
              for (names, means), keep in zip(per_block, useful)]
    everyone = list(dict.fromkeys(n for names, _ in per_block for n in names))
    methods = [m for m in everyone if all(m in s for s in scored)]
    sections = [f"{b.dataset} × {b.model}" for b in blocks]
    left_out = tuple(f"{m} (no score on {', '.join(name for name, s in zip(sections, scored) if m not in s)})"
                     for m in everyone if m not in methods)
    columns, directions, families, dropped = [], [], [], []
    for b, (names, means), keep in zip(blocks, per_block, useful):
        for j, metric in enumerate(b.metrics):
            if j not in keep:
                dropped.append(f"{label(b, metric)} (uninformative here)")
                continue
            col = np.array([means[names.index(me), j] for me in methods])
            if not np.isfinite(col).all():
                if np.isfinite(means[:, j]).any():  # a metric no method scored is not a column to explain
                    lacking = [me for me, v in zip(methods, col) if not np.isfinite(v)]
                    dropped.append(f"{label(b, metric)} (no score for {', '.join(lacking)})")
                continue
            columns.append(col)
            directions.append(b.higher_is_better[metric])
            families.append(info.get(metric, {}).get("category", "other"))
    table = np.array(columns, dtype=np.float64).reshape(len(columns), len(methods)).T  # (L, M)
    out: dict[str, tuple[np.ndarray, np.ndarray, int]] = {}
    for family in ["all", *dict.fromkeys(families)]:
        keep_cols = [j for j, f in enumerate(families) if family in ("all", f)]
        if keep_cols and methods:
            mean, std = metaeval.mean_ranks(table[:, keep_cols], [directions[j] for j in keep_cols])
            out[family] = (mean, std, len(keep_cols))
    oriented = np.array([c if hib else -c for c, hib in zip(columns, directions)]).reshape(len(columns), len(methods))
    why = metaeval.why_no_friedman(oriented, "metrics")
    test = None if why else metaeval.friedman_posthoc(oriented, methods, higher_is_better=True, alpha=stats.ALPHA)
    return Aggregate(methods, out, test, why, len(columns), left_out, tuple(dropped))


def _uninformative(block: Block, metric: str) -> bool:
    cal = block.calibration.get(metric)
    return cal is not None and bool(cal.uninformative)


def _cell(agg: Aggregate, family: str, i: int) -> str:
    if family not in agg.families:
        return "–"
    mean, std, _ = agg.families[family]
    return "–" if not math.isfinite(mean[i]) else f"{mean[i]:.2f} ± {std[i]:.2f}"


def markdown(agg: Aggregate, title: str, figure: str, caption: str) -> list[str]:
    """The aggregate table under heading ``title``, the Friedman test, the significant pairs and the link to the
    diagram at ``figure`` (alt text: ``caption``)."""
    if not agg.methods or "all" not in agg.families:
        return []
    order = sorted(range(len(agg.methods)), key=lambda i: (not math.isfinite(agg.families["all"][0][i]),
                                                           agg.families["all"][0][i], agg.methods[i]))
    fams = list(agg.families)
    rows = [[agg.methods[i]] + [_cell(agg, f, i) for f in fams] for i in order]
    headers = ["method"] + [f"{f} ({agg.families[f][2]} metric{'s' if agg.families[f][2] != 1 else ''})"
                            for f in fams]
    lines = [f"### {title}", "", tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True), ""]
    if agg.left_out:
        lines += [f"Methods not in this aggregate: {'; '.join(agg.left_out)}.", ""]
    if agg.left_out_metrics:
        lines += [f"Metrics not in this aggregate (it ranks over the metrics that score every ranked method): "
                  f"{'; '.join(agg.left_out_metrics)}.", ""]
    if agg.test is None:
        return lines + [f"No rank test: {agg.why_not}.", ""]
    t = agg.test
    friedman = (f"Friedman test over {agg.blocks} metrics and {len(agg.methods)} methods: chi² = {t.statistic:.2f}, "
                f"p = {t.pvalue:.2g}.")
    if t.pairwise is None:
        return lines + [f"{friedman} No pairwise comparison or critical difference diagram: {t.why_no_posthoc}.", ""]
    pairs = [(t.pairwise.loc[a, b], a, b) for k, a in enumerate(agg.methods) for b in agg.methods[k + 1:]
             if t.pairwise.loc[a, b] < stats.ALPHA]
    differ = "; ".join(f"{a} vs {b} (p={p:.2g})" for p, a, b in sorted(pairs)) or "none"
    return lines + [f"{friedman} Pairs that differ after Holm's correction: {differ}.", "",
                    f"![critical difference diagram: {caption}]({figure})", ""]


def section_figure(suite: str, block: Block) -> str:
    """Path of a section's critical difference diagram, relative to the leaderboards folder."""
    return suite_figure_path(suite, f"{block.dataset}--{block.model}--cd")


def overall_figure(suite: str) -> str:
    """Path of the suite-wide critical difference diagram, relative to the leaderboards folder."""
    return suite_figure_path(suite, "all-sections--cd")


def draw(agg: Aggregate, title: str, path: str | Path) -> Path | None:
    """The critical difference diagram of ``agg`` (scikit-posthocs) as a PNG at ``path``; None without a post-hoc
    test."""
    if agg.test is None or agg.test.pairwise is None:
        return None
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.5, 1.0 + 0.3 * len(agg.methods)), layout="constrained")
    ax = fig.add_subplot()
    metaeval.critical_difference_diagram(agg.test, ax=ax, alpha=stats.ALPHA)
    ax.set_title(f"Mean rank over {agg.blocks} metrics: {title}", fontsize=9)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80, format="png", metadata={"Software": None})
    return path


def write_figures(blocks: Sequence[Block], header: Mapping[str, Any], suite: str, out_dir: str | Path) -> list[Path]:
    """Draw every section's diagram and the suite-wide one into ``out_dir``; returns the paths drawn."""
    out = Path(out_dir)
    drawn = [draw(aggregate([b], header), f"{b.dataset} × {b.model}", out / section_figure(suite, b)) for b in blocks]
    if len(blocks) > 1:
        drawn.append(draw(aggregate(blocks, header), "all sections", out / overall_figure(suite)))
    return [p for p in drawn if p is not None]


def as_json(agg: Aggregate) -> dict[str, Any]:
    """``{"methods", "left_out", "left_out_metrics", "families": {family: {"mean_rank", "std", "metrics"}},
    "friedman": {...} | null,
    "why_not"}``; ``friedman["pairwise_holm"]`` is null where the blocks are too few (``why_no_posthoc``)."""
    def num(v: float) -> float | None:
        return None if not math.isfinite(v) else float(f"{v:.6g}")

    test = None if agg.test is None else {
        "statistic": num(agg.test.statistic), "pvalue": num(agg.test.pvalue), "blocks": agg.blocks,
        "why_no_posthoc": agg.test.why_no_posthoc or None,
        "pairwise_holm": None if agg.test.pairwise is None else {
            a: {b: num(float(agg.test.pairwise.loc[a, b])) for b in agg.methods} for a in agg.methods}}
    return {"methods": agg.methods, "left_out": list(agg.left_out), "left_out_metrics": list(agg.left_out_metrics),
            "why_not": agg.why_not or None, "friedman": test,
            "families": {f: {"mean_rank": [num(v) for v in mean], "std": [num(v) for v in std], "metrics": k}
                         for f, (mean, std, k) in agg.families.items()}}
