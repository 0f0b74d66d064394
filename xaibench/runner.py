"""Plans the cells of a suite and runs them: models, saliency maps, scores, store.

A *cell* is one dataset x model x method x metric. The runner owns everything a
plugin should not have to think about: resolving names, refusing impossible cells
before any training starts, seeding, batching, training and caching models,
computing each saliency map once per model x method x sample, isolating a failing
plugin to its own cells, aggregating, and writing each finished cell atomically.
"""
from __future__ import annotations

import copy
import dataclasses
import hashlib
import platform
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Hashable, Iterator, Mapping, TypeVar

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

import xaibench
from xaibench.byom import factory_spec, output_form, with_layer
from xaibench.cache import (
    SaliencyCache,
    bundle_from_state,
    bundle_state,
    cache_home,
    content_key,
    file_digest,
    load_checkpoint,
    numerics,
    save_checkpoint,
    save_state,
)
from xaibench.degenerate import check_cam_layer, mask_constant
from xaibench.engine import Engine, auto_batch_size
from xaibench.errors import CellError, PlanError, SuiteError, UnknownNameError, XaibenchError, did_you_mean
from xaibench.gate import verdict
from xaibench.inputs import conform_bundle
from xaibench.isolation import ModelGuard, time_limit
from xaibench.maps import upsample
from xaibench.outputs import conform
from xaibench.params import validate_params
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

_T = TypeVar("_T")


@dataclass(frozen=True)
class RunOptions:
    data_root: str | None = None
    device: str = "cpu"
    limit: int | None = None
    batch_size: int | None = None
    home: Path = field(default_factory=cache_home)
    progress: bool = True
    fail_fast: bool = False
    #: Seconds each plugin call of a cell may take (overrides the suite's ``cell_timeout``).
    cell_timeout: float | None = None
    #: Run the forward passes in bfloat16 on CUDA.
    autocast: bool = False
    #: "local" (this machine; ``workers`` > 1 uses a process pool) or "ray".
    executor: str = "local"
    workers: int = 1
    #: Address of an existing Ray cluster ("auto" or "ray://host:port"); None starts a local one.
    address: str | None = None
    #: Let dataset loaders fetch missing public releases, checksum-verified (``--download``),
    #: from their URL or from ``mirror`` (``--mirror``).
    download: bool = False
    mirror: str | None = None


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
class _GroupContext:
    model: nn.Module
    engine: Engine
    samples: Samples
    base_logits: torch.Tensor
    target: torch.Tensor
    data_mean: torch.Tensor


#: (cell key, result, per-sample values or None, saliency maps computed for it).
Outcome = tuple[str, CellResult, "list[float] | None", int]


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
        if kind == "models" and e.factory is not None:  # issue 14: a model without a plugin
            out.append(_Resolved(e, factory_spec(e, suite.path), "suite"))
            continue
        try:
            entry = registry.entry(e.name)
        except UnknownNameError as exc:
            broken = "".join(f"; plugin {n!r} failed to load: {why.splitlines()[0]}" for n, why in harness.broken.items())
            raise SuiteError(f"{suite.path}:{e.line}: {exc}{broken}") from None
        out.append(_Resolved(e, with_layer(entry.spec, e) if kind == "models" else entry.spec, entry.plugin))
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


def check_bundle(name: str, bundle: DataBundle) -> None:
    """Refuse a dataset whose splits contradict each other, naming the dataset and what is wrong.

    Caught here, before any training, rather than as a confusing failure deep inside a
    metric: masks and region maps must match their images' spatial shape, sample ids
    must be unique within a split (caches and scores are keyed by them), labels must
    index ``class_names``, and inputs must be finite.
    """
    def bad(msg: str) -> XaibenchError:
        return XaibenchError(f"dataset {name!r}: {msg}")

    if not isinstance(bundle, DataBundle):
        raise bad(f"the loader returned {type(bundle).__name__}, not a DataBundle")
    dims = {"image": 4, "signal": 3}
    if bundle.modality not in dims:
        raise bad(f"modality {bundle.modality!r} is not one of {', '.join(dims)}")
    shape = None
    for split_name, split in (("train", bundle.train), ("val", bundle.val), ("test", bundle.test)):
        x = split.x
        if x.dim() != dims[bundle.modality]:
            raise bad(f"{split_name} inputs have shape {tuple(x.shape)}; {bundle.modality} data is "
                      f"{'(N, C, H, W)' if bundle.modality == 'image' else '(N, C, L)'}")
        if shape is not None and tuple(x.shape[1:]) != shape:
            raise bad(f"{split_name} inputs have shape {tuple(x.shape[1:])} per sample, the train split "
                      f"{shape}: every split must have the same channels and size")
        shape = tuple(x.shape[1:])
        n = x.shape[0]
        if len(split.ids) != n or split.y.shape != (n,):
            raise bad(f"{split_name} split has {n} inputs, {len(split.ids)} ids and labels of shape "
                      f"{tuple(split.y.shape)}: one id and one label per input")
        if len(set(split.ids)) != n:
            dup = sorted(i for i, k in Counter(split.ids).items() if k > 1)[:3]
            raise bad(f"{split_name} sample ids are not unique ({', '.join(map(repr, dup))} repeat)")
        if n and (split.y.dtype.is_floating_point or int(split.y.min()) < 0
                  or int(split.y.max()) >= bundle.num_classes):
            raise bad(f"{split_name} labels must be integers in 0..{bundle.num_classes - 1} "
                      f"(one per class name), got {split.y.dtype} in {split.y.min().item()}..{split.y.max().item()}")
        for what, t in (("masks", split.masks), ("region maps", split.regions)):
            if t is not None and tuple(t.shape) != (n, *x.shape[2:]):
                raise bad(f"{split_name} {what} have shape {tuple(t.shape)}, but the inputs are "
                          f"{tuple(x.shape)}: each needs one {what[:-1]} of its input's size "
                          f"{tuple(x.shape[2:])}")
        if not torch.isfinite(x).all():
            raise bad(f"{split_name} inputs contain NaN or infinite values")


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
        self.cell_timeout = suite.cell_timeout if options.cell_timeout is None else options.cell_timeout
        if self.cell_timeout is not None and self.cell_timeout <= 0:
            raise XaibenchError(f"the cell time limit must be a positive number of seconds, got {self.cell_timeout:g}")
        self.datasets = _resolve(harness, "datasets", suite.datasets, suite)
        self.models = _resolve(harness, "models", suite.models, suite)
        self.methods = _resolve(harness, "methods", suite.methods, suite)
        self.metrics = _resolve(harness, "metrics", suite.metrics, suite)
        self._bundles: dict[str, DataBundle] = {}
        self._fingerprints: dict[str, str] = {}
        self.numerics = numerics(self.device, options.autocast)
        validate_params(suite, self.methods, self.metrics)  # issue 14: parameters checked before anything runs

    # -- planning -----------------------------------------------------------------------------
    def bundle(self, ds: _Resolved) -> DataBundle:
        name = ds.entry.display
        if name not in self._bundles:
            spec: DatasetSpec = ds.spec
            request = DatasetRequest(params=_merged(spec, ds.entry), seed=self.suite.seed,
                                     image_size=self.suite.image_size, data_root=self.options.data_root,
                                     download=self.options.download, mirror=self.options.mirror)
            try:
                bundle = self._load_bundle(spec, request)
            except XaibenchError as exc:
                raise XaibenchError(f"dataset {name!r}: {exc}") from None
            except TypeError as exc:
                raise SuiteError(f"{self.suite.path}:{ds.entry.line}: dataset {name!r}: {exc}") from None
            except Exception as exc:  # unreadable files: corrupt or truncated images, bad archives
                first = str(exc).splitlines()[0] if str(exc) else ""
                raise XaibenchError(f"dataset {name!r} could not be loaded: {type(exc).__name__}: {first} "
                                    "(--debug shows where)") from exc
            bundle = conform_bundle(name, bundle)  # issue 14: the input contract (xaibench.inputs)
            check_bundle(name, bundle)
            self._bundles[name] = bundle
            self._fingerprints[name] = fingerprint(bundle)
        return self._bundles[name]

    def _load_bundle(self, spec: DatasetSpec, request: DatasetRequest) -> DataBundle:
        """``spec.load(request)``, from the bundle cache for deterministic datasets.

        Generating the synthetic data was most of a cached re-run's time; a bundle is
        stored as plain tensors and strings and read back with ``weights_only=True``.
        """
        if not spec.deterministic:
            return spec.load(request)
        key = content_key("dataset", spec.name, spec.version, dict(request.params), request.seed, request.image_size)
        path = self.options.home / "datasets" / f"{key}.pt"
        if path.exists():
            return bundle_from_state(torch.load(path, map_location="cpu", weights_only=True))
        bundle = spec.load(request)
        save_state(bundle_state(bundle), path)
        return bundle

    def unavailable(self, ds: _Resolved) -> str | None:
        """Why an ``optional: true`` dataset is skipped (its data could not be loaded), else None."""
        if not ds.entry.optional:
            return None
        try:
            self.bundle(ds)
        except XaibenchError as exc:
            return f"optional dataset {ds.entry.display!r} skipped: {str(exc).splitlines()[0]}"
        return None

    def _samples(self, bundle: DataBundle) -> Samples:
        n = min(self.suite.samples, self.options.limit or self.suite.samples, len(bundle.test))
        return bundle.test.subset(slice(0, n))

    def model_key(self, ds: _Resolved, mo: _Resolved) -> str:
        spec: ModelSpec = mo.spec
        self.bundle(ds)  # loads the dataset and computes its fingerprint
        recipe = recipe_with(spec.recipe, mo.entry.train)
        checkpoint = file_digest(Path(mo.entry.checkpoint)) if mo.entry.checkpoint and Path(mo.entry.checkpoint).exists() else mo.entry.checkpoint
        return content_key("model", spec.name, spec.version, _merged(spec, mo.entry), recipe, checkpoint,
                           self._fingerprints[ds.entry.display], self.suite.seed,
                           output_form(mo.entry), self.numerics)  # issue 14: output form, device/dtype/autocast

    def plan(self) -> list[_Cell]:
        """Every cell of the suite, with a skip reason for those that cannot run.

        Raises :class:`PlanError` for combinations that make the whole suite wrong
        (a 2D model on a 1D dataset), before any model is trained.
        """
        cells: list[_Cell] = []
        for ds in self.datasets:
            missing = self.unavailable(ds)
            if missing is not None:
                for mo in self.models:
                    for me in self.methods:
                        for mt in self.metrics:
                            key = content_key("unavailable", ds.entry.identity(), mo.entry.identity(),
                                              me.entry.identity(), mt.entry.identity())
                            cells.append(_Cell(PlanRow(key, ds.entry.display, mo.entry.display, "", me.entry.display,
                                                       mt.entry.display, mt.spec.category, mt.spec.higher_is_better,
                                                       missing), ds, mo, me, mt))
                continue
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
                cams = [me for me in self.methods if me.spec.takes_layer and not me.entry.allow_small_cam
                        and bundle.modality in me.spec.modalities]  # issue 14: coarse CAM layers refused
                built = self.build_model(ds, mo) if cams else None
                for me in cams:
                    check_cam_layer(built, self._layer(built, mo, _merged(me.spec, me.entry)), bundle.in_channels,
                                    bundle.spatial, f"{self.suite.path}:{me.entry.line}", me.entry.display, mo.entry.display)
                for me in self.methods:
                    xspec: MethodSpec = me.spec
                    method_skip = None
                    if bundle.modality not in xspec.modalities:
                        method_skip = f"method {me.entry.display!r} does not support {bundle.modality} data"
                    elif xspec.requires_mask and not has_masks:
                        method_skip = f"method {me.entry.display!r} needs masks and {dspec.name!r} has none"
                    elif not xspec.requires_model <= mspec.provides:
                        method_skip = (f"method {me.entry.display!r} needs a model with "
                                       f"{', '.join(sorted(xspec.requires_model - mspec.provides))}: "
                                       f"{mo.entry.display!r} has none")
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
                            self.suite.target, self.suite.seed, self.numerics,
                        )
                        row = PlanRow(key, ds.entry.display, mo.entry.display, model_key, me.entry.display,
                                      mt.entry.display, tspec.category, tspec.higher_is_better, skip)
                        cells.append(_Cell(row, ds, mo, me, mt))
        return cells

    def header(self, cells: list[_Cell]) -> dict[str, Any]:
        """Provenance shown above the leaderboard; nothing in it changes between identical runs."""
        datasets = {}
        for ds in self.datasets:
            if self.unavailable(ds) is not None:
                continue
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
    def train_models(self, summary: RunSummary | None = None) -> list[tuple[str, str, dict[str, Any]]]:
        """Train (or load from the cache or a checkpoint) every dataset x model of the suite: ``xaibench train``.

        Returns ``(dataset, model, test evaluation)`` per pair; the same path ``run()`` uses.
        """
        self.plan()  # refuses impossible dataset x model pairs before any training
        summary = summary or RunSummary()
        out = []
        for ds in (d for d in self.datasets if self.unavailable(d) is None):
            for mo in self.models:
                key = self.model_key(ds, mo)
                self._model(ds, mo, key, summary)
                out.append((ds.entry.display, mo.entry.display, self.store.model_evaluation(key) or {}))
        return out

    def build_model(self, ds: _Resolved, mo: _Resolved) -> nn.Module:
        """An untrained model of ``mo`` shaped for dataset ``ds``.

        Its initial weights are seeded from the model's cache key, so the same suite
        trains the same model on a fresh machine, whatever ran before in the process.
        """
        bundle = self.bundle(ds)
        try:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed_from(self.suite.seed, self.model_key(ds, mo), "init"))
                built = mo.spec.build(num_classes=bundle.num_classes, in_channels=bundle.in_channels,
                                      modality=bundle.modality, **dict(mo.entry.params))
        except TypeError as exc:
            raise SuiteError(f"{self.suite.path}:{mo.entry.line}: model {mo.entry.display!r}: {exc}") from None
        return conform(built, num_classes=bundle.num_classes, in_channels=bundle.in_channels, spatial=bundle.spatial,
                       form=output_form(mo.entry), who=f"model {mo.entry.display!r} on {ds.entry.display!r}")

    def _model(self, ds: _Resolved, mo: _Resolved, model_key: str, summary: RunSummary) -> nn.Module:
        bundle = self.bundle(ds)
        spec: ModelSpec = mo.spec
        model = self.build_model(ds, mo)
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
            evaluation.update(gate=verdict(evaluation), numerics=self.numerics)  # issue 14: gate, provenance
            if evaluation["gate"]["reason"]:
                tqdm.write(f"{what}: {evaluation['gate']['reason']}")
            self.store.put_model(model_key, ds.entry.display, mo.entry.display, file_digest(path), evaluation,
                                 {"checkpoint": str(path), "params": dict(mo.entry.params),
                                  "train": dict(mo.entry.train), "torch": torch.__version__})
        return model

    def label_randomized_model(self, ds: _Resolved, mo: _Resolved) -> nn.Module:
        """``mo`` trained like the real model but on permuted training labels, cached by its own key.

        Adebayo et al. (2018, Sec. 3.2) train "to high training accuracy" on the random
        labels: the weights kept are those of the epoch that fits them best (the fit is
        measured on permuted training samples, as there is nothing to generalize).
        """
        bundle = self.bundle(ds)
        key = content_key("label-randomized", self.model_key(ds, mo))
        path = self.options.home / "models" / f"{key}.pt"
        model = self.build_model(ds, mo)
        if not path.exists():
            seed = seed_from(self.suite.seed, key)
            perm = torch.randperm(len(bundle.train), generator=torch.Generator().manual_seed(seed))
            shuffled = dataclasses.replace(bundle.train, y=bundle.train.y[perm])
            recipe = dataclasses.replace(recipe_with(mo.spec.recipe, mo.entry.train), patience=0)
            tqdm.write(f"training {mo.entry.display!r} on {ds.entry.display!r} with permuted labels ...")
            train(model, shuffled, shuffled.subset(slice(0, 512)), recipe, seed, self.device)
            save_checkpoint(model, path)
        load_checkpoint(model, path, f"label-randomized model {mo.entry.display!r}")
        return model.to(self.device).eval()

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
            sal = _real(sal, "method")
            if sal.dim() != len(spatial) + 1 or sal.shape[0] != len(chunk):
                raise CellError(f"method returned shape {tuple(sal.shape)}; expected ({len(chunk)}, *spatial) "
                                f"with spatial {spatial} or a coarser map")
            sal = upsample(sal.detach().float(), spatial)
            if not torch.isfinite(sal).all():
                raise CellError("method returned NaN or infinite values")
            out.append(sal.cpu().numpy().astype(np.float32))
        return np.concatenate(out)

    def _isolated(self, what: str, model: nn.Module, call: Callable[[], _T]) -> _T:
        """``call()`` under the per-cell time limit; the model is restored afterwards whatever happened.

        A call that returns but changed the model fails with :class:`CellError` naming the change.
        """
        guard = ModelGuard(model)
        try:
            with time_limit(self.cell_timeout, what):
                result = call()
        finally:
            changes = guard.restore(model)
        if changes:
            raise CellError(f"{what} changed the model's " + "; ".join(changes))
        return result

    def run(self, cells: list[_Cell] | None = None, on_cell: Callable[[str], None] | None = None) -> RunSummary:
        """Compute every unfinished cell and store each one as it finishes.

        The work is cut into groups of one dataset x model x method (the saliency maps
        are computed once per group and shared by its metrics). The local executor runs
        them in this process; ``--workers N`` and ``--executor ray`` run them elsewhere
        (:mod:`xaibench.executors`), but only this process writes the store.
        """
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
        groups: dict[tuple[str, str, str], list[_Cell]] = {}
        for c in todo:
            groups.setdefault((c.dataset.entry.display, c.model.entry.display, c.method.entry.display), []).append(c)
        by_key = {c.row.cell_key: c for c in todo}
        bar = tqdm(total=len(todo), desc=f"{self.suite.name}", unit="cell", disable=not self.options.progress)
        try:
            for cell_key, result, values, maps_computed in self._outcomes(list(groups.values()), summary):
                summary.maps_computed += maps_computed
                c = by_key[cell_key]
                self.store.put_cell(result, self._samples(self.bundle(c.dataset)).ids if values is not None else (),
                                    values if values is not None else ())
                bar.update(1)
                if on_cell is not None:
                    on_cell(cell_key)
                if result.status == "ok":
                    summary.computed += 1
                    continue
                summary.failed.append(f"{c.row.dataset} / {c.row.model} / {c.row.method} / {c.row.metric}: "
                                      f"{(result.error or '').splitlines()[0]}")
                if self.options.fail_fast:
                    break
        finally:
            bar.close()
        return summary

    def _outcomes(self, groups: list[list[_Cell]], summary: RunSummary) -> Iterator[Outcome]:
        """Outcomes of every group, from this process or from the chosen executor."""
        if self.options.executor == "local" and self.options.workers <= 1:
            contexts: dict[tuple[str, str], _GroupContext] = {}
            for group in groups:
                first = group[0]
                pair = (first.dataset.entry.display, first.model.entry.display)
                if pair not in contexts:
                    contexts.clear()  # one model in memory at a time
                    model = self._model(first.dataset, first.model, first.row.model_key, summary)
                    contexts[pair] = self.group_context(first.dataset, model)
                yield from self.group_outcomes(contexts[pair], group)
            return
        from xaibench.executors import remote_outcomes

        yield from remote_outcomes(self, groups, summary)

    def group_context(self, ds: _Resolved, model: nn.Module, samples: Samples | None = None) -> "_GroupContext":
        """What every method of one dataset x model shares: the unperturbed pass, targets, the mean.

        ``samples`` defaults to the evaluated ones; figures and ``xaibench explain`` pass subsets.
        """
        bundle = self.bundle(ds)
        samples = self._samples(bundle) if samples is None else samples
        engine_batch = self.options.batch_size or auto_batch_size(model, samples.x[:1], self.device)
        engine = Engine(model, self.device, engine_batch, autocast=self.options.autocast)
        base_logits = engine.logits(samples.x)
        target = base_logits.argmax(1) if self.suite.target == "predicted" else samples.y.to(self.device)
        dims = [0] + list(range(2, bundle.train.x.dim()))
        return _GroupContext(model, engine, samples, base_logits, target, bundle.train.x.mean(dim=dims).to(self.device))

    def group_outcomes(self, g: "_GroupContext", group: list[_Cell]) -> Iterator[Outcome]:
        """One method's maps (computed once) and then each of its metric cells."""
        counter = RunSummary()
        me = group[0].method
        maps, error = self._maps(g.model, me, group[0].model, group[0].row.model_key, g.samples, g.target,
                                 g.data_mean, counter)
        memo: dict[Hashable, Any] = {}  # what this method's metric cells share (MetricContext.shared)
        for i, c in enumerate(group):
            if error is None:
                result, values = self._score(c, g.model, g.engine, g.base_logits, g.samples, g.target, maps,
                                             g.data_mean, me, memo)
            else:
                result, values = self._failed(c, error, len(g.samples)), None
            yield c.row.cell_key, result, values, counter.maps_computed if i == 0 else 0

    def adopt(self, bundles: Mapping[str, DataBundle], fingerprints: Mapping[str, str]) -> None:
        """Use datasets loaded elsewhere (a worker receives them from the driver, not from disk)."""
        self._bundles.update(bundles)
        self._fingerprints.update(fingerprints)

    def _maps(self, model: nn.Module, me: _Resolved, mo: _Resolved, model_key: str, samples: Samples,
              target: torch.Tensor, data_mean: torch.Tensor, summary: RunSummary) -> tuple[np.ndarray | None, str | None]:
        method_key = content_key("method", me.spec.name, me.spec.version, _merged(me.spec, me.entry),
                                 self.suite.target, self.suite.seed, self.numerics)
        cache = SaliencyCache(self.options.home, model_key, method_key)
        missing = cache.missing(samples.ids)
        if missing:
            try:
                maps = self._isolated(f"method {me.entry.display!r}", model, lambda: self._explain(
                    model, me, mo, samples.subset(missing), target[missing], data_mean))
            except (XaibenchError, KeyboardInterrupt):
                raise
            except (Exception, SystemExit) as exc:  # a plugin calling sys.exit() fails its cells, not the run
                return None, _describe_failure(exc)
            cache.put([samples.ids[i] for i in missing], maps)
            summary.maps_computed += len(missing)
        return cache.get(samples.ids), None

    def _score(self, c: _Cell, model: nn.Module, engine: Engine, base_logits: torch.Tensor, samples: Samples,
               target: torch.Tensor, maps: np.ndarray, data_mean: torch.Tensor, me: _Resolved,
               memo: dict[Hashable, Any]) -> tuple[CellResult, list[float] | None]:
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
            label_randomized_model=lambda: self.label_randomized_model(c.dataset, c.model),
            shared=lambda key, compute: memo[key] if key in memo else memo.setdefault(key, compute()),
        )
        start = time.perf_counter()
        try:
            values = self._isolated(f"metric {c.metric.entry.display!r}", model, lambda: spec.score(
                ctx, samples.x.to(self.device), target, torch.from_numpy(maps).to(self.device),
                None if samples.masks is None else samples.masks.to(self.device),
                None if samples.regions is None else samples.regions.to(self.device), **params,
            ))
            values = _real(values, "metric").detach().cpu().double().numpy()
            if values.shape != (len(samples),):
                raise CellError(f"metric returned shape {values.shape}; expected ({len(samples)},): one score per sample")
            if np.isinf(values).any():
                raise CellError("metric returned infinite scores")
            values, constant = mask_constant(values, maps)  # issue 14: constant maps are not informative
        except (XaibenchError, KeyboardInterrupt):
            raise
        except (Exception, SystemExit) as exc:
            return self._failed(c, _describe_failure(exc), len(samples)), None
        mean, low, high, n = summarize(values, seed_from(self.suite.seed, c.row.cell_key))
        prov = {**self._provenance(c, params, time.perf_counter() - start), "constant_maps": constant}
        return CellResult(c.row.cell_key, c.row.dataset, c.row.model, c.row.method, c.row.metric, "ok",
                          mean, low, high, n, len(samples), None, prov), values.tolist()

    def _failed(self, c: _Cell, error: str, n_total: int) -> CellResult:
        return CellResult(c.row.cell_key, c.row.dataset, c.row.model, c.row.method, c.row.metric, "failed",
                          None, None, None, 0, n_total, error, self._provenance(c, _merged(c.metric.spec, c.metric.entry), 0.0))

    def _provenance(self, c: _Cell, metric_params: Mapping[str, Any], seconds: float) -> dict[str, Any]:
        """Everything that determines the cell's scores, so it can be reproduced from the store alone."""
        plugins = self.harness.plugins
        ids = self._samples(self.bundle(c.dataset)).ids
        return {
            "xaibench": xaibench.__version__, "torch": torch.__version__, "numpy": np.__version__,
            "python": platform.python_version(), "seed": self.suite.seed,
            "device": self.device.type, "target": self.suite.target, "suite": self.suite.name,
            "batch_size": self.batch_size,
            "dataset": {"plugin": c.dataset.spec.name, "version": c.dataset.spec.version,
                        "params": _merged(c.dataset.spec, c.dataset.entry), "image_size": self.suite.image_size},
            "dataset_fingerprint": self._fingerprints[c.dataset.entry.display],
            "samples": {"split": "test", "first": len(ids),
                        "ids_sha256": hashlib.sha256("\0".join(ids).encode()).hexdigest()},
            "model": {"plugin": c.model.spec.name, "version": c.model.spec.version, "params": dict(c.model.entry.params),
                      "train": dict(c.model.entry.train), "checkpoint": c.model.entry.checkpoint},
            "model_key": c.row.model_key,
            "method": {"plugin": c.method.spec.name, "version": c.method.spec.version,
                       "params": _merged(c.method.spec, c.method.entry)},
            "metric": {"plugin": c.metric.spec.name, "version": c.metric.spec.version, "params": dict(metric_params)},
            "plugin_versions": {k: f"{plugins[k].distribution} {plugins[k].version}"
                                for k in {c.dataset.plugin, c.model.plugin, c.method.plugin, c.metric.plugin}
                                if k in plugins},
            "seconds": round(seconds, 3),
        }

    # -- inspection: what figures and `xaibench explain` show is what the run scores ---------------
    def evaluated_samples(self, ds: _Resolved) -> Samples:
        """The test samples the run scores for dataset ``ds``."""
        return self._samples(self.bundle(ds))

    def trained_model(self, ds: _Resolved, mo: _Resolved) -> nn.Module:
        """The model the run scores, from its cached checkpoint (trained and cached first if absent)."""
        return self._model(ds, mo, self.model_key(ds, mo), RunSummary())

    def cached_maps(self, model: nn.Module, ds: _Resolved, mo: _Resolved, me: _Resolved, samples: Samples,
                    target: torch.Tensor, data_mean: torch.Tensor) -> np.ndarray:
        """``me``'s maps of ``samples`` from the saliency cache (computed and cached if absent).

        Raises :class:`CellError` with the method's failure when it cannot explain them.
        """
        maps, error = self._maps(model, me, mo, self.model_key(ds, mo), samples, target, data_mean, RunSummary())
        if error is not None:
            raise CellError(error)
        return maps


def _real(value: Any, who: str) -> torch.Tensor:
    """A plugin's output as a real-valued tensor, or a :class:`CellError` saying what came back instead."""
    if not isinstance(value, torch.Tensor):
        array = np.asarray(value)
        if array.dtype.kind not in "biuf":
            raise CellError(f"{who} returned {type(value).__name__} of dtype {array.dtype}; expected real numbers")
        value = torch.from_numpy(np.ascontiguousarray(array))
    if value.is_complex():
        raise CellError(f"{who} returned dtype {value.dtype}; expected real numbers")
    return value


def _describe_failure(exc: BaseException) -> str:
    """First line: the error; then the innermost frames, enough to find the plugin bug."""
    frames = traceback.format_exception(type(exc), exc, exc.__traceback__, limit=-4)
    return f"{type(exc).__name__}: {exc}\n" + "".join(frames[-6:])
