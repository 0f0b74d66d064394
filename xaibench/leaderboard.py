"""Store -> leaderboards: markdown (tabulate), a JSON document, an index, figures.

Everything here renders from the store alone and never recomputes a score, so
``xaibench leaderboard`` works without models or data. The output is a pure
function of what the store holds (no timestamps, fixed orders), so an unchanged
store renders byte-identical files and CI can tell a stale leaderboard by
comparing bytes.

One computation, :func:`board`, produces the statistics (cells, tie-aware ranks,
metric agreement) that the markdown and the JSON document show; ``write`` puts both
beside each other (``<suite>.md``, ``<suite>.json``), and the index ``README.md`` is
rendered from the JSON documents in the folder.

Figures: the metric-agreement heat maps are drawn from the store here; the
saliency galleries and deletion/insertion curves need the models and maps, so
``xaibench run`` draws them (:func:`xaibench.figures.write_run_figures`) and the
markdown links them by their fixed names.
"""
from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tabulate import tabulate

from xaibench import stats
from xaibench.degenerate import constant_map_notes
from xaibench.errors import XaibenchError
from xaibench.figures import FIGURE_KINDS, figure_path
from xaibench.gate import evaluation_notes, unranked_reason
from xaibench.store import CellResult, PlanRow, Store

ARROW = {True: "↑", False: "↓"}
INDEX = "README.md"
JSON_SCHEMA = 1

#: How the leaderboard ranks, shown in the markdown and the JSON export.
RANK_RULE = (
    f"Per metric, a method's rank is 1 + the number of methods significantly better than it: every pair of "
    f"methods is compared by a two-sided Wilcoxon signed-rank test on their per-sample scores over the same "
    f"samples, the p-values of all pairs are Holm-corrected together, and a pair differs when the corrected "
    f"p-value is below {stats.ALPHA}. Methods that no method beats share rank 1; \"=\" marks a shared rank. "
    f"The overall rank orders methods by their mean per-metric rank (equal means share a rank)."
)
CI_RULE = (
    f"Each cell is the mean over samples with its 95% percentile bootstrap confidence interval "
    f"({stats.BOOTSTRAP_RESAMPLES} resamples, seeded per cell from the suite seed) and, in parentheses, its rank "
    f"(bold: rank 1); "
    f"n is shown where fewer samples than evaluated had a defined score. ↑ means higher is better, ↓ lower."
)
AGREEMENT_RULE = (
    "Kendall's tau-b between two metrics' rankings of the methods' mean scores, after orienting every metric so "
    "that higher is better: 1 = the metrics order the methods identically, -1 = in reverse, – = fewer than 3 "
    "methods with values on both or a metric that ties them all. Metrics often disagree (Tomsett et al. 2020, "
    "Sanity Checks for Saliency Metrics, AAAI): read a ranking together with this table."
)


@dataclass(frozen=True)
class Record:
    dataset: str
    model: str
    method: str
    metric: str
    mean: float | None
    ci_low: float | None
    ci_high: float | None
    n: int
    status: str  # ok | failed | skipped | missing
    detail: str | None
    cell_key: str = ""
    n_total: int = 0
    #: Samples whose map was constant (scored NaN), from the cell's provenance.
    constant_maps: int = 0


def records(store: Store, suite: str) -> list[Record]:
    """One record per planned cell of the suite's latest run."""
    plan = store.plan(suite)
    if not plan:
        known = ", ".join(store.suites()) or "none"
        raise XaibenchError(f"the store {store.path} has no results for suite {suite!r} (suites in it: {known}); "
                            f"run `xaibench run --suite {suite}` first")
    return [_record(row, cell) for row, cell in store.iter_cells(suite)]


def _record(row: PlanRow, cell: CellResult | None) -> Record:
    base = (row.dataset, row.model, row.method, row.metric)
    if row.skip_reason:
        return Record(*base, None, None, None, 0, "skipped", row.skip_reason, row.cell_key)
    if cell is None:
        return Record(*base, None, None, None, 0, "missing", None, row.cell_key)
    return Record(*base, cell.mean, cell.ci_low, cell.ci_high, cell.n, cell.status, cell.error, row.cell_key,
                  cell.n_total, int((cell.provenance or {}).get("constant_maps", 0)))


def export(store: Store, suite: str, fmt: str) -> str:
    """``json`` or ``csv`` with keys dataset, model, method, metric, mean, ci_low, ci_high, n, status."""
    keys = ("dataset", "model", "method", "metric", "mean", "ci_low", "ci_high", "n", "status")
    rows = [{k: getattr(r, k) for k in keys} for r in records(store, suite)]
    if fmt == "json":
        return json.dumps(rows, indent=2) + "\n"
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=keys, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        return buf.getvalue()
    raise XaibenchError(f"unknown format {fmt!r}; use json or csv")


# -- the statistics every view shows ----------------------------------------------------------------

@dataclass(frozen=True)
class MethodRow:
    """One method in one dataset x model block."""

    method: str
    rank: int | None  # overall rank (None: no metric has a value)
    tied: bool
    mean_rank: float | None
    cells: dict[str, Record]  # metric -> record
    metric_ranks: dict[str, int | None]
    metric_tied: dict[str, bool]


@dataclass(frozen=True)
class Block:
    """One dataset x model: its methods ranked, and how its metrics agree."""

    dataset: str
    model: str
    metrics: list[str]
    higher_is_better: dict[str, bool]
    rows: list[MethodRow]  # best first
    agreement_metrics: list[str]  # the metrics with at least one value
    agreement: np.ndarray  # (agreement_metrics, agreement_metrics) Kendall's tau, NaN where undefined
    evaluation: dict[str, Any] | None
    samples: int  # samples evaluated per cell

    @property
    def winners(self) -> list[str]:
        return [r.method for r in self.rows if r.rank == 1]


def _shared(ranks: list[int | None]) -> list[bool]:
    return [r is not None and ranks.count(r) > 1 for r in ranks]


def _aligned(store: Store, recs: list[Record | None]) -> list[np.ndarray | None]:
    """Per-sample scores of each scored record over the union of their sample ids (NaN where absent)."""
    scores = [store.scores(r.cell_key) if _score(r) is not None else None for r in recs]
    ids = sorted(set().union(*(s.keys() for s in scores if s is not None)))
    return [None if s is None else np.array([s.get(i, np.nan) for i in ids], dtype=np.float64) for s in scores]


def _block(store: Store, dataset: str, model: str, block: list[Record], direction: dict[str, bool],
           model_key: str, samples: int) -> Block:
    methods = list(dict.fromkeys(r.method for r in block))
    metrics = list(dict.fromkeys(r.metric for r in block))
    by = {(r.method, r.metric): r for r in block}
    metric_ranks: dict[str, dict[str, int | None]] = {}
    unranked = unranked_reason(store.model_evaluation(model_key))  # issue 14: a model that did not learn
    for m in metrics:
        aligned = _aligned(store, [by.get((me, m)) for me in methods])
        metric_ranks[m] = dict(zip(methods, [None] * len(methods) if unranked
                                   else stats.significance_ranks(aligned, direction[m])))
    mean_rank: dict[str, float | None] = {}
    for me in methods:
        rs = [metric_ranks[m][me] for m in metrics if metric_ranks[m][me] is not None]
        mean_rank[me] = float(np.mean(rs)) if rs else None
    overall = stats.competition_ranks([mean_rank[me] for me in methods], higher_is_better=False)
    tied = _shared(overall)
    shared = {m: dict(zip(methods, _shared([metric_ranks[m][me] for me in methods]))) for m in metrics}
    rows = []
    for i, me in enumerate(methods):
        cells = {m: by[(me, m)] for m in metrics if (me, m) in by}
        rows.append(MethodRow(me, overall[i], tied[i], mean_rank[me], cells,
                              {m: metric_ranks[m][me] for m in metrics}, {m: shared[m][me] for m in metrics}))
    rows.sort(key=lambda r: (r.rank is None, r.rank or 0, r.method))
    means = {m: [_score(by.get((me, m))) for me in methods] for m in metrics}
    scored = [m for m in metrics if any(v is not None for v in means[m])]
    tau = stats.agreement([means[m] for m in scored], [direction[m] for m in scored])
    return Block(dataset, model, metrics, {m: direction[m] for m in metrics}, rows, scored, tau,
                 store.model_evaluation(model_key), samples)


def _score(r: Record | None) -> float | None:
    return r.mean if r is not None and r.status == "ok" and r.n > 0 else None


def board(store: Store, suite: str) -> list[Block]:
    """The statistics of every dataset x model block of the suite, in plan order."""
    recs = records(store, suite)
    plan = store.plan(suite)
    header = store.header(suite) or {}
    direction = {r.metric: r.higher_is_better for r in plan}
    model_keys = {(r.dataset, r.model): r.model_key for r in plan}
    blocks = []
    for (dataset, model) in dict.fromkeys((r.dataset, r.model) for r in recs):
        block = [r for r in recs if r.dataset == dataset and r.model == model]
        samples = (header.get("datasets", {}).get(dataset, {}).get("samples")
                   or max((r.n_total for r in block), default=0))
        blocks.append(_block(store, dataset, model, block, direction, model_keys[(dataset, model)], samples))
    return blocks


# -- markdown ---------------------------------------------------------------------------------------

def fmt(v: float | None) -> str:
    if v is None or not math.isfinite(v):
        return "–"
    a = abs(v)
    if a >= 1000:
        return f"{v:.3g}"
    if a >= 10:
        return f"{v:.1f}"
    return f"{v:.3f}"


def _md(text: object) -> str:
    """Text safe inside a markdown table cell."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def _rank_text(rank: int | None, tied: bool) -> str:
    return "–" if rank is None else f"{rank}{'=' if tied else ''}"


def _cell_text(r: Record, rank: int | None, tied: bool, samples: int) -> str:
    if r.status != "ok":
        return {"failed": "**failed**", "skipped": "n/a", "missing": "not run"}[r.status]
    if r.n == 0:
        return "undefined (n=0)"
    n = f" n={r.n}" if r.n < samples else ""
    text = f"{fmt(r.mean)} [{fmt(r.ci_low)}, {fmt(r.ci_high)}]{n} ({_rank_text(rank, tied)})"
    return f"**{text}**" if rank == 1 else text


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


def _figure_links(suite: str, b: Block) -> list[str]:
    titles = {"agreement": "metric agreement heat map", "gallery": "saliency gallery",
              "curves": "deletion and insertion curves"}
    links = [f"![{titles[k]}: {b.dataset} × {b.model}]({figure_path(suite, b.dataset, b.model, k)})"
             for k in FIGURE_KINDS if k != "agreement" or len(b.agreement_metrics) >= 2]
    return ["### Figures", "", *(f"{link}\n" for link in links)]


def render(store: Store, suite: str) -> str:
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
        if b.evaluation:
            e = b.evaluation
            lines += [f"Model on the test split (n={e['n']}): accuracy {e['accuracy']:.3f}, macro precision "
                      f"{e['precision']:.3f}, recall {e['recall']:.3f}, F1 {e['f1']:.3f} "
                      f"(majority class: {e['majority']:.3f}).", ""]
            lines += evaluation_notes(e)  # issue 14: gate verdict, device/dtype/autocast
        lines += [f"Samples per cell: {b.samples}.", ""]
        table = [[_rank_text(r.rank, r.tied), r.method]
                 + [_cell_text(r.cells[m], r.metric_ranks[m], r.metric_tied[m], b.samples) if m in r.cells else "–"
                    for m in b.metrics] for r in b.rows]
        lines += [tabulate(table, headers=["rank", "method"] + [f"{m} {ARROW[b.higher_is_better[m]]}"
                                                                for m in b.metrics],
                           tablefmt="github", disable_numparse=True), ""]
        notes = sorted({_md((f"{c.method} / {c.metric} failed: " if c.status == "failed" else "")
                            + c.detail.splitlines()[0])
                        for r in b.rows for c in r.cells.values() if c.status in ("failed", "skipped") and c.detail})
        if notes:
            lines += ["Cells without a score:", ""] + [f"- {n}" for n in notes] + [""]
        lines += constant_map_notes({r.method: max((c.constant_maps for c in r.cells.values()), default=0)
                                     for r in b.rows}, b.samples)  # issue 14
        lines += _agreement_table(b)
        lines += _figure_links(suite, b)

    if any(len(b.agreement_metrics) >= 2 for b in blocks):
        lines += ["## About the metric agreement", "", AGREEMENT_RULE, ""]
    metric_info = header.get("metrics", {})
    if metric_info:
        rows = [[m, i.get("category"), ARROW[bool(i.get("higher_is_better"))], _md(i.get("description", "")),
                 _md(i.get("citation", ""))] for m, i in metric_info.items()]
        lines += ["## Metrics", "", tabulate(rows, headers=["metric", "category", "better", "what it measures",
                                                          "reference"], tablefmt="github"), ""]
    method_info = header.get("methods", {})
    if method_info:
        rows = [[m, i.get("plugin"), _md(json.dumps(i.get("params", {}), sort_keys=True)), _md(i.get("citation", ""))]
                for m, i in method_info.items()]
        lines += ["## Methods", "", tabulate(rows, headers=["method", "plugin", "parameters", "reference"],
                                             tablefmt="github"), ""]
    return "\n".join(lines).rstrip() + "\n"


# -- JSON for websites ------------------------------------------------------------------------------

def _num(v: float | None) -> float | None:
    """A JSON number with 6 significant digits (null for NaN/inf): float noise in the last bits of a
    score computed on another CPU does not change the file."""
    return None if v is None or not math.isfinite(v) else float(f"{v:.6g}")


def to_json(store: Store, suite: str) -> str:
    """The leaderboard as one JSON document (schema 1), for a website to render.

    ``blocks[*].rows`` are ordered best first; each carries its overall ``rank``
    (``tied``: shared), and per metric the cell's mean, CI, n, status, rank and tie
    flag; ``agreement.tau[i][j]`` is Kendall's tau between ``agreement.metrics[i]``
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
                         "detail": c.detail.splitlines()[0] if c.detail else None}
                     for m, c in r.cells.items()}
            rows.append({"method": r.method, "rank": r.rank, "tied": r.tied, "mean_rank": _num(r.mean_rank),
                         "cells": cells})
        blocks.append({
            "dataset": b.dataset, "model": b.model, "samples": b.samples, "evaluation": b.evaluation,
            "metrics": [{"name": m, "higher_is_better": b.higher_is_better[m]} for m in b.metrics],
            "rows": rows, "winners": b.winners,
            "agreement": {"metrics": b.agreement_metrics, "tau": [[_num(t) for t in row] for row in b.agreement]},
            "figures": {k: figure_path(suite, b.dataset, b.model, k) for k in FIGURE_KINDS},
        })
    doc = {
        "schema": JSON_SCHEMA, "suite": suite,
        "header": {k: header.get(k) for k in ("description", "seed", "samples", "target", "device", "versions",
                                              "plugins", "datasets", "metrics", "methods")},
        "statistics": {"cells": CI_RULE, "ranks": RANK_RULE, "agreement": AGREEMENT_RULE,
                       "bootstrap_resamples": stats.BOOTSTRAP_RESAMPLES, "alpha": stats.ALPHA},
        "blocks": blocks,
    }
    return json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False) + "\n"


# -- the index --------------------------------------------------------------------------------------

def _published(out_dir: Path) -> list[dict[str, Any]]:
    """The leaderboard JSON documents in ``out_dir`` (other JSON files are not leaderboards: skipped)."""
    docs = []
    for path in sorted(out_dir.glob("*.json")):
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(doc, dict) and doc.get("schema") == JSON_SCHEMA and f"{doc.get('suite')}.json" == path.name:
            docs.append(doc)
    return docs


def render_index(out_dir: str | Path) -> str:
    """``README.md`` of a leaderboards folder: every suite published there and its headline winners.

    Rendered from the ``<suite>.json`` files in the folder, not from a store, so the
    index covers suites that one store (CI's, say) cannot re-run, such as suites on
    data that only some machines have.
    """
    lines = ["# Leaderboards", "",
             "Generated by `xaibench run` and `xaibench leaderboard` from each suite's `<suite>.json`; do not edit "
             "by hand. Winners are the methods of overall rank 1 (no method has a better mean per-metric rank; see "
             "each leaderboard for how ranks account for ties). The JSON files are the same leaderboards for "
             "programs and websites.", ""]
    rows = []
    for doc in _published(Path(out_dir)):
        suite = doc["suite"]
        for b in doc["blocks"]:
            rows.append([f"[{suite}]({suite}.md)", f"{b['dataset']} × {b['model']}", ", ".join(b["winners"]) or "–",
                         len(b["rows"]), len(b["metrics"]), b["samples"], doc["header"].get("seed")])
    if rows:
        lines += [tabulate(rows, headers=["suite", "dataset × model", "winners", "methods", "metrics", "samples",
                                          "seed"], tablefmt="github", disable_numparse=True), ""]
    else:
        lines += ["No suite has a leaderboard here yet: run `xaibench run --suite quick`.", ""]
    return "\n".join(lines)


def write_index(out_dir: str | Path) -> Path:
    path = Path(out_dir) / INDEX
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_index(out_dir), encoding="utf-8")
    return path


# -- writing and checking ---------------------------------------------------------------------------

def _rendered(store: Store, suite: str) -> dict[str, str]:
    """File name -> content of the text files that represent ``suite``."""
    return {f"{suite}.md": render(store, suite), f"{suite}.json": to_json(store, suite)}


def write(store: Store, suite: str, out_dir: str | Path) -> Path:
    """Write ``<suite>.md``, ``<suite>.json``, the agreement heat maps and the index; return the markdown's path."""
    from xaibench.figures import agreement_heatmap

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name, text in _rendered(store, suite).items():
        (out / name).write_text(text, encoding="utf-8")
    for b in board(store, suite):
        if len(b.agreement_metrics) >= 2:
            agreement_heatmap(b.agreement, b.agreement_metrics, f"{b.dataset} × {b.model}",
                              out / figure_path(suite, b.dataset, b.model, "agreement"))
    write_index(out)
    return out / f"{suite}.md"


def problems(store: Store, suite: str, out_dir: str | Path) -> list[str]:
    """What is stale or missing in ``out_dir`` for ``suite``; empty when up to date.

    The markdown, the JSON and the index are compared byte for byte with what the
    store renders now. Figures are checked for existence only: PNG bytes depend on
    the matplotlib and FreeType versions and on float rounding of the maps on the
    machine that drew them, so comparing them would flag every other machine.
    """
    out = Path(out_dir)
    found = []
    rendered = _rendered(store, suite)
    for name, text in rendered.items():
        found += _differs(out / name, text, "the store renders")
    for link in _linked_figures(rendered[f"{suite}.md"]):
        if not (out / link).exists():
            found.append(f"{out / link} is missing (figures are drawn by `xaibench run --suite {suite}`)")
    return found + index_problems(out)


def index_problems(out_dir: str | Path) -> list[str]:
    return _differs(Path(out_dir) / INDEX, render_index(out_dir), "the <suite>.json files beside it render")


def _differs(path: Path, text: str, source: str) -> list[str]:
    current = path.read_text(encoding="utf-8") if path.exists() else None
    if current == text:
        return []
    return [f"{path} is {'missing' if current is None else 'stale'}: it differs from what {source}"]


def _linked_figures(markdown: str) -> list[str]:
    return [line.split("](", 1)[1].rstrip(")") for line in markdown.splitlines() if line.startswith("![")]
