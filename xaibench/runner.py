"""Plans the cells of a suite and runs them: models, saliency maps, scores, store.

A *cell* is one dataset x model x method x metric. The runner owns everything a
plugin should not have to think about: resolving names, refusing impossible cells
before any training starts, seeding, batching, training and caching models,
computing each saliency map once per model x method x sample, isolating a failing
plugin to its own cells, aggregating, and writing each finished cell atomically.
"""
from __future__ import annotations

import copy
import hashlib
import platform
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

import xaibench
from xaibench.cache import SaliencyCache, cache_home, content_key, file_sha256, load_checkpoint, save_checkpoint
from xaibench.engine import Engine
from xaibench.errors import CellError, PlanError, SuiteError, UnknownNameError, XaibenchError, did_you_mean
from xaibench.maps import upsample
from xaibench.plugins import Harness
from xaibench.specs import (
    DataBundle,
    DatasetRequest,
    DatasetSpec,
    MethodContext,
    MethodSpec,
    MetricContext,
    MetricSpec,
    ModelSpec,
    Samples,
)
from xaibench.stats import seed_from, summarize
from xaibench.store import CellResult, PlanRow, Store
from xaibench.suite import Entry, Suite
from xaibench.training import evaluate, recipe_with, train


@dataclass(frozen=True)
class RunOptions:
    data_root: str | None = None
    device: str = "cpu"
    limit: int | None = None
    batch_size: int | None = None
    home: Path = field(default_factory=cache_home)
    progress: bool = True
    fail_fast: bool = False


@dataclass
class RunSummary:
    computed: int = 0
    reused: int = 0
    skipped: int = 0
    failed: list[str] = field(default_factory=list)
    models_trained: int = 0
    maps_computed: int = 0
    skip_reasons: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Resolved:
    entry: Entry
    spec: Any
    plugin: str


@dataclass
class _Cell:
    row: PlanRow
    dataset: _Resolved
    model: _Resolved
    method: _Resolved
    metric: _Resolved


def _resolve(harness: Harness, kind: str, entries: tuple[Entry, ...], suite: Suite) -> list[_Resolved]:
    registry = harness.registry(kind)
    out = []
    for e in entries:
        try:
            entry = registry.entry(e.name)
        except UnknownNameError as exc:
            broken = "".join(f"; plugin {n!r} failed to load: {why.splitlines()[0]}" for n, why in harness.broken.items())
            raise SuiteError(f"{suite.path}:{e.line}: {exc}{broken}") from None
        out.append(_Resolved(e, entry.spec, entry.plugin))
    return out


def _merged(spec: Any, entry: Entry) -> dict[str, Any]:
    return {**dict(getattr(spec, "defaults", {})), **dict(entry.params)}


def fingerprint(bundle: DataBundle) -> str:
    """sha256 over every tensor and id of the bundle: the dataset's identity in cache keys."""
    h = hashlib.sha256()
    for split in (bundle.train, bundle.val, bundle.test):
        for t in (split.x, split.y, split.masks, split.regions):
            if t is not None:
                h.update(t.contiguous().numpy().tobytes())
        h.update("\0".join(split.ids).encode())
    h.update("\0".join(bundle.class_names).encode())
    return h.hexdigest()[:24]


class Runner:
    """Runs one suite against one store; ``plan()`` is cheap, ``run()`` does the work."""

    def __init__(self, harness: Harness, suite: Suite, store: Store, options: RunOptions = RunOptions()) -> None:
        self.harness = harness
        self.suite = suite
        self.store = store
        self.options = options
        self.device = torch.device(options.device)
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise XaibenchError("--device cuda was asked for, but torch sees no CUDA device here")
        self.batch_size = options.batch_size or suite.batch_size
        self.datasets = _resolve(harness, "datasets", suite.datasets, suite)
        self.models = _resolve(harness, "models", suite.models, suite)
        self.methods = _resolve(harness, "methods", suite.methods, suite)
        self.metrics = _resolve(harness, "metrics", suite.metrics, suite)
        self._bundles: dict[str, DataBundle] = {}
        self._fingerprints: dict[str, str] = {}

    # -- planning -----------------------------------------------------------------------------
    def bundle(self, ds: _Resolved) -> DataBundle:
        name = ds.entry.display
        if name not in self._bundles:
            spec: DatasetSpec = ds.spec
            request = DatasetRequest(params=_merged(spec, ds.entry), seed=self.suite.seed,
                                     image_size=self.suite.image_size, data_root=self.options.data_root)
            try:
                bundle = spec.load(request)
            except XaibenchError as exc:
                raise XaibenchError(f"dataset {name!r}: {exc}") from None
            except TypeError as exc:
                raise SuiteError(f"{self.suite.path}:{ds.entry.line}: dataset {name!r}: {exc}") from None
            self._bundles[name] = bundle
            self._fingerprints[name] = fingerprint(bundle)
        return self._bundles[name]

    def _samples(self, bundle: DataBundle) -> Samples:
        n = min(self.suite.samples, self.options.limit or self.suite.samples, len(bundle.test))
        return bundle.test.subset(slice(0, n))

    def model_key(self, ds: _Resolved, mo: _Resolved) -> str:
        spec: ModelSpec = mo.spec
        bundle = self.bundle(ds)
        recipe = recipe_with(spec.recipe, mo.entry.train)
        checkpoint = file_sha256(Path(mo.entry.checkpoint)) if mo.entry.checkpoint and Path(mo.entry.checkpoint).exists() else mo.entry.checkpoint
        return content_key("model", spec.name, spec.version, _merged(spec, mo.entry), recipe, checkpoint,
                           self._fingerprints[ds.entry.display], self.suite.seed)

    def plan(self) -> list[_Cell]:
        """Every cell of the suite, with a skip reason for those that cannot run.

        Raises :class:`PlanError` for combinations that make the whole suite wrong
        (a 2D model on a 1D dataset), before any model is trained.
        """
        cells: list[_Cell] = []
        for ds in self.datasets:
            bundle = self.bundle(ds)
            samples = self._samples(bundle)
            dspec: DatasetSpec = ds.spec
            has_masks = bundle.test.masks is not None
            has_regions = bundle.test.regions is not None
            for mo in self.models:
                mspec: ModelSpec = mo.spec
                if bundle.modality not in mspec.modalities:
                    raise PlanError(
                        f"{self.suite.path}:{mo.entry.line}: model {mo.entry.display!r} supports "
                        f"{', '.join(sorted(mspec.modalities))} data, but dataset {ds.entry.display!r} is "
                        f"{bundle.modality} data"
                    )
                model_key = self.model_key(ds, mo)
                for me in self.methods:
                    xspec: MethodSpec = me.spec
                    method_skip = None
                    if bundle.modality not in xspec.modalities:
                        method_skip = f"method {me.entry.display!r} does not support {bundle.modality} data"
                    elif xspec.requires_mask and not has_masks:
                        method_skip = f"method {me.entry.display!r} needs masks and {dspec.name!r} has none"
                    for mt in self.metrics:
                        tspec: MetricSpec = mt.spec
                        skip = method_skip
                        if skip is None and bundle.modality not in tspec.modalities:
                            skip = f"metric {mt.entry.display!r} does not support {bundle.modality} data"
                        elif skip is None and tspec.requires_mask and not has_masks:
                            skip = f"dataset {ds.entry.display!r} has no masks: {tspec.category} metric {mt.entry.display!r} skipped"
                        elif skip is None and tspec.requires_region and not has_regions:
                            skip = f"dataset {ds.entry.display!r} has no region maps: metric {mt.entry.display!r} skipped"
                        key = content_key(
                            "cell", model_key, me.spec.name, me.spec.version, _merged(me.spec, me.entry),
                            mt.spec.name, mt.spec.version, _merged(mt.spec, mt.entry), samples.ids,
                            self.suite.target, self.suite.seed,
                        )
                        row = PlanRow(key, ds.entry.display, mo.entry.display, model_key, me.entry.display,
                                      mt.entry.display, tspec.category, tspec.higher_is_better, skip)
                        cells.append(_Cell(row, ds, mo, me, mt))
        return cells

    def header(self, cells: list[_Cell]) -> dict[str, Any]:
        """Provenance shown above the leaderboard; nothing in it changes between identical runs."""
        datasets = {}
        for ds in self.datasets:
            bundle = self.bundle(ds)
            samples = self._samples(bundle)
            counts = np.bincount(samples.y.numpy(), minlength=bundle.num_classes)
            datasets[ds.entry.display] = {
                "plugin": ds.spec.name,
                "fingerprint": self._fingerprints[ds.entry.display],
                "modality": bundle.modality,
                "shape": list(bundle.test.x.shape[1:]),
                "classes": {c: int(k) for c, k in zip(bundle.class_names, counts)},
                "masks": None if samples.masks is None else int(samples.masks.reshape(len(samples), -1).any(1).sum()),
                "samples": len(samples),
                "split_sizes": [len(bundle.train), len(bundle.val), len(bundle.test)],
                "notes": bundle.notes,
                "citation": ds.spec.citation,
            }
        return {
            "suite": self.suite.name,
            "description": self.suite.description,
            "seed": self.suite.seed,
            "samples": self.suite.samples if self.options.limit is None else min(self.suite.samples, self.options.limit),
            "target": self.suite.target,
            "device": self.device.type,
            "versions": {"xaibench": xaibench.__version__, "torch": torch.__version__,
                         "python": platform.python_version()},
            "plugins": self.harness.plugin_versions(),
            "datasets": datasets,
            "metrics": {mt.entry.display: {"category": mt.spec.category, "higher_is_better": mt.spec.higher_is_better,
                                           "citation": mt.spec.citation, "description": mt.spec.description}
                        for mt in self.metrics},
            "methods": {me.entry.display: {"plugin": me.spec.name, "params": _merged(me.spec, me.entry),
                                           "citation": me.spec.citation} for me in self.methods},
        }

    # -- execution ----------------------------------------------------------------------------
    def _model(self, ds: _Resolved, mo: _Resolved, model_key: str, summary: RunSummary) -> nn.Module:
        bundle = self.bundle(ds)
        spec: ModelSpec = mo.spec
        try:
            model = spec.build(num_classes=bundle.num_classes, in_channels=bundle.in_channels,
                               modality=bundle.modality, **dict(mo.entry.params))
        except TypeError as exc:
            raise SuiteError(f"{self.suite.path}:{mo.entry.line}: model {mo.entry.display!r}: {exc}") from None
        what = f"model {mo.entry.display!r} on {ds.entry.display!r}"
        if mo.entry.checkpoint:
            path = Path(mo.entry.checkpoint)
        else:
            path = self.options.home / "models" / f"{model_key}.pt"
            if not path.exists():
                recipe = recipe_with(spec.recipe, mo.entry.train)
                tqdm.write(f"training {what} ({recipe.epochs} epochs max) ...")
                train(model, bundle.train, bundle.val, recipe, seed_from(self.suite.seed, model_key), self.device)
                save_checkpoint(model, path)
                summary.models_trained += 1
        load_checkpoint(model, path, what)
        model.to(self.device).eval()
        if self.store.model_evaluation(model_key) is None:
            evaluation = evaluate(model, bundle.test, self.device)
            self.store.put_model(model_key, ds.entry.display, mo.entry.display, file_sha256(path), evaluation,
                                 {"checkpoint": str(path), "params": dict(mo.entry.params),
                                  "train": dict(mo.entry.train), "torch": torch.__version__})
        return model

    def _layer(self, model: nn.Module, mo: _Resolved, params: dict[str, Any]) -> nn.Module | None:
        name = params.pop("layer", None)
        if name is None:
            return mo.spec.target_layer(model)
        try:
            return model.get_submodule(name)
        except AttributeError:
            names = [n for n, _ in model.named_modules() if n]
            raise SuiteError(f"layer {name!r} is not in model {mo.entry.display!r}{did_you_mean(name, names)}") from None

    def _explain(self, model: nn.Module, me: _Resolved, mo: _Resolved, samples: Samples, target: torch.Tensor,
                 data_mean: torch.Tensor) -> np.ndarray:
        """Maps for ``samples`` in batches, validated and upsampled to the input size."""
        spec: MethodSpec = me.spec
        params = _merged(spec, me.entry)
        layer = self._layer(model, mo, params)
        spatial = tuple(samples.x.shape[2:])
        before = {k: (v.detach().clone(), v.requires_grad) for k, v in model.named_parameters()}
        out = []
        for start in range(0, len(samples), self.batch_size):
            chunk = samples.subset(slice(start, start + self.batch_size))
            ctx = MethodContext(
                layer=layer, batch_size=self.batch_size,
                sample_seeds=tuple(seed_from(self.suite.seed, sid) for sid in chunk.ids),
                data_mean=data_mean, masks=None if chunk.masks is None else chunk.masks.to(self.device),
            )
            x = chunk.x.to(self.device)
            with torch.enable_grad():
                sal = spec.explain(model, x, target[start : start + len(chunk)].to(self.device), ctx, **params)
            if not isinstance(sal, torch.Tensor):
                sal = torch.as_tensor(np.asarray(sal))
            if sal.dim() != len(spatial) + 1 or sal.shape[0] != len(chunk):
                raise CellError(f"method returned shape {tuple(sal.shape)}; expected ({len(chunk)}, *spatial) "
                                f"with spatial {spatial} or a coarser map")
            sal = upsample(sal.detach().float(), spatial)
            if not torch.isfinite(sal).all():
                raise CellError("method returned NaN or infinite values")
            out.append(sal.cpu().numpy().astype(np.float32))
        for k, v in model.named_parameters():
            old, grad = before[k]
            if v.requires_grad != grad or not torch.equal(v.detach(), old):
                raise CellError(f"method changed the model's parameter {k!r} (values or requires_grad)")
        return np.concatenate(out)

    def run(self, cells: list[_Cell] | None = None, on_cell: Callable[[str], None] | None = None) -> RunSummary:
        cells = self.plan() if cells is None else cells
        summary = RunSummary()
        self.store.put_plan(self.suite.name, [c.row for c in cells], self.header(cells))
        runnable = [c for c in cells if not c.row.skip_reason]
        summary.skipped = len(cells) - len(runnable)
        summary.skip_reasons = sorted({c.row.skip_reason for c in cells if c.row.skip_reason})
        done = self.store.finished(c.row.cell_key for c in runnable)
        todo = [c for c in runnable if c.row.cell_key not in done]
        summary.reused = len(runnable) - len(todo)
        if not todo:
            return summary
        bar = tqdm(total=len(todo), desc=f"{self.suite.name}", unit="cell", disable=not self.options.progress)
        groups: dict[tuple[str, str], list[_Cell]] = {}
        for c in todo:
            groups.setdefault((c.dataset.entry.display, c.model.entry.display), []).append(c)
        for cells_dm in groups.values():
            first = cells_dm[0]
            bundle = self.bundle(first.dataset)
            samples = self._samples(bundle)
            model = self._model(first.dataset, first.model, first.row.model_key, summary)
            engine = Engine(model, self.device, self.batch_size)
            base_logits = engine.logits(samples.x)
            target = (base_logits.argmax(1) if self.suite.target == "predicted" else samples.y.to(self.device))
            dims = [0] + list(range(2, bundle.train.x.dim()))
            data_mean = bundle.train.x.mean(dim=dims).to(self.device)
            by_method: dict[str, list[_Cell]] = {}
            for c in cells_dm:
                by_method.setdefault(c.method.entry.display, []).append(c)
            for method_cells in by_method.values():
                me = method_cells[0].method
                maps, error = self._maps(model, me, first.model, first.row.model_key, samples, target, data_mean, summary)
                for c in method_cells:
                    if error is None:
                        result, values = self._score(c, model, engine, base_logits, samples, target, maps, data_mean, me)
                    else:
                        result, values = self._failed(c, error, len(samples)), []
                    self.store.put_cell(result, samples.ids if values is not None else (), values if values is not None else ())
                    if result.status == "ok":
                        summary.computed += 1
                    else:
                        summary.failed.append(f"{c.row.dataset} / {c.row.model} / {c.row.method} / {c.row.metric}: "
                                              f"{(result.error or '').splitlines()[0]}")
                        if self.options.fail_fast:
                            bar.close()
                            return summary
                    bar.update(1)
                    if on_cell is not None:
                        on_cell(c.row.cell_key)
        bar.close()
        return summary

    def _maps(self, model: nn.Module, me: _Resolved, mo: _Resolved, model_key: str, samples: Samples,
              target: torch.Tensor, data_mean: torch.Tensor, summary: RunSummary) -> tuple[np.ndarray | None, str | None]:
        method_key = content_key("method", me.spec.name, me.spec.version, _merged(me.spec, me.entry),
                                 self.suite.target, self.suite.seed)
        cache = SaliencyCache(self.options.home, model_key, method_key)
        missing = cache.missing(samples.ids)
        if missing:
            try:
                maps = self._explain(model, me, mo, samples.subset(missing), target[missing], data_mean)
            except (XaibenchError, KeyboardInterrupt):
                raise
            except Exception as exc:
                return None, _describe_failure(exc)
            cache.put([samples.ids[i] for i in missing], maps)
            summary.maps_computed += len(missing)
        return cache.get(samples.ids), None

    def _score(self, c: _Cell, model: nn.Module, engine: Engine, base_logits: torch.Tensor, samples: Samples,
               target: torch.Tensor, maps: np.ndarray, data_mean: torch.Tensor,
               me: _Resolved) -> tuple[CellResult, list[float] | None]:
        spec: MetricSpec = c.metric.spec
        params = _merged(spec, c.metric.entry)
        bundle = self.bundle(c.dataset)
        def explain(m: nn.Module) -> torch.Tensor:
            """The cell's method on the cell's samples, for another model (randomization checks)."""
            return torch.from_numpy(self._explain(m, me, c.model, samples, target, data_mean)).to(self.device)

        ctx = MetricContext(
            engine=engine, base_logits=base_logits, seed=seed_from(self.suite.seed, c.row.cell_key),
            data_mean=data_mean, region_top_level=bundle.region_top_level,
            model_factory=lambda: copy.deepcopy(model), explain=explain,
        )
        start = time.perf_counter()
        try:
            values = spec.score(
                ctx, samples.x.to(self.device), target, torch.from_numpy(maps).to(self.device),
                None if samples.masks is None else samples.masks.to(self.device),
                None if samples.regions is None else samples.regions.to(self.device), **params,
            )
            values = np.asarray(values.detach().cpu() if isinstance(values, torch.Tensor) else values, dtype=np.float64)
            if values.shape != (len(samples),):
                raise CellError(f"metric returned shape {values.shape}; expected ({len(samples)},): one score per sample")
            if np.isinf(values).any():
                raise CellError("metric returned infinite scores")
        except (XaibenchError, KeyboardInterrupt):
            raise
        except Exception as exc:
            return self._failed(c, _describe_failure(exc), len(samples)), None
        mean, low, high, n = summarize(values, seed_from(self.suite.seed, c.row.cell_key))
        prov = self._provenance(c, params, time.perf_counter() - start)
        return CellResult(c.row.cell_key, c.row.dataset, c.row.model, c.row.method, c.row.metric, "ok",
                          mean, low, high, n, len(samples), None, prov), values.tolist()

    def _failed(self, c: _Cell, error: str, n_total: int) -> CellResult:
        return CellResult(c.row.cell_key, c.row.dataset, c.row.model, c.row.method, c.row.metric, "failed",
                          None, None, None, 0, n_total, error, self._provenance(c, _merged(c.metric.spec, c.metric.entry), 0.0))

    def _provenance(self, c: _Cell, metric_params: Mapping[str, Any], seconds: float) -> dict[str, Any]:
        plugins = self.harness.plugins
        return {
            "xaibench": xaibench.__version__, "torch": torch.__version__, "seed": self.suite.seed,
            "device": self.device.type, "target": self.suite.target, "suite": self.suite.name,
            "dataset_fingerprint": self._fingerprints[c.dataset.entry.display],
            "model_key": c.row.model_key,
            "method": {"plugin": c.method.spec.name, "version": c.method.spec.version,
                       "params": _merged(c.method.spec, c.method.entry)},
            "metric": {"plugin": c.metric.spec.name, "version": c.metric.spec.version, "params": dict(metric_params)},
            "plugin_versions": {k: f"{plugins[k].distribution} {plugins[k].version}"
                                for k in {c.dataset.plugin, c.model.plugin, c.method.plugin, c.metric.plugin}
                                if k in plugins},
            "seconds": round(seconds, 3),
        }


def _describe_failure(exc: BaseException) -> str:
    """First line: the error; then the innermost frames, enough to find the plugin bug."""
    frames = traceback.format_exception(type(exc), exc, exc.__traceback__, limit=-4)
    return f"{type(exc).__name__}: {exc}\n" + "".join(frames[-6:])
