"""The board model: a suite's stored cells -> ranked dataset x model blocks (the computation every view shows).

Nothing here formats text. :func:`records` reads one :class:`Record` per planned
cell from the store; :func:`board` groups them into :class:`Block` s (one per
dataset x model, in plan order) with per-metric tie-aware significance ranks, the
overall rank and the metric-agreement matrix (:mod:`xaibench.scoring.stats`). The
renderers (:mod:`~xaibench.leaderboard.markdown`, :mod:`~xaibench.leaderboard.exports`)
only format what this module computes; the ``*_RULE`` texts say how in words.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Callable

import numpy as np

from xaibench.scoring import stats
from xaibench.base.errors import XaibenchError
from xaibench.leaderboard.chance import RULE as CHANCE_RULE
from xaibench.leaderboard.chance import MetricCalibration, calibrate, closed_form
from xaibench.models.gate import unranked_reason
from xaibench.models.gate import verdict as gate_verdict
from xaibench.storage.store import CellResult, PlanRow, Store

#: How the leaderboard ranks, shown in the markdown and the JSON export.
RANK_RULE = (
    f"Per metric, a method's rank is 1 + the number of methods significantly better than it: every pair of "
    f"methods is compared by a two-sided Wilcoxon signed-rank test on their per-sample scores over the same "
    f"samples, the p-values of all pairs are Holm-corrected together, and a pair differs when the corrected "
    f"p-value is below {stats.ALPHA}. Methods that no method beats share rank 1; \"=\" marks a shared rank. "
    f"The overall rank orders methods by their mean per-metric rank (equal means share a rank). "
    f"Calibration baselines (random, centre, ground-truth: `MethodSpec.calibration`) are references, not "
    f"contenders: they are listed below the methods with rank \"ref\" and are left out of every ranking. "
    + CHANCE_RULE
)
CI_RULE = (
    f"Each cell is the mean over samples with its 95% percentile bootstrap confidence interval "
    f"({stats.BOOTSTRAP_RESAMPLES} resamples, seeded per cell from the suite seed) and, in parentheses, its rank "
    f"(bold: rank 1, never a cell at or below chance); "
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
    """One planned cell of a suite as the leaderboard shows it.

    ``mean``, ``ci_low`` and ``ci_high`` are the cell's mean over samples with a
    defined score and its 95% percentile bootstrap CI, in the metric's units (None
    unless ``status`` is ``ok``); ``n`` counts the samples with a defined (non-NaN)
    score, ``n_total`` those evaluated. ``status`` is ``ok``, ``failed`` (``detail``:
    the error), ``skipped`` (``detail``: the plan's reason) or ``missing`` (planned,
    never run).
    """

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
    #: The calibration role of a baseline (``MethodSpec.calibration``: chance, centre-bias, oracle), "" for a method.
    baseline: str = ""
    #: Metric -> 1 above chance, 0 at chance, -1 below, None not compared (:mod:`~xaibench.leaderboard.chance`).
    metric_chance: dict[str, int | None] = field(default_factory=dict)


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
    #: Pooled k-fold blocks only (:mod:`~xaibench.leaderboard.pooled`): method -> metric -> (mean of the fold
    #: means, their sample standard deviation, folds with a score).
    folds: dict[str, dict[str, tuple[float, float, int]]] | None = None
    #: Pooled k-fold blocks only: the dataset the folds were cut from (its calibration facts apply).
    pooled_from: str | None = None
    #: A record's per-sample scores (sample id -> score; empty where none is stored): the store's for a
    #: stored cell, the pooled folds' for a pooled block. Per-sample views (the trust table) read them here.
    scores_of: Callable[[Record], dict[str, float]] = field(default=lambda r: {}, compare=False, repr=False)
    #: Metric -> its chance level, oracle score, smallest effect, the methods' standing against chance and
    #: whether it is uninformative here (:mod:`~xaibench.leaderboard.chance`).
    calibration: dict[str, MetricCalibration] = field(default_factory=dict)

    @property
    def skipped(self) -> list[str]:
        """The skip reasons when no cell of the section ran (a model on data of a modality it does not take),
        else []: such a section has no table and no verdict."""
        cells = [c for r in self.rows for c in r.cells.values()]
        return sorted({c.detail for c in cells}) if cells and all(c.status == "skipped" for c in cells) else []

    @property
    def winners(self) -> list[str]:
        """The methods of overall rank 1 (several when tied; none when no method has a value), less any method
        that is above chance on none of the metrics where it was compared with chance."""
        def above(r: MethodRow) -> bool:
            compared = [v for v in r.metric_chance.values() if v is not None]
            return not compared or 1 in compared
        return [r.method for r in self.rows if r.rank == 1 and above(r)]


def _shared(ranks: list[int | None]) -> list[bool]:
    return [r is not None and ranks.count(r) > 1 for r in ranks]


def sample_scores(scores_of: Callable[[Record], dict[str, float]], recs: list[Record | None]) -> list[np.ndarray | None]:
    """Per-sample scores ``(S,)`` of each scored record (``scores_of(record)``: sample id -> score) over the union
    of their S sample ids, sorted (NaN where absent); None for a record that is None or has no score."""
    scores = [scores_of(r) if r is not None and _score(r) is not None else None for r in recs]
    ids = sorted(set().union(*(s.keys() for s in scores if s is not None)))
    return [None if s is None else np.array([s.get(i, np.nan) for i in ids], dtype=np.float64) for s in scores]


def _block(scores_of: Callable[[Record], dict[str, float]], dataset: str, model: str, block: list[Record],
           direction: dict[str, bool], evaluation: dict[str, Any] | None, samples: int, roles: dict[str, str],
           header: dict[str, Any], source: str) -> Block:
    """One section; ``header`` is the run's (calibration facts, metric bounds), ``source`` the dataset the
    facts are under."""
    methods = list(dict.fromkeys(r.method for r in block))
    metrics = list(dict.fromkeys(r.metric for r in block))
    by = {(r.method, r.metric): r for r in block}
    metric_ranks: dict[str, dict[str, int | None]] = {}
    calibration: dict[str, MetricCalibration] = {}
    unranked = unranked_reason(evaluation)  # a model that did not learn ranks nothing
    for m in metrics:
        aligned = sample_scores(scores_of, [by.get((me, m)) for me in methods])
        cal = calibration[m] = calibrate(methods, aligned, roles, direction[m],
                                         closed_form(m, header.get("calibration", {}), source),
                                         header.get("metrics", {}).get(m, {}).get("bounds"),
                                         header.get("metrics", {}).get(m, {}).get("category", ""))
        standing = [cal.standing.get(me) for me in methods]
        silent = unranked or cal.uninformative or (any(v is not None for v in standing) and 1 not in standing)
        metric_ranks[m] = dict(zip(methods, [None] * len(methods) if silent else stats.significance_ranks(
            [None if roles.get(me) else a for me, a in zip(methods, aligned)], direction[m],  # baselines unranked
            min_effect=cal.min_effect, tiers=standing)))
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
                              {m: metric_ranks[m][me] for m in metrics}, {m: shared[m][me] for m in metrics},
                              roles.get(me, ""), {m: calibration[m].standing.get(me) for m in metrics}))
    rows.sort(key=lambda r: (bool(r.baseline), r.rank is None, r.rank or 0, r.method))
    means = {m: [_score(by.get((me, m))) for me in methods] for m in metrics}
    scored = [m for m in metrics if any(v is not None for v in means[m])]
    tau = stats.agreement([means[m] for m in scored], [direction[m] for m in scored])
    return Block(dataset, model, metrics, {m: direction[m] for m in metrics}, rows, scored, tau, evaluation, samples,
                 scores_of=scores_of, calibration=calibration)


def _score(r: Record | None) -> float | None:
    return r.mean if r is not None and r.status == "ok" and r.n > 0 else None


def board(store: Store, suite: str) -> list[Block]:
    """The statistics of every dataset x model block of the suite, in plan order."""
    recs = records(store, suite)
    plan = store.plan(suite)
    header = store.header(suite) or {}
    direction = {r.metric: r.higher_is_better for r in plan}
    model_keys = {(r.dataset, r.model): r.model_key for r in plan}
    roles = {m: role for m, role in header.get("calibration", {}).get("methods", {}).items() if role}
    blocks = []
    for (dataset, model) in dict.fromkeys((r.dataset, r.model) for r in recs):
        block = [r for r in recs if r.dataset == dataset and r.model == model]
        samples = (header.get("datasets", {}).get(dataset, {}).get("samples")
                   or max((r.n_total for r in block), default=0))
        blocks.append(_block(lambda r: store.scores(r.cell_key), dataset, model, block, direction,
                             store.model_evaluation(model_keys[(dataset, model)]), samples, roles,
                             header, dataset))
    return blocks + pooled_blocks(store, header, recs, blocks, direction, roles)


def pooled_blocks(store: Store, header: dict[str, Any], recs: list[Record], blocks: list[Block],
                  direction: dict[str, bool], roles: dict[str, str]) -> list[Block]:
    """One block per dataset x model run with ``folds: K``, pooling its folds' held-out samples.

    Each cell's mean and CI are over all held-out samples together (``stats.summarize``),
    its rank from the paired tests over them; ``Block.folds`` holds the mean and sample
    standard deviation of the fold means. A cell is ``ok`` only when it is in every fold.
    The evaluation pools the folds: accuracy (and the majority rate) over all held-out
    samples, macro and per-class precision, recall and F1 as the mean over folds, and the model gate
    (:func:`xaibench.models.gate.verdict`) on the pooled accuracy.
    """
    datasets = header.get("datasets", {})
    groups: dict[tuple[str, str], list[Block]] = {}
    for b in blocks:
        if "fold" in datasets.get(b.dataset, {}):
            groups.setdefault((datasets[b.dataset]["source"], b.model), []).append(b)
    out = []
    for (source, model), fold_blocks in groups.items():
        names = {b.dataset for b in fold_blocks}
        name = f"{source} (pooled over {len(fold_blocks)} folds)"
        parts: dict[tuple[str, str], list[Record]] = {}
        for r in recs:
            if r.dataset in names and r.model == model:
                parts.setdefault((r.method, r.metric), []).append(r)
        pooled, scores, spread = [], {}, {}
        for (method, metric), rs in parts.items():
            bad = next((r for r in rs if r.status != "ok"), None)
            if bad is not None or len(rs) < len(fold_blocks):
                pooled.append(Record(name, model, method, metric, None, None, None, 0,
                                     bad.status if bad else "missing", bad.detail if bad else None))
                continue
            values = {i: v for r in rs for i, v in store.scores(r.cell_key).items()}
            mean, low, high, n = stats.summarize(np.array(list(values.values()), dtype=np.float64),
                                                 stats.seed_from(header.get("seed", 0), name, model, method, metric),
                                                 list(values))
            key = f"{name}/{method}/{metric}"
            scores[key] = values
            pooled.append(Record(name, model, method, metric, mean, low, high, n, "ok", None, key, len(values)))
            means = [r.mean for r in rs if r.n > 0]
            spread.setdefault(method, {})[metric] = (float(np.mean(means)) if means else float("nan"),
                                                     float(np.std(means, ddof=1)) if len(means) > 1 else float("nan"),
                                                     len(means))
        evaluations = [b.evaluation for b in fold_blocks if b.evaluation]
        evaluation = None
        if len(evaluations) == len(fold_blocks):
            n = np.array([e["n"] for e in evaluations], dtype=np.float64)
            evaluation = {**evaluations[0], "n": int(n.sum()),
                          **{k: float(np.average([e[k] for e in evaluations], weights=n))
                             for k in ("accuracy", "majority")},
                          **{k: float(np.mean([e[k] for e in evaluations])) for k in ("precision", "recall", "f1")}}
            evaluation["per_class"] = pooled_per_class(evaluations)
            evaluation["gate"] = gate_verdict(evaluation)  # the cross-validated accuracy over all held-out samples
        block = _block(lambda r, scores=scores: scores.get(r.cell_key, {}), name, model, pooled, direction,
                       evaluation, sum(b.samples for b in fold_blocks), roles, header, source)
        out.append(replace(block, folds=spread, pooled_from=source))
    return out


def pooled_per_class(evaluations: list[dict]) -> dict[str, dict[str, float]]:  # type: ignore[type-arg]
    """Per class: precision, recall and F1 as the mean over the folds where each is defined (None if in none),
    and the support summed over the folds."""
    names = list(dict.fromkeys(c for e in evaluations for c in e.get("per_class", {})))
    out = {}
    for c in names:
        folds = [e["per_class"][c] for e in evaluations if c in e.get("per_class", {})]
        means = {}
        for k in ("precision", "recall", "f1"):
            values = [v[k] for v in folds if v[k] is not None]
            means[k] = float(np.mean(values)) if values else None
        out[c] = {**means, "support": int(sum(v["support"] for v in folds))}
    return out
