"""Execution of one group of cells: explain (once), isolate, score. The one work unit of every executor.

A *group* is one dataset x model x method with the metric cells that share its
maps. :meth:`Execution.execute_group` computes the method's maps (from the
saliency cache where possible) and then each metric cell, each plugin call under
the per-cell time limit with the model restored afterwards; a plugin failure fails
its own cells only. The local loop, the process pool and Ray all run it.
"""
from __future__ import annotations

import copy
import dataclasses
import hashlib
import platform
import time
import traceback
from dataclasses import dataclass
from typing import Any, Callable, Hashable, Mapping, NamedTuple, TypeVar

import numpy as np
import torch
from torch import nn

from xaibench.base.version import __version__
from xaibench.scoring.degenerate import constant_maps, mask_constant
from xaibench.data.bundles import Bundles
from xaibench.storage.cache import SaliencyCache, content_key
from xaibench.scoring.engine import Engine
from xaibench.base.errors import CellError, SuiteError, XaibenchError, did_you_mean
from xaibench.contract.outputs import dense
from xaibench.scoring.segmentation import (RegionScore, model_target, reduced, region_score, region_weights,
                                   suite_target, target_regions)
from xaibench.running.explaining import copies, explain_samples, real_tensor
from xaibench.running.isolation import ModelGuard, time_limit
from xaibench.models.provision import Models
from xaibench.suites.options import Settings
from xaibench.suites.plan import Cell, Resolved, method_key
from xaibench.contract.plugins import Harness
from xaibench.contract.specs import DataBundle, MetricSpec, Samples
from xaibench.contract.metric_inputs import MetricBatch, MetricContext, metric_arguments
from xaibench.scoring.stats import seed_from, summarize
from xaibench.storage.store import CellResult
from xaibench.scoring.throughput import engine_batch_size

_T = TypeVar("_T")


@dataclass(frozen=True)
class GroupContext:
    """What every method of one dataset x model shares: the model, the unperturbed pass, targets, the mean."""

    dataset: Resolved
    model_entry: Resolved
    model_key: str
    bundle: DataBundle
    model: nn.Module
    engine: Engine
    samples: Samples
    #: ``(N, K)`` logits of the unperturbed samples.
    base_logits: torch.Tensor
    #: ``(N,)`` the explained class of each sample (predicted, or the label if the suite says so).
    target: torch.Tensor
    #: ``(C,)`` per-channel mean of the training inputs.
    data_mean: torch.Tensor
    #: A segmentation model's target regions ``(N, *spatial)`` bool, fixed on the unperturbed samples
    #: (:mod:`xaibench.scoring.segmentation`; ``base_logits`` are then the ``(N, K)`` region scores); None for a classifier
    #: and for one sample of a segmenter explained and scored alone (:meth:`Execution.sample_group`).
    regions: torch.Tensor | None = None


class Outcome(NamedTuple):
    """One finished cell: its result, per-sample scores (None when failed), and maps computed for it."""

    cell_key: str
    result: CellResult
    values: list[float] | None
    maps_computed: int


class Execution:
    """Explains and scores groups of cells of one run (in the driver or in a worker)."""

    def __init__(self, harness: Harness, settings: Settings, bundles: Bundles, models: Models) -> None:
        self.harness = harness
        self.settings = settings
        self.bundles = bundles
        self.models = models

    def group_context(self, ds: Resolved, mo: Resolved, model: nn.Module,
                      samples: Samples | None = None) -> GroupContext:
        """The shared state of ``model`` (trained ``mo`` on ``ds``) for ``samples`` (default: the evaluated ones)."""
        settings = self.settings
        bundle = self.bundles.bundle(ds)
        samples = self.bundles.evaluated(ds) if samples is None else samples
        engine_batch = settings.options.batch_size or engine_batch_size(
            model, samples.x[:1], settings.device, settings.options.home, settings.options.autocast)
        engine = Engine(model, settings.device, engine_batch, autocast=settings.options.autocast)
        base_logits = engine.logits(samples.x)
        regions = None
        rt = model_target(settings.suite.target, dense(model), mo.entry.display)
        if rt is not None:  # a segmenter: the region scores of each sample's region (xaibench.scoring.segmentation)
            regions = target_regions(rt, base_logits, samples.masks, allow_empty=True)
            base_logits = reduced(base_logits, region_weights(regions, rt.reduce))
            target = torch.full((len(samples),), rt.cls, device=settings.device)
        else:
            target = base_logits.argmax(1) if settings.suite.target == "predicted" else samples.y.to(settings.device)
        dims = [0] + list(range(2, bundle.train.x.dim()))
        # summed in float64: a float32 sum's rounding depends on the tensor's memory layout, which differs between
        # a freshly generated dataset and the same one loaded from the cache (fills by the mean differed by 1e-9)
        data_mean = bundle.train.x.double().mean(dim=dims).float().to(settings.device)
        return GroupContext(ds, mo, self.models.key(ds, mo), bundle, model, engine, samples, base_logits, target,
                            data_mean, regions)

    def sample_group(self, g: GroupContext, i: int) -> GroupContext:
        """Sample ``i`` of segmenter group ``g`` alone, through its :class:`~xaibench.scoring.segmentation.RegionScore`
        (model and engine): what its maps and scores are computed on, as for a classifier's samples."""
        scorer = RegionScore(g.model, g.regions[i], suite_target(self.settings.suite.target).reduce, int(g.target[i]))
        engine = Engine(scorer, g.engine.device, g.engine.batch_size, autocast=self.settings.options.autocast)
        return dataclasses.replace(g, model=scorer, engine=engine, samples=g.samples.subset([i]),
                                   base_logits=g.base_logits[i:i + 1], target=g.target[i:i + 1], regions=None)

    def execute_group(self, g: GroupContext, cells: list[Cell]) -> list[Outcome]:
        """One method's maps (computed once, cached) and then each of its metric ``cells``, in order."""
        me = cells[0].method
        start = time.perf_counter()
        maps, error, computed = self.maps(g, me)
        maps_seconds = time.perf_counter() - start  # booked to the group's first cell, as `computed` is
        memo: dict[Hashable, Any] = {}  # what this method's metric cells share (MetricContext.shared)
        out = []
        for i, c in enumerate(cells):
            if maps is not None:
                result, values = self.score(g, c, maps, memo, maps_seconds if i == 0 else 0.0)
            else:
                result, values = self.failed(c, error or ""), None
            out.append(Outcome(c.row.cell_key, result, values, computed if i == 0 else 0))
        return out

    def maps(self, g: GroupContext, me: Resolved) -> tuple[np.ndarray | None, str | None, int]:
        """``(maps, None, computed)`` of ``g.samples`` from the saliency cache (missing ones explained now),
        or ``(None, failure, 0)`` when the method fails."""
        cache = SaliencyCache(self.settings.options.home, g.model_key, method_key(me, self.settings.suite, self.settings.numerics))
        missing = cache.missing(g.samples.ids)
        if missing:
            subset = dataclasses.replace(g, samples=g.samples.subset(missing), target=g.target[missing],
                                         base_logits=g.base_logits[missing],
                                         regions=None if g.regions is None else g.regions[missing])
            try:
                maps = self.isolated(f"method {me.entry.display!r}", g.model, lambda: self.explain(subset, me))
            except (XaibenchError, KeyboardInterrupt):
                raise
            except (Exception, SystemExit) as exc:  # a plugin calling sys.exit() fails its cells, not the run
                return None, describe_failure(exc), 0
            cache.put([g.samples.ids[i] for i in missing], maps)
            if len(missing) == len(g.samples):  # every map computed now: no second copy read back
                return maps, None, len(missing)
        return cache.get(g.samples.ids), None, len(missing)

    def explain(self, g: GroupContext, me: Resolved, model: nn.Module | None = None,
                group: int | None = None) -> np.ndarray:
        """``me``'s maps of ``g.samples`` for ``g.target`` (on ``model``, default ``g.model``), in batches,
        validated and upsampled to the input size: ``(N, *spatial)`` float32. ``group``: as
        :func:`explain_samples`'s (re-explained copies of that many samples)."""
        if g.regions is not None:  # a segmenter: each sample through its region score; an empty region's map is 0
            return np.concatenate([self.explain(self.sample_group(g, i), me, model, group) if g.regions[i].any()
                                   else np.zeros((1, *g.samples.x.shape[2:]), np.float32)
                                   for i in range(len(g.samples))])
        model = g.model if model is None else model
        params = me.params
        layer = target_layer(model, g.model_entry, params) if me.spec.takes_layer else None  # none to name
        return explain_samples(me.spec, model, g.samples, g.target, params, layer=layer,
                               batch_size=self.settings.batch_size, seed=self.settings.suite.seed,
                               data_mean=g.data_mean, device=self.settings.device, engine_batch=g.engine.batch_size,
                               group=group)

    def isolated(self, what: str, model: nn.Module, call: Callable[[], _T]) -> _T:
        """``call()`` under the per-cell time limit (:func:`isolated`)."""
        return isolated(what, model, call, self.settings.cell_timeout)

    def metric_context(self, g: GroupContext, c: Cell, memo: dict[Hashable, Any]) -> MetricContext:
        """What cell ``c`` offers its metric: the engine, the unperturbed pass, re-explaining, variants, the memo."""
        device = self.settings.device
        spec: MetricSpec = c.metric.spec

        def explain(model: nn.Module | None = None, inputs: torch.Tensor | None = None,
                    targets: torch.Tensor | None = None) -> torch.Tensor:
            """The cell's method on the cell's samples, for another model, other inputs (``k`` copies of the
            samples, stacked) and/or other classes (:data:`~xaibench.contract.metric_inputs.MetricContext.explain`)."""
            samples, target = copies(g.samples, g.target, inputs, targets)
            h = dataclasses.replace(g, samples=samples, target=target)
            return torch.from_numpy(self.explain(h, c.method, model, group=len(g.samples))).to(device)

        def variant(name: str) -> nn.Module:
            """The cell's model trained by the metric's declared variant ``name``."""
            for v in spec.variants:
                if v.name == name:
                    return self.models.variant(g.dataset, g.model_entry, v)
            raise CellError(f"metric {c.metric.entry.display!r} asked for model variant {name!r}, which it does "
                            f"not declare (MetricSpec.variants: {', '.join(v.name for v in spec.variants) or 'none'})")

        return MetricContext(
            engine=g.engine, base_logits=g.base_logits, data_mean=g.data_mean, dataset=g.bundle,
            model=lambda: copy.deepcopy(g.model), explain=explain, variant=variant, shared=memoised(memo),
            segmentation=region_score(g.model),
            **metric_seeds(self.settings.suite.seed, spec, c.metric.params, g.samples.ids))

    def batch(self, g: GroupContext, maps: np.ndarray) -> MetricBatch:
        """The per-sample arguments of every metric of ``g`` on ``maps``, on the device."""
        device, samples = self.settings.device, g.samples
        return MetricBatch(
            inputs=samples.x.to(device), targets=g.target, maps=torch.from_numpy(maps).to(device),
            masks=None if samples.masks is None else samples.masks.to(device),
            regions=None if samples.regions is None else samples.regions.to(device))

    def curves(self, g: GroupContext, c: Cell, maps: np.ndarray) -> np.ndarray:
        """Cell ``c``'s metric curves (``MetricSpec.curve``) of ``maps``, ``(N, S)`` float64: its score's
        arguments, parameters and random draws, so their areas are the cell's per-sample scores; the row of
        a constant map is NaN, as its score is (:func:`~xaibench.scoring.degenerate.mask_constant`)."""
        curves = self.raw(g, c, maps, {}, c.metric.spec.curve)
        curves[constant_maps(maps)] = np.nan
        return curves

    def score(self, g: GroupContext, c: Cell, maps: np.ndarray, memo: dict[Hashable, Any],
              maps_seconds: float = 0.0) -> tuple[CellResult, list[float] | None]:
        """Cell ``c``'s metric on ``maps``: its result and per-sample scores, or a failed result and None.

        Its provenance books the time apart: ``seconds`` scoring, ``training_seconds`` models the metric
        had trained (a label-randomized twin), ``maps_seconds`` the method's maps (given)."""
        spec: MetricSpec = c.metric.spec
        params = c.metric_params
        samples = g.samples
        start, trained_before = time.perf_counter(), self.models.training_seconds
        try:
            values = self.isolated(f"metric {c.metric.entry.display!r}", g.model,
                                   lambda: self.raw(g, c, maps, memo, spec.score))
            values, constant = checked_scores(spec, values, maps)
        except (XaibenchError, KeyboardInterrupt):
            raise
        except (Exception, SystemExit) as exc:
            return self.failed(c, describe_failure(exc)), None
        # the bootstrap's resamples are common random numbers too: identical scores, identical intervals
        mean, low, high, n = summarize(values, bootstrap_seed(self.settings.suite.seed, spec), samples.ids)
        training = self.models.training_seconds - trained_before
        prov = {**self.provenance(c, params, time.perf_counter() - start - training), "constant_maps": constant,
                "training_seconds": round(training, 3), "maps_seconds": round(maps_seconds, 3)}
        return CellResult(c.row.cell_key, c.row.dataset, c.row.model, c.row.method, c.row.metric, "ok",
                          mean, low, high, n, len(samples), None, prov), values.tolist()

    def raw(self, g: GroupContext, c: Cell, maps: np.ndarray, memo: dict[Hashable, Any],
            function: Callable[..., Any]) -> np.ndarray:
        """``function`` (cell ``c``'s metric score or curve) on ``maps`` with its arguments and parameters, as
        float64 (``(N,)`` scores, ``(N, S)`` curves); a segmenter's samples one at a time (:meth:`sample_group`,
        each with its own memo), stacked."""
        if g.regions is None:
            if "segmentation" in c.metric.spec.needs and region_score(g.model) is None:
                raise CellError(f"not applicable: metric {c.metric.entry.display!r} needs a segmentation model; "
                                f"model {g.model_entry.entry.display!r} returns (N, K) class scores")
            arguments = metric_arguments(c.metric.spec.needs, self.batch(g, maps), self.metric_context(g, c, memo))
            return real_tensor(function(**arguments, **c.metric_params), "metric").detach().cpu().double().numpy()
        # an empty region's map is 0 (explain): constant, so its scores are NaN (checked_scores)
        return np.concatenate([self.raw(self.sample_group(g, i), c, maps[i:i + 1], memo.setdefault(("sample", i), {}),
                                        function) for i in range(len(g.samples))])

    def failed(self, c: Cell, error: str) -> CellResult:
        """A failed result for cell ``c`` with ``error`` (no scores; every evaluated sample counted as missing)."""
        n_total = len(self.bundles.evaluated(c.dataset))
        return CellResult(c.row.cell_key, c.row.dataset, c.row.model, c.row.method, c.row.metric, "failed",
                          None, None, None, 0, n_total, error, self.provenance(c, c.metric_params, 0.0))

    def provenance(self, c: Cell, metric_params: Mapping[str, Any], seconds: float) -> dict[str, Any]:
        """Everything that determines the cell's scores, so it can be reproduced from the store alone."""
        settings, suite = self.settings, self.settings.suite
        plugins = self.harness.plugins
        ids = self.bundles.evaluated(c.dataset).ids
        return {
            "xaibench": __version__, "torch": torch.__version__, "numpy": np.__version__,
            "python": platform.python_version(), "seed": suite.seed,
            "device": settings.device.type, "target": suite.target, "suite": suite.name,
            "batch_size": settings.batch_size,
            "dataset": {"plugin": c.dataset.spec.name, "version": c.dataset.spec.version,
                        "params": c.dataset.params, "image_size": suite.image_size},
            "dataset_fingerprint": self.bundles.fingerprint(c.dataset),
            "samples": {"split": "test", "first": len(ids),
                        "ids_sha256": hashlib.sha256("\0".join(ids).encode()).hexdigest()},
            "model": {"plugin": c.model.spec.name, "version": c.model.spec.version, "params": dict(c.model.entry.params),
                      "train": dict(c.model.entry.train), "checkpoint": c.model.entry.checkpoint},
            "model_key": c.row.model_key,
            "method": {"plugin": c.method.spec.name, "version": c.method.spec.version, "params": c.method.params},
            "metric": {"plugin": c.metric.spec.name, "version": c.metric.spec.version, "params": dict(metric_params)},
            "plugin_versions": {k: f"{plugins[k].distribution} {plugins[k].version}"
                                for k in {c.dataset.plugin, c.model.plugin, c.method.plugin, c.metric.plugin}
                                if k in plugins},
            "seconds": round(seconds, 3),
        }


def isolated(what: str, model: nn.Module, call: Callable[[], _T], timeout: float | None = None) -> _T:
    """``call()`` under the time limit ``timeout`` (seconds, None: none); the model is restored afterwards
    whatever happened. A call that returns but changed the model fails with :class:`CellError` naming the change.
    """
    guard = ModelGuard(model)
    try:
        with time_limit(timeout, what):
            result = call()
    finally:
        changes = guard.restore(model)
    if changes:
        raise CellError(f"{what} changed the model's " + "; ".join(changes))
    return result


def metric_seeds(seed: int, spec: MetricSpec, params: Mapping[str, Any], ids: tuple[str, ...]) -> dict[str, Any]:
    """The random draws of metric ``spec`` with ``params`` on samples ``ids``: :class:`MetricContext`'s
    ``sample_seeds`` and ``model_seed``, from the run's ``seed`` and the sample ids only. A sample's seed is
    ``seed_from(draws, id)`` whatever its position or batch-mates, so permuting the samples permutes the seeds;
    common random numbers: they do not depend on the method (nor on the model), so every method faces the same
    draws, and ``xaibench.score`` with a suite's seed and ids reproduces the suite's draws."""
    draws = content_key("metric-draws", seed, spec.name, spec.version, params)
    return {"sample_seeds": tuple(seed_from(draws, sid) for sid in ids),
            "model_seed": seed_from(seed, "randomized-models")}


def bootstrap_seed(seed: int, spec: MetricSpec) -> int:
    """The seed of the bootstrap CI of ``spec``'s mean (:func:`~xaibench.scoring.stats.summarize`, which resamples the
    samples in the order of their ids): the same resamples for every method and model (identical scores,
    identical intervals), from the run's seed and the metric only."""
    return seed_from(seed, spec.name, "bootstrap")


def memoised(memo: dict[Hashable, Any]) -> Callable[[Hashable, Callable[[], Any]], Any]:
    """A :data:`~xaibench.contract.metric_inputs.Shared` over ``memo``: ``compute()`` once per key."""
    return lambda key, compute: memo[key] if key in memo else memo.setdefault(key, compute())


def checked_scores(spec: MetricSpec, values: Any, maps: np.ndarray) -> tuple[np.ndarray, int]:
    """A metric's output as ``(N,)`` float64 scores with NaN where a map is constant (no information), and
    the number of such maps. Raises :class:`CellError` for a wrong shape, infinite scores, or scores beyond
    ``spec.bounds``."""
    values = real_tensor(values, "metric").detach().cpu().double().numpy()
    n = len(maps)
    if values.shape != (n,):
        raise CellError(f"metric returned shape {values.shape}; expected ({n},): one score per sample")
    if np.isinf(values).any():
        raise CellError("metric returned infinite scores")
    outside = _outside(values, spec.bounds)
    if outside:
        raise CellError(f"metric returned scores outside its declared bounds {spec.bounds}: {outside}")
    return mask_constant(values, maps)  # a constant map carries no information: NaN, counted


#: Relative tolerance of the bounds check: float32 rounding of a score at its bound passes, a real excess fails.
BOUNDS_RTOL = 1e-6


def _outside(values: np.ndarray, bounds: tuple[float | None, float | None]) -> str:
    """What in ``values`` lies beyond ``bounds`` (by more than float32 rounding, 1e-6 of the bound's scale), or "".

    Metrics compute in float32 (the model's dtype): ``100 * (p - p') / p`` with ``p' = 0`` may come out one ulp
    (7.6e-6) above 100, which is rounding, not a wrong score.
    """
    low, high = bounds
    tol = BOUNDS_RTOL
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return ""
    out = []
    if low is not None and finite.min() < low - tol * max(1.0, abs(low)):
        out.append(f"min {finite.min():.6g}")
    if high is not None and finite.max() > high + tol * max(1.0, abs(high)):
        out.append(f"max {finite.max():.6g}")
    return ", ".join(out)


def describe_failure(exc: BaseException) -> str:
    """First line: the error; then the innermost frames, enough to find the plugin bug."""
    frames = traceback.format_exception(type(exc), exc, exc.__traceback__, limit=-4)
    return f"{type(exc).__name__}: {exc}\n" + "".join(frames[-6:])


def target_layer(model: nn.Module, mo: Resolved, params: dict[str, Any]) -> nn.Module | None:
    """The layer a method explains: ``params["layer"]`` (popped) by dotted name, else the model spec's default.

    Raises :class:`SuiteError` naming close layer names when the model has no such layer.
    """
    name = params.pop("layer", None)
    if name is None:
        return mo.spec.target_layer(model)
    try:
        return model.get_submodule(name)
    except AttributeError:
        names = [n for n, _ in model.named_modules() if n]
        raise SuiteError(f"layer {name!r} is not in model {mo.entry.display!r}{did_you_mean(name, names)}") from None
