"""The plan of a run: the suite's names resolved to specs, its cells, their keys and skip rules.

A *cell* is one dataset x model x method x metric. Planning is cheap and happens
before anything is trained: the rules here say which cells cannot run (and why),
and the keys say which results, models and maps a cell shares with earlier runs.
Everything here is pure: no data is loaded and no model is built in this module.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Mapping, Sequence

from xaibench.suites.byom import factory_spec, with_layer
from xaibench.storage.cache import content_key
from xaibench.base.errors import SuiteError, UnknownNameError
from xaibench.contract.plugins import Harness
from xaibench.contract.specs import DataBundle, MethodSpec, MetricSpec, ModelSpec, Pairing
from xaibench.storage.store import PlanRow
from xaibench.suites.suite import Entry, Suite


@dataclass(frozen=True)
class Resolved:
    """A suite entry with the spec it names and the plugin that registered the spec."""

    entry: Entry
    spec: Any
    plugin: str
    #: Models with ``fine_tune_from``: ``(source dataset, this model as trained there)``, trained first
    #: (:mod:`xaibench.models.transfer`); None otherwise.
    source: "tuple[Resolved, Resolved] | None" = None

    @property
    def params(self) -> dict[str, Any]:
        """The spec's defaults overridden by the suite's parameters for this entry."""
        return {**dict(getattr(self.spec, "defaults", {})), **dict(self.entry.params)}


@dataclass(frozen=True)
class Cell:
    """One dataset x model x method x metric, with its plan row (key, names, skip reason)."""

    row: PlanRow
    dataset: Resolved
    model: Resolved
    method: Resolved
    metric: Resolved

    @property
    def metric_params(self) -> dict[str, Any]:
        """The parameters the metric is scored with: its own, with paired ones taken from the method."""
        return metric_params(self.method, self.metric)


def resolve(harness: Harness, kind: str, entries: Sequence[Entry], suite: Suite) -> list[Resolved]:
    """The specs ``entries`` name in the ``kind`` registry; an unknown name is a :class:`SuiteError` at its line."""
    registry = harness.registry(kind)
    out = []
    for e in entries:
        if kind == "models" and e.factory is not None:  # a model without a plugin (xaibench.suites.byom)
            out.append(_with_source(harness, Resolved(e, factory_spec(e, suite.at(e.line)), "suite"), suite))
            continue
        try:
            entry = registry.entry(e.name)
        except UnknownNameError as exc:
            broken = "".join(f"; plugin {n!r} failed to load: {why.splitlines()[0]}" for n, why in harness.broken.items())
            raise SuiteError(f"{suite.at(e.line)}: {exc}{broken}") from None
        if kind == "models":
            out.append(_with_source(harness, Resolved(e, with_layer(entry.spec, e), entry.plugin), suite))
        else:
            out.append(Resolved(e, entry.spec, entry.plugin))
    return out


def _with_source(harness: Harness, mo: Resolved, suite: Suite) -> Resolved:
    """Model ``mo`` with its ``fine_tune_from`` source resolved: the dataset, and the same model trained there."""
    src = mo.entry.fine_tune_from
    if src is None:
        return mo
    [ds] = resolve(harness, "datasets", [replace(src, label=f"{src.name} (source of {mo.entry.display})",
                                                 train={})], suite)
    trained = replace(mo.entry, label=f"{mo.entry.display} (source)", train=src.train, fine_tune_from=None)
    return replace(mo, source=(ds, replace(mo, entry=trained)))


def method_skip(ds: Resolved, bundle: DataBundle, mo: Resolved, me: Resolved) -> str | None:
    """Why method ``me`` cannot explain model ``mo`` on dataset ``ds`` (modality, masks, model capability), else None."""
    xspec: MethodSpec = me.spec
    mspec: ModelSpec = mo.spec
    if bundle.modality not in xspec.modalities:
        return f"method {me.entry.display!r} does not support {bundle.modality} data"
    if xspec.requires_mask and bundle.test.masks is None:
        return f"method {me.entry.display!r} needs masks and {ds.spec.name!r} has none"
    if not xspec.requires_model <= mspec.provides:
        return (f"method {me.entry.display!r} needs a model with "
                f"{', '.join(sorted(xspec.requires_model - mspec.provides))}: {mo.entry.display!r} has none")
    return None


def metric_skip(ds: Resolved, bundle: DataBundle, mt: Resolved) -> str | None:
    """Why metric ``mt`` cannot score dataset ``ds`` (modality, masks, region maps), else None."""
    tspec: MetricSpec = mt.spec
    if bundle.modality not in tspec.modalities:
        return f"metric {mt.entry.display!r} does not support {bundle.modality} data"
    if tspec.requires_mask and bundle.test.masks is None:
        return f"dataset {ds.entry.display!r} has no masks: {tspec.category} metric {mt.entry.display!r} skipped"
    if tspec.requires_mask and bundle.ground_truth == "boxes" and not tspec.box_ground_truth:
        return (f"dataset {ds.entry.display!r} has bounding boxes, not masks: metric {mt.entry.display!r} needs "
                f"masks (only metrics defined on a box region score boxes)")
    if tspec.requires_region and bundle.test.regions is None:
        return f"dataset {ds.entry.display!r} has no region maps: metric {mt.entry.display!r} skipped"
    return None


def not_applicable(me: Resolved, mt: Resolved) -> str | None:
    """Why metric ``mt`` means nothing for method ``me``'s maps (it presumes additive attributions, or a paired
    parameter disagrees: :func:`pairing_conflict`), else None."""
    if mt.spec.requires_additive and not me.spec.additive:
        return (f"not applicable: metric {mt.entry.display!r} compares sums of the map with output changes, and "
                f"method {me.entry.display!r} does not produce additive attributions (MethodSpec.additive)")
    return pairing_conflict(me, mt)


def _paired(me: Resolved, pair: Pairing) -> tuple[str, Any] | None:
    """``(name, value)`` of the method parameter of ``me`` that ``pair`` takes its value from (the first it has),
    ``(pair.param, pair.implied)`` for a method without any when the pairing implies a value, else None."""
    source = next((k for k in pair.method_params if k in me.params), None)
    if source is not None:
        return source, me.params[source]
    return None if pair.implied is None else (pair.param, pair.implied)


def metric_params(me: Resolved, mt: Resolved) -> dict[str, Any]:
    """Metric ``mt``'s parameters for method ``me``'s cells: its defaults and the suite's, then each paired parameter
    (``MetricSpec.pairs``) the suite leaves unset takes the method's effective value (IG ``baseline: mean`` gives
    completeness-error ``fill: mean``)."""
    params = mt.params
    for pair in mt.spec.pairs:
        source = _paired(me, pair)
        if source is not None and pair.param not in mt.entry.params:
            params[pair.param] = source[1]
    return params


def pairing_conflict(me: Resolved, mt: Resolved) -> str | None:
    """Why ``mt`` cannot score ``me`` on a paired parameter (``MetricSpec.pairs``), else None: the suite sets the
    metric's value to another than the method's, or the method's value is one the metric cannot take."""
    for pair in mt.spec.pairs:
        source = _paired(me, pair)
        if source is None:
            continue
        name, theirs = source
        mine = mt.entry.params.get(pair.param, theirs)
        if mine != theirs:
            return (f"not applicable: metric {mt.entry.display!r} is defined against {pair.why}, and the suite sets "
                    f"its {pair.param}: {mine} where method {me.entry.display!r} uses {name}: {theirs} (leave "
                    f"{pair.param} unset: the metric takes the method's)")
        if theirs not in pair.values:
            return (f"not applicable: metric {mt.entry.display!r} is defined against {pair.why}, and method "
                    f"{me.entry.display!r} uses {name}: {theirs}, which the metric's {pair.param} cannot take "
                    f"({', '.join(map(str, pair.values))})")
    return None


#: What a cell's random draws and bootstrap derive from (:func:`xaibench.running.execution.metric_seeds`): part of every
#: cell key, so a store written under an earlier scheme (draws by batch position and model, the bootstrap over the
#: stored order) is recomputed, never mixed with cells scored under this one.
DRAWS = "run seed + sample id; bootstrap over samples sorted by id"


def cell_key(model_key: str, me: Resolved, mt: Resolved, sample_ids: Sequence[str], suite: Suite,
             numerics: Mapping[str, str]) -> str:
    """The content key of a cell: its model, method, metric (with the parameters it is scored with), samples, target,
    seed, numerics and the scheme of its random draws (:data:`DRAWS`)."""
    return content_key("cell", model_key, me.spec.name, me.spec.version, me.params, mt.spec.name, mt.spec.version,
                       metric_params(me, mt), tuple(sample_ids), suite.target, suite.seed, dict(numerics), DRAWS)


def unavailable_key(ds: Resolved, mo: Resolved, me: Resolved, mt: Resolved) -> str:
    """The key of a cell of an optional dataset whose data could not be loaded."""
    return content_key("unavailable", ds.entry.identity(), mo.entry.identity(), me.entry.identity(),
                       mt.entry.identity())


def method_key(me: Resolved, suite: Suite, numerics: Mapping[str, str]) -> str:
    """The content key of a method's maps for one model (with :class:`~xaibench.storage.cache.SaliencyCache`)."""
    return content_key("method", me.spec.name, me.spec.version, me.params, suite.target, suite.seed, dict(numerics))
