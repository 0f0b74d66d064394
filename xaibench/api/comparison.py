"""What :func:`xaibench.api.compare` returns: several methods scored on the same samples, ranked as a suite ranks.

:func:`xaibench.api.compare` scores every method with :func:`xaibench.api.score` (the maps a
user gives, or a registered method's from :func:`xaibench.api.explain`). This module lays the
scores out as a suite run stores them, in an in-memory results store (plan rows in method x
metric order, the run's header with its calibration facts from
:func:`xaibench.scoring.calibration.calibration_facts`, one cell per method x metric with its per-sample
scores and bootstrap CI), and reads them back with the leaderboard's own functions:
:func:`xaibench.leaderboard.board.board` (tie-aware significance ranks: paired Wilcoxon tests,
Holm-corrected), :func:`~xaibench.leaderboard.verdict.section_verdict` (the calibration verdict),
:func:`~xaibench.leaderboard.trust.assess` (which metrics to trust),
:func:`~xaibench.leaderboard.ranking.aggregate` (mean ranks, Friedman test) and
:func:`~xaibench.leaderboard.references.findings` (a baseline beating every method). Nothing here
computes a statistic, so a comparison of a suite's samples (same ids and seed) shows a
suite's numbers and ranks.
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from xaibench.api import user_inputs
from xaibench.base.errors import XaibenchError, did_you_mean
from xaibench.storage.store import CellResult, PlanRow, Store
from xaibench.suites.suite import Entry
from xaibench.api.user_methods import choose_method

if TYPE_CHECKING:
    from xaibench.suites.plan import Resolved
    from xaibench.api.scores import Scores

#: The calibration roles (``MethodSpec.calibration``) ``compare(baselines=True)`` adds: chance and the oracle.
BASELINE_ROLES = ("chance", "oracle")
#: :func:`xaibench.api.score`'s keywords that ``compare`` passes on (the same for every method).
SCORE_KEYWORDS = ("regions", "region_top_level", "ground_truth", "data_mean", "device", "batch_size", "num_classes",
                  "output", "output_index", "output_key")


@dataclasses.dataclass(frozen=True)
class Contender:
    """One method of a comparison: ``maps`` a user gave (``(N, *spatial)``), or a registered method's ``entry``
    (name and parameters) or a callable ``method`` to explain with; ``skips``: metric -> why it does not apply."""

    name: str
    maps: Any = None
    method: Any = None
    entry: Resolved | None = None
    additive: bool = False
    skips: dict[str, str] = dataclasses.field(default_factory=dict)
    #: metric -> the parameters it is scored with for this method (paired ones taken from the method).
    params: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)


def _registered(kind: str, name: str, params: Mapping[str, Any] | None = None, label: str = "") -> Resolved:
    from xaibench.suites.plan import Resolved

    entry = user_inputs.installed().registry(kind).entry(name)
    where, what = f"xaibench.compare {kind}", kind[:-1]
    checked = user_inputs.merged_params(entry.spec, dict(params or {}), where, what)  # unknown names: did you mean
    given = {k: v for k, v in checked.items() if k in (params or {})}
    return Resolved(Entry(name, params=given, label=label if label != name else ""), entry.spec, entry.plugin)


def metric_entries(metrics: Any, params: Mapping[str, Mapping[str, Any]] | None) -> list[Resolved]:
    """The metrics named (a name or several, none twice) as a suite resolves them, with ``params`` over each
    one's defaults; unknown metric or parameter names raise :class:`XaibenchError` with "did you mean"."""
    names = [metrics] if isinstance(metrics, str) else list(metrics)
    if not names or len(set(names)) != len(names):
        raise XaibenchError("metrics must name at least one registered metric, none twice (xaibench plugins lists them)")
    params = dict(params or {})
    unknown = sorted(set(params) - set(names))
    if unknown:
        raise XaibenchError(f"params name {', '.join(map(repr, unknown))}, which metrics does not list")
    return [_registered("metrics", n, params.get(n)) for n in names]


def _contender(name: str, value: Any, metrics: list[Resolved]) -> Contender:
    from xaibench.suites.plan import metric_params, not_applicable

    if isinstance(value, str) or isinstance(value, Mapping) and "name" in value:
        spec = value if isinstance(value, str) else value["name"]
        extra = sorted(set(value) - {"name", "params"}) if isinstance(value, Mapping) else []
        if extra:
            raise XaibenchError(f"methods[{name!r}] has {', '.join(extra)}: a registered method is "
                                f"{{'name': ..., 'params': {{...}}}}")
        me = _registered("methods", spec, None if isinstance(value, str) else value.get("params"), name)
        skips = {mt.entry.display: why for mt in metrics if (why := not_applicable(me, mt)) is not None}
        return Contender(name, method=spec, entry=me, additive=me.spec.additive, skips=skips,
                         params={mt.entry.display: metric_params(me, mt) for mt in metrics})
    if isinstance(value, Mapping):
        if set(value) - {"maps", "additive"} or "maps" not in value:
            raise XaibenchError(f"methods[{name!r}] must be maps, a registered method's name, a callable, "
                                f"{{'name': ..., 'params': {{...}}}} or {{'maps': ..., 'additive': bool}}")
        maps, additive = value["maps"], bool(value.get("additive", False))
    else:
        maps, additive = value, False
    method = maps if callable(maps) and not hasattr(maps, "shape") else None
    skips = {}
    for mt in metrics:
        if mt.spec.requires_additive and not additive:
            skips[mt.entry.display] = (f"not applicable: metric {mt.entry.display!r} compares sums of the map with "
                                       f"output changes; give {{'maps': ..., 'additive': True}} for attributions "
                                       f"in the model output's units")
        elif "explain" in mt.spec.needs and method is None:
            skips[mt.entry.display] = (f"not applicable: metric {mt.entry.display!r} re-explains the inputs; give "
                                       f"the method (a registered name or a callable), not its maps")
    return Contender(name, maps=None if method is not None else maps, method=method, additive=additive,
                     skips=skips, params={mt.entry.display: mt.params for mt in metrics})


def contenders(methods: Mapping[str, Any], metrics: list[Resolved], baselines: Any, data_modality: str,
               has_masks: bool) -> list[Contender]:
    """The methods of a comparison in the given order, then the calibration baselines it adds.

    ``methods`` maps a display name to maps, a registered method's name, ``{"name", "params"}``, a callable
    ``(model, inputs, targets) -> maps`` or ``{"maps", "additive"}``. ``baselines``: True adds every registered
    method of a role in :data:`BASELINE_ROLES` whose needs the inputs meet (the oracle needs masks) and that
    ``methods`` does not name; False adds none; a list of registered names adds those.
    """
    if not isinstance(methods, Mapping) or not methods:
        raise XaibenchError("methods must be a non-empty dict: display name -> maps, a registered method's name, "
                            "or a callable (model, inputs, targets) -> maps")
    out = [_contender(str(name), value, metrics) for name, value in methods.items()]
    if baselines is True:
        named = {c.entry.spec.name for c in out if c.entry is not None} | {c.name for c in out}
        baselines = [e.spec.name for e in user_inputs.installed().registry("methods")
                     if e.spec.calibration in BASELINE_ROLES and e.spec.name not in named
                     and data_modality in e.spec.modalities and (has_masks or "masks" not in e.spec.needs)]
    elif baselines is False or baselines is None:
        baselines = []
    elif isinstance(baselines, str):
        raise XaibenchError(f"baselines must be True, False or a list of registered names, got {baselines!r}")
    for b in baselines:
        c = _contender(b, b, metrics)
        if c.name in {o.name for o in out}:
            raise XaibenchError(f"baseline {b!r} is already among the methods")
        out.append(c)
    return out


def compared(score: Callable[..., Scores], explain: Callable[..., Any], model: Any, inputs: Any, targets: Any,
             methods: Mapping[str, Any], metrics: Any, *, masks: Any, layer: str | None,
             params: Mapping[str, Mapping[str, Any]] | None, baselines: Any, method_batch_size: int, seed: int,
             ids: Sequence[str] | None, progress: bool, name: str,
             keywords: Mapping[str, Any]) -> Comparison:
    """:func:`xaibench.api.compare` (which documents the arguments), given its ``score`` and ``explain``: each
    contender's maps (given, or explained), scored, then laid out as a suite's section by :func:`build`."""
    import torch

    from xaibench.base import progress as bars
    from xaibench.storage.cache import content_key
    from xaibench.scoring.degenerate import layer_output_spatial
    from xaibench.contract.specs import Samples

    unknown = sorted(set(keywords) - set(SCORE_KEYWORDS))
    if unknown:
        raise XaibenchError(f"xaibench.compare takes no keyword {unknown[0]!r}"
                            f"{did_you_mean(unknown[0], SCORE_KEYWORDS)}; per-method settings go in methods")
    x = user_inputs.checked_inputs(inputs)
    mask_t = user_inputs.checked_annotation(masks, x, "masks")
    mts = metric_entries(metrics, params)
    entries = contenders(methods, mts, baselines, user_inputs.modality(x), mask_t is not None)
    form = {k: keywords[k] for k in ("num_classes", "output", "output_index", "output_key") if k in keywords}
    net, _ = user_inputs.user_model(model, x, form.get("num_classes"), form.get("output", "logits"),
                                    form.get("output_index"), form.get("output_key"),
                                    user_inputs.torch_device(keywords.get("device", "cpu")))
    key = content_key("compare-model", name)  # the model of the comparison's one section (draws follow sample ids)
    common = {"masks": masks, "seed": seed, "ids": ids,
              **{k: v for k, v in keywords.items() if k in ("data_mean", "device", *form)}}
    rest = {k: v for k, v in keywords.items() if k not in common}
    scored, layers = {}, {}
    bar = bars.cells(len(entries) * len(mts), name, progress)
    try:
        for c in entries:
            given = dict(c.entry.entry.params) if c.entry is not None else {}
            cam = layer if c.entry is not None and c.entry.spec.takes_layer else None
            maps = c.maps if c.maps is not None else explain(model, x, targets, method=c.method, layer=cam,
                                                             batch_size=method_batch_size, **common, **given)
            if cam is not None:  # the verdict's CAM-layer check reads the layer's size, as a suite's header has it
                found = choose_method(c.method, given, cam, "xaibench.compare").layer_of(net)
                layers[c.name] = (cam, layer_output_spatial(net, found, int(x.shape[1]), tuple(x.shape[2:]), cam))
            todo = [mt.entry.display for mt in mts if mt.entry.display not in c.skips]
            if todo:
                scored[c.name] = score(model, x, targets, maps, todo, method=c.method, method_params=given or None,
                                       layer=cam, additive=c.additive, params={m: c.params[m] for m in todo},
                                       method_batch_size=method_batch_size, **common, **rest)
            bar.update(len(mts))
    finally:
        bar.close()
    samples = Samples(x=x, y=torch.zeros(len(x), dtype=torch.long), ids=user_inputs.sample_ids(ids, x),
                      masks=mask_t)
    return build(name, seed, "predicted" if targets is None else "given", samples, key, mts, entries, scored, layers)


@dataclasses.dataclass
class _Section:
    """What :func:`xaibench.scoring.calibration.calibration_facts` reads of a runner, for one dataset x model."""

    datasets: list[Resolved]
    models: list[Resolved]
    methods: list[Resolved]
    metrics: list[Resolved]
    samples: Any
    layers: dict[str, tuple[str, tuple[int, ...]]]

    def unavailable(self, ds: Resolved) -> None:
        return None

    def evaluated_samples(self, ds: Resolved) -> Any:
        return self.samples

    def fits(self, ds: Resolved, mo: Resolved) -> bool:
        return True

    def cam_layers(self, ds: Resolved, mo: Resolved) -> dict[str, tuple[str, tuple[int, ...]]]:
        return self.layers


def _header(name: str, seed: int, target: str, section: _Section, metrics: list[Resolved],
            entries: list[Contender]) -> dict[str, Any]:
    from xaibench.scoring.calibration import calibration_facts

    return {"suite": name, "seed": seed, "samples": len(section.samples), "target": target, "meta_evaluation": 0,
            "datasets": {section.datasets[0].entry.display: {"samples": len(section.samples)}},
            "metrics": {mt.entry.display: {"category": s.category, "higher_is_better": s.higher_is_better,
                                           "bounds": list(s.bounds), "citation": s.citation,
                                           "description": s.describe(mt.params) if s.describe else s.description,
                                           "params": mt.params, "undefined": s.undefined}
                        for mt, s in ((mt, mt.spec) for mt in metrics)},
            "methods": {c.name: {"plugin": c.entry.plugin if c.entry else "yours",
                                 "params": c.entry.params if c.entry else {}} for c in entries},
            **calibration_facts(section)}


def build(name: str, seed: int, target: str, samples: Any, model_key: str, metrics: list[Resolved],
          entries: list[Contender], scores: Mapping[str, Scores], layers: Mapping[str, tuple[str, tuple[int, ...]]]
          ) -> Comparison:
    """The :class:`Comparison` of ``scores`` (contender name -> its :class:`~xaibench.api.scores.Scores`), stored as a
    suite's run named ``name`` with ``seed`` and ``target`` (``"predicted"`` or ``"given"``) on ``samples``
    (:class:`~xaibench.contract.specs.Samples`) of the model keyed ``model_key``; ``layers``: each CAM method's layer name and
    its output's spatial shape (the verdict's CAM-layer check)."""
    from xaibench.storage.cache import content_key
    from xaibench.suites.plan import Resolved

    method_stub = [Resolved(Entry(c.name), c.entry.spec if c.entry else _NoRole, "") for c in entries]
    ds, mo = Resolved(Entry("samples"), None, ""), Resolved(Entry("model"), None, "")
    section = _Section([ds], [mo], method_stub, metrics, samples, dict(layers))
    header = _header(name, seed, target, section, metrics, entries)
    store = Store(":memory:")
    rows, cells = [], []
    for c in entries:
        for mt in metrics:
            m = mt.entry.display
            key = content_key("compare", name, model_key, c.name, m)
            rows.append(PlanRow(key, "samples", "model", model_key, c.name, m, mt.spec.category,
                                mt.spec.higher_is_better, c.skips.get(m)))
            if m not in c.skips:
                s = scores[c.name]
                mean, low, high, n = s.summary[m]
                cell = CellResult(key, "samples", "model", c.name, m, "ok", mean, low, high, n, len(s.ids), None,
                                  {"constant_maps": s.constant_maps[m]})
                cells.append((cell, s.ids, s.values[m].tolist()))
    store.put_plan(name, rows, header)
    for cell, ids, values in cells:
        store.put_cell(cell, ids, values)
    return Comparison(name, store, header)


class _NoRole:
    """The spec stand-in of a user's maps or callable: no calibration role, no layer."""

    calibration = ""
    takes_layer = False


class Comparison:
    """Several methods ranked on the same samples: a suite's leaderboard section, from Python.

    ``block`` is the board model (:class:`~xaibench.leaderboard.board.Block`: per-metric tie-aware significance
    ranks, overall ranks, metric agreement); ``verdict`` the calibration verdict; ``trust`` which metrics to
    trust; ``aggregate`` the mean ranks per family with the Friedman test; ``findings`` where a baseline beats
    every method. Views: :meth:`to_pandas` (one row per method x metric), :meth:`ranking` (one row per method),
    :meth:`trust_table`, :meth:`scores` (per sample), and :meth:`markdown`, which Jupyter shows.
    """

    def __init__(self, name: str, store: Store, header: dict[str, Any]) -> None:
        from xaibench.leaderboard import ranking, references, trust, verdict
        from xaibench.leaderboard.board import board

        self.name, self.store, self.header = name, store, header
        [self.block] = board(store, name)
        self.verdict = verdict.section_verdict(self.block, header)
        self.trust = trust.assess(self.block, header)
        self.aggregate = ranking.aggregate([self.block], header)
        self.findings = references.findings(self.block)

    def to_pandas(self) -> Any:
        """A ``pandas.DataFrame`` with one row per method x metric, best method first: ``method``, ``baseline``
        (calibration role, "" for a method), ``metric``, ``mean``, ``ci_low``, ``ci_high`` (95% bootstrap CI, the
        metric's units), ``n`` (defined samples), ``rank`` (tie-aware significance rank; None for baselines and
        cells without a score), ``tied``, ``status`` (ok, skipped) and ``detail`` (why skipped)."""
        pd = user_inputs.pandas_module()
        rows = [(r.method, r.baseline, m, c.mean, c.ci_low, c.ci_high, c.n, r.metric_ranks[m], r.metric_tied[m],
                 c.status, c.detail) for r in self.block.rows for m, c in r.cells.items()]
        return pd.DataFrame(rows, columns=["method", "baseline", "metric", "mean", "ci_low", "ci_high", "n", "rank",
                                           "tied", "status", "detail"])

    def ranking(self) -> Any:
        """A ``pandas.DataFrame`` with one row per method, best first: ``rank`` (overall: by mean per-metric rank;
        None for baselines), ``tied``, ``mean_rank``, ``baseline``, and the aggregate's mean rank over all metrics
        (``aggregate_rank``, ± ``aggregate_std``; NaN for baselines)."""
        pd = user_inputs.pandas_module()
        agg = self.aggregate.families.get("all")
        rows = []
        for r in self.block.rows:
            i = self.aggregate.methods.index(r.method) if agg is not None and r.method in self.aggregate.methods else None
            rows.append((r.method, r.rank, r.tied, r.mean_rank, r.baseline,
                         math.nan if i is None else float(agg[0][i]), math.nan if i is None else float(agg[1][i])))
        return pd.DataFrame(rows, columns=["method", "rank", "tied", "mean_rank", "baseline", "aggregate_rank",
                                           "aggregate_std"])

    def trust_table(self) -> Any:
        """The trust table (:func:`xaibench.leaderboard.trust.as_json`) as a ``pandas.DataFrame``, one row per metric."""
        from xaibench.leaderboard import trust

        return user_inputs.pandas_module().DataFrame(trust.as_json(self.block, self.header))

    def scores(self, method: str, metric: str) -> dict[str, float]:
        """Per-sample scores (sample id -> score, NaN where undefined) of one method on one metric."""
        row = next((r for r in self.block.rows if r.method == method), None)
        if row is None or metric not in row.cells:
            raise XaibenchError(f"the comparison has no cell {method} / {metric}")
        return self.store.scores(row.cells[metric].cell_key)

    @property
    def winners(self) -> list[str]:
        """The methods of overall rank 1 (several when tied)."""
        return self.block.winners

    def _table(self) -> tuple[list[str], list[list[str]]]:
        """The ranked table as the leaderboard shows it: each column's numbers in one format
        (:func:`~xaibench.leaderboard.markdown.column_format`), the rank in parentheses, baselines as "ref"."""
        from xaibench.leaderboard.markdown import column_format

        b = self.block
        head = ["rank", "method"] + [f"{m} {'↑' if b.higher_is_better[m] else '↓'}" for m in b.metrics]
        ok = {m: [c for r in b.rows if (c := r.cells.get(m)) is not None and c.status == "ok" and c.n] for m in b.metrics}
        fmt = {m: column_format(v for c in ok[m] for v in (c.mean, c.ci_low, c.ci_high)) for m in b.metrics}
        body = []
        for r in b.rows:
            cells = []
            for m in b.metrics:
                c, f = r.cells.get(m), fmt[m]
                if c is None or c not in ok[m]:
                    cells.append("n/a" if c is not None and c.status == "skipped" else "–")
                    continue
                rank = "" if r.metric_ranks[m] is None else f" ({r.metric_ranks[m]}{'=' if r.metric_tied[m] else ''})"
                cells.append(f"{f(c.mean)} [{f(c.ci_low)}, {f(c.ci_high)}]{rank}")
            overall = "ref" if r.baseline else "–" if r.rank is None else f"{r.rank}{'=' if r.tied else ''}"
            body.append([overall, f"{r.method} ({r.baseline} baseline)" if r.baseline else r.method] + cells)
        return head, body

    def markdown(self) -> str:
        """The comparison as markdown: verdict, ranked table, findings, trust table, aggregate ranking, rules."""
        from tabulate import tabulate

        from xaibench.leaderboard import ranking, references, trust, verdict
        from xaibench.leaderboard.board import RANK_RULE

        head, body = self._table()
        lines = [f"## {self.name}: {len(self.block.rows)} methods on {self.block.samples} samples", ""]
        lines += verdict.markdown(self.verdict)
        lines += [tabulate(body, headers=head, tablefmt="github", disable_numparse=True), ""]
        lines += references.markdown(self.block)
        skipped = sorted({c.detail for r in self.block.rows for c in r.cells.values() if c.status == "skipped"})
        lines += [f"- {why}" for why in skipped] + ([""] if skipped else [])
        lines += trust.markdown(self.block, self.header)
        lines += [line for line in ranking.markdown(self.aggregate, "Aggregate ranking", "", self.name)
                  if not line.startswith("![")]  # no diagram file beside a notebook
        lines += [RANK_RULE, ""]
        return "\n".join(lines).rstrip() + "\n"

    def _repr_markdown_(self) -> str:
        """:meth:`markdown`, which Jupyter renders (headings, the verdict, tables)."""
        return self.markdown()

    def __repr__(self) -> str:
        ranks = ", ".join(f"{r.rank}. {r.method}" for r in self.block.rows if r.rank is not None)
        return f"Comparison({len(self.block.rows)} methods, {len(self.block.metrics)} metrics: {ranks})"
