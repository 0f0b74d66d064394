"""Runs one suite against one store: plan, then datasets, models, execution, store.

The runner orchestrates the rooms named for their step: :mod:`xaibench.suites.plan`
(cells, keys, skip rules), :mod:`xaibench.data.bundles` (datasets), :mod:`xaibench.models.provision`
(trained and cached models), :mod:`xaibench.running.execution` (explain, isolate, score:
one group at a time) and :mod:`xaibench.running.executors` (where the groups run). It
owns what a plugin should not have to think about: refusing impossible cells
before any training starts, aggregating, and writing each finished cell atomically.
"""
from __future__ import annotations

import platform
from typing import Any, Callable, Iterator

import numpy as np
import torch
from torch import nn

from xaibench.base.version import __version__
from xaibench.base import progress
from xaibench.running import environment
from xaibench.data.bundles import Bundles
from xaibench.base.errors import CellError, PlanError, SuiteError, XaibenchError
from xaibench.scoring.degenerate import check_cam_layer, layer_output_spatial, suggested_layer
from xaibench.running.execution import Execution, GroupContext, Outcome, target_layer
from xaibench.running.executors import remote_outcomes
from xaibench.running.metarun import meta_evaluate
from xaibench.models.provision import Models
from xaibench.scoring.calibration import calibration_facts
from xaibench.suites.options import RunOptions, RunSummary, Settings
from xaibench.contract.outputs import dense
from xaibench.suites.plan import (Cell, Resolved, cell_key, method_skip, metric_skip, not_applicable, resolve,
                           unavailable_key)
from xaibench.suites.params import validate_params
from xaibench.scoring.segmentation import model_target
from xaibench.contract.plugins import Harness
from xaibench.contract.specs import DataBundle, ModelSpec, Samples, cam_size_ok
from xaibench.storage.store import PlanRow, Store
from xaibench.suites.suite import Suite
from xaibench.models.training import recipe_with

__all__ = ["RunOptions", "RunSummary", "Runner"]  # the options and summary live in xaibench.suites.options


class Runner:
    """Runs one suite against one store; ``plan()`` is cheap, ``run()`` does the work."""

    def __init__(self, harness: Harness, suite: Suite, store: Store, options: RunOptions = RunOptions()) -> None:
        self.harness = harness
        self.suite = suite
        self.store = store
        self.options = options
        self.settings = Settings.of(suite, options)
        self.device = self.settings.device
        self.datasets = resolve(harness, "datasets", suite.datasets, suite)
        self.models = resolve(harness, "models", suite.models, suite)
        self.methods = resolve(harness, "methods", suite.methods, suite)
        self.metrics = resolve(harness, "metrics", suite.metrics, suite)
        validate_params(suite, self.methods, self.metrics)  # parameters checked before anything runs
        self.bundles = Bundles(self.settings)
        self.trainer = Models(self.settings, self.bundles, store)
        self.execution = Execution(harness, self.settings, self.bundles, self.trainer)
        self._cam_shapes: dict[tuple[str, str], dict[str, tuple[str, tuple[int, ...]] | SuiteError]] = {}
        self._coverage: dict[tuple[str, str, str], str | None] = {}
        self._built: tuple[tuple[str, str] | None, nn.Module | None] = (None, None)

    # -- planning -----------------------------------------------------------------------------
    def bundle(self, ds: Resolved) -> DataBundle:
        """Dataset ``ds`` loaded and validated."""
        return self.bundles.bundle(ds)

    def unavailable(self, ds: Resolved) -> str | None:
        """Why an ``optional: true`` dataset is skipped (its data could not be loaded), else None."""
        return self.bundles.unavailable(ds)

    def build_model(self, ds: Resolved, mo: Resolved) -> nn.Module:
        """An untrained model of ``mo`` shaped for dataset ``ds`` (initial weights seeded from its cache key)."""
        return self.trainer.build(ds, mo)

    def model_key(self, ds: Resolved, mo: Resolved) -> str:
        """The content key of model ``mo`` trained on ``ds``."""
        return self.trainer.key(ds, mo)

    def plan(self) -> list[Cell]:
        """Every cell of the suite, with a skip reason for those that cannot run.

        Raises :class:`PlanError` for combinations that make the whole suite wrong
        (a 2D model on a 1D dataset), before any model is trained.
        """
        cells: list[Cell] = []
        for ds in self.datasets:
            missing = self.unavailable(ds)
            if missing is not None:
                for mo in self.models:
                    for me in self.methods:
                        for mt in self.metrics:
                            cells.append(Cell(PlanRow(unavailable_key(ds, mo, me, mt), ds.entry.display,
                                                      mo.entry.display, "", me.entry.display, mt.entry.display,
                                                      mt.spec.category, mt.spec.higher_is_better, missing),
                                              ds, mo, me, mt))
                continue
            bundle = self.bundle(ds)
            samples = self.bundles.evaluated(ds)
            for mo in self.models:
                mspec: ModelSpec = mo.spec
                if bundle.modality not in mspec.modalities:
                    cells += self._other_modality(ds, mo, bundle.modality)
                    continue
                model_key = self.model_key(ds, mo)
                self._inspected(ds, mo)  # every model builds before any work (a missing library stops the plan)
                self._check_target(ds, mo)
                self._check_cam_layers(ds, mo)
                for me in self.methods:
                    skip_method = self.method_skip(ds, mo, me)
                    for mt in self.metrics:
                        skip = (skip_method or metric_skip(ds, bundle, mt) or not_applicable(me, mt)
                                or self.task_skip(ds, mo, mt))
                        row = PlanRow(cell_key(model_key, me, mt, samples.ids, self.suite, self.settings.numerics), ds.entry.display,
                                      mo.entry.display, model_key, me.entry.display, mt.entry.display,
                                      mt.spec.category, mt.spec.higher_is_better, skip)
                        cells.append(Cell(row, ds, mo, me, mt))
        return cells

    def fits(self, ds: Resolved, mo: Resolved) -> bool:
        """Model ``mo`` takes the modality of (available) dataset ``ds``: in a suite mixing 2D and 3D data,
        the pairs that are trained, explained and drawn."""
        return self.bundle(ds).modality in mo.spec.modalities

    def _other_modality(self, ds: Resolved, mo: Resolved, modality: str) -> list[Cell]:
        """The cells of model ``mo`` on dataset ``ds`` of a modality it does not take: not applicable when the suite
        mixes modalities and ``mo`` takes another of its datasets (2D and 3D networks side by side), else refused."""
        takes = ", ".join(sorted(mo.spec.modalities))
        if not any(self.unavailable(d) is None and self.bundle(d).modality in mo.spec.modalities
                   for d in self.datasets):
            raise PlanError(f"{self.suite.at(mo.entry.line)}: model {mo.entry.display!r} supports {takes} data, "
                            f"but dataset {ds.entry.display!r} is {modality} data")
        reason = f"not applicable: model {mo.entry.display!r} takes {takes} data; {ds.entry.display!r} is {modality} data"
        return [Cell(PlanRow(unavailable_key(ds, mo, me, mt), ds.entry.display, mo.entry.display, "",
                             me.entry.display, mt.entry.display, mt.spec.category, mt.spec.higher_is_better, reason),
                     ds, mo, me, mt) for me in self.methods for mt in self.metrics]

    def cam_layers(self, ds: Resolved, mo: Resolved) -> dict[str, tuple[str, tuple[int, ...]] | SuiteError]:
        """Per layer-taking method (display name) applicable to ``ds``: its layer's name and output spatial shape
        on an untrained ``mo`` for ``ds``'s inputs (shapes do not depend on weights), or the SuiteError of an
        unknown layer name. Measured once per dataset x model; the plan check and the calibration facts read it."""
        key = (ds.entry.display, mo.entry.display)
        if key not in self._cam_shapes:
            bundle = self.bundle(ds)
            cams = [me for me in self.methods if me.spec.takes_layer and bundle.modality in me.spec.modalities]
            built = self._inspected(ds, mo) if cams else None
            names = {id(m): n for n, m in getattr(built, "wrapped", built).named_modules()} if cams else {}
            shapes: dict[str, tuple[str, tuple[int, ...]] | SuiteError] = {}
            for me in cams:
                try:
                    layer = target_layer(built, mo, dict(me.params))
                except SuiteError as e:  # refused by the plan, or failing the method's cells with the reason
                    shapes[me.entry.display] = e
                    continue
                name = names.get(id(layer), "?")
                try:
                    shapes[me.entry.display] = (name, layer_output_spatial(built, layer, bundle.in_channels,
                                                                           bundle.spatial, name))
                except PlanError as e:
                    raise PlanError(f"{self.suite.at(me.entry.line)}: method {me.entry.display!r} on model "
                                    f"{mo.entry.display!r}: {e}") from None
            found = sorted({(f"{v[0]} ({'x'.join(map(str, v[1]))})") for v in shapes.values()
                            if not isinstance(v, SuiteError)})
            if found:  # the run's header on the terminal: which layer the CAM methods explain
                progress.say(f"{ds.entry.display} × {mo.entry.display}: CAM layer {', '.join(found)}")
            self._cam_shapes[key] = shapes
        return self._cam_shapes[key]

    def _check_cam_layers(self, ds: Resolved, mo: Resolved) -> None:
        """Refuse, before any training, a CAM layer too coarse to localize (``allow_small_cam`` accepts it)."""
        measured = self.cam_layers(ds, mo)
        for me in self.methods:
            found = measured.get(me.entry.display)
            if found is None or me.entry.allow_small_cam:
                continue
            if isinstance(found, SuiteError):
                raise found
            bundle = self.bundle(ds)
            suggestion = None if cam_size_ok(found[1]) else suggested_layer(self._inspected(ds, mo),
                                                                            bundle.in_channels, bundle.spatial)
            check_cam_layer(found[0], found[1], bundle.spatial, f"{self.suite.at(me.entry.line)}",
                            me.entry.display, mo.entry.display, suggestion)

    def header(self, cells: list[Cell]) -> dict[str, Any]:
        """Provenance shown above the leaderboard; nothing in it changes between identical runs."""
        datasets = {}
        for ds in self.datasets:
            if self.unavailable(ds) is not None:
                continue
            bundle = self.bundle(ds)
            samples = self.bundles.evaluated(ds)
            counts = np.bincount(samples.y.numpy(), minlength=bundle.num_classes)
            datasets[ds.entry.display] = {
                "plugin": ds.spec.name,
                "fingerprint": self.bundles.fingerprint(ds),
                "modality": bundle.modality,
                "shape": list(bundle.test.x.shape[1:]),
                "classes": {c: int(k) for c, k in zip(bundle.class_names, counts)},
                "masks": None if samples.masks is None else int(samples.masks.reshape(len(samples), -1).any(1).sum()),
                "samples": len(samples),
                "split_sizes": [len(bundle.train), len(bundle.val), len(bundle.test)],
                "notes": bundle.notes,
                "citation": ds.spec.citation,
                **({"fold": [ds.entry.fold, self.suite.folds], "source": ds.entry.source} if ds.entry.fold else {}),
            }
        return {
            "suite": self.suite.name,
            "description": self.suite.description,
            "seed": self.suite.seed,
            "samples": self.suite.samples if self.options.limit is None else min(self.suite.samples, self.options.limit),
            "target": self.suite.target,
            "device": self.device.type,
            # torch without its local build label (+cpu, +cu130): the CPU kernels, and so the scores, are the
            # same in both builds, and the leaderboard workflow's CPU build must render identical files
            "versions": {"xaibench": __version__, "torch": torch.__version__.split("+")[0],
                         "python": platform.python_version(), **environment.library_versions()},
            # what else could change the numbers: the CPU's kernels, and the threads each model was trained on
            "cpu": environment.cpu_kernels(),
            "training_threads": environment.training_threads(
                {mo.entry.display: recipe_with(mo.spec.recipe, mo.entry.train).threads
                 for mo in self.models if not mo.entry.checkpoint}),
            "plugins": self.harness.plugin_versions(),
            "datasets": datasets,
            "metrics": {mt.entry.display: {"category": mt.spec.category, "higher_is_better": mt.spec.higher_is_better,
                                           "citation": mt.spec.citation,
                                           "description": mt.spec.describe(mt.params) if mt.spec.describe
                                           else mt.spec.description,
                                           "params": {**mt.params, **{  # paired: each cell takes its method's
                                               p.param: f"the method's {' or '.join(p.method_params)}"
                                               + ("" if p.implied is None else f" ({p.implied} if it has none)")
                                               for p in mt.spec.pairs if p.param not in mt.entry.params}},
                                           "undefined": mt.spec.undefined,
                                           "bounds": list(mt.spec.bounds)}
                        for mt in self.metrics},
            "methods": {me.entry.display: {"plugin": me.spec.name, "params": me.params,
                                           "citation": me.spec.citation} for me in self.methods},
            "meta_evaluation": self.suite.meta_evaluation,
            **calibration_facts(self),
        }

    # -- execution ----------------------------------------------------------------------------
    def train_models(self, summary: RunSummary | None = None) -> list[tuple[str, str, dict[str, Any]]]:
        """Train (or load from the cache or a checkpoint) every dataset x model of the suite: ``xaibench train``.

        Returns ``(dataset, model, test evaluation)`` per pair; the same path ``run()`` uses.
        """
        self.plan()  # refuses impossible dataset x model pairs before any training
        summary = summary or RunSummary()
        out = []
        before = self.trainer.trained
        for ds in (d for d in self.datasets if self.unavailable(d) is None):
            for mo in (m for m in self.models if self.fits(ds, m)):
                self.trainer.prepare(ds, mo)
                out.append((ds.entry.display, mo.entry.display, self.store.model_evaluation(self.model_key(ds, mo)) or {}))
        summary.models_trained += self.trainer.trained - before
        return out

    def run(self, cells: list[Cell] | None = None, on_cell: Callable[[str], None] | None = None) -> RunSummary:
        """Compute every unfinished cell and store each one as it finishes.

        The work is cut into groups of one dataset x model x method (the saliency maps
        are computed once per group and shared by its metrics). The local executor runs
        them in this process; ``--workers N`` and ``--executor ray`` run them elsewhere
        (:mod:`xaibench.running.executors`), but only this process writes the store.
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
            meta_evaluate(self, runnable)  # the suite's `meta_evaluation` perturbations (xaibench.running.metarun)
            return summary
        groups: dict[tuple[str, str, str], list[Cell]] = {}
        for c in todo:
            groups.setdefault((c.dataset.entry.display, c.model.entry.display, c.method.entry.display), []).append(c)
        by_key = {c.row.cell_key: c for c in todo}
        before = self.trainer.trained
        for c in {(c.dataset.entry.display, c.model.entry.display): c for c in todo}.values():
            self.trainer.prepare(c.dataset, c.model)  # trained before the bar: its ETA counts cells only
        bar = progress.cells(len(todo), self.suite.name, self.options.progress)
        try:
            for cell_key_, result, values, maps_computed in self._outcomes(list(groups.values())):
                summary.maps_computed += maps_computed
                c = by_key[cell_key_]
                self.store.put_cell(result, self.bundles.evaluated(c.dataset).ids if values is not None else (),
                                    values if values is not None else ())
                bar.update(1)
                if on_cell is not None:
                    on_cell(cell_key_)
                if result.status == "ok":
                    summary.computed += 1
                    continue
                summary.failed.append(f"{c.row.dataset} / {c.row.model} / {c.row.method} / {c.row.metric}: "
                                      f"{(result.error or '').splitlines()[0]}")
                if self.options.fail_fast:
                    break
        finally:
            bar.close()
            summary.models_trained += self.trainer.trained - before
        if not (summary.failed and self.options.fail_fast):
            meta_evaluate(self, runnable)
        return summary

    def _outcomes(self, groups: list[list[Cell]]) -> Iterator[Outcome]:
        """Outcomes of every group, from this process or from the chosen executor."""
        if self.options.executor != "local" or self.options.workers > 1:
            yield from remote_outcomes(self.execution, groups)
            return
        contexts: dict[tuple[str, str], GroupContext] = {}
        for group in groups:
            first = group[0]
            pair = (first.dataset.entry.display, first.model.entry.display)
            if pair not in contexts:
                contexts.clear()  # one model in memory at a time
                model = self.trainer.load(first.dataset, first.model)
                contexts[pair] = self.execution.group_context(first.dataset, first.model, model)
            yield from self.execution.execute_group(contexts[pair], group)

    # -- inspection: what figures and `xaibench explain` show is what the run scores ---------------
    def evaluated_samples(self, ds: Resolved) -> Samples:
        """The test samples the run scores for dataset ``ds``."""
        return self.bundles.evaluated(ds)

    def trained_model(self, ds: Resolved, mo: Resolved) -> nn.Module:
        """The model the run scores, from its cached checkpoint (trained and cached first if absent)."""
        return self.trainer.load(ds, mo)

    def group_context(self, ds: Resolved, mo: Resolved, samples: Samples | None = None) -> GroupContext:
        """The trained model of ``mo`` on ``ds`` with its unperturbed pass and targets for ``samples``
        (default: the evaluated ones; figures and ``xaibench explain`` pass subsets)."""
        return self.execution.group_context(ds, mo, self.trained_model(ds, mo), samples)

    def method_skip(self, ds: Resolved, mo: Resolved, me: Resolved) -> str | None:
        """Why the plan skips method ``me`` on ``mo`` x ``ds``: the plan's rules (modality, masks, model
        capabilities), then whether the method's rules cover the model (``MethodSpec.covers``), else None."""
        return method_skip(ds, self.bundle(ds), mo, me) or self.uncovered(ds, mo, me)

    def _check_target(self, ds: Resolved, mo: Resolved) -> None:
        """:class:`PlanError` before anything trains: a region target on a classifier, ``label`` on a segmenter."""
        segmenter = dense(self._inspected(ds, mo))
        try:
            model_target(self.suite.target, segmenter, mo.entry.display)
        except XaibenchError as e:
            where = f"{self.suite.at(mo.entry.line)}: {mo.entry.display!r} is a segmenter: " if segmenter else ""
            raise PlanError(f"{where}{e}") from None

    def task_skip(self, ds: Resolved, mo: Resolved, mt: Resolved) -> str | None:
        """``not applicable`` for a metric of segmentation models (``"segmentation"`` in its needs) on a
        classifier, else None (the suite's target is checked by the plan, before anything trains)."""
        if "segmentation" in mt.spec.needs and not dense(self._inspected(ds, mo)):
            return (f"not applicable: metric {mt.entry.display!r} needs a segmentation model; model "
                    f"{mo.entry.display!r} returns (N, K) class scores")
        return None

    def uncovered(self, ds: Resolved, mo: Resolved, me: Resolved) -> str | None:
        """``not applicable: <reason>`` where ``me``'s rules do not cover ``mo`` as built for ``ds``
        (``MethodSpec.covers`` on an untrained instance: layers and nonlinearities do not depend on weights)."""
        if me.spec.covers is None:
            return None
        key = (ds.entry.display, mo.entry.display, me.entry.display)
        if key not in self._coverage:
            reason = me.spec.covers(self._inspected(ds, mo))
            self._coverage[key] = None if reason is None else f"not applicable: {reason}"
        return self._coverage[key]

    def _inspected(self, ds: Resolved, mo: Resolved) -> nn.Module:
        """An untrained ``mo`` for ``ds``, built once for the plan's checks of this pair (one pair kept at a time)."""
        pair = (ds.entry.display, mo.entry.display)
        if self._built[0] != pair:
            self._built = (pair, self.build_model(ds, mo))
        return self._built[1]

    def metric_curves(self, g: GroupContext, me: Resolved, mt: Resolved, maps: np.ndarray) -> np.ndarray:
        """The curves behind metric ``mt``'s scores of ``me``'s ``maps`` on ``g.samples`` (``mt.spec.curve``),
        ``(N, S)``: the suite's parameters and the run's random draws, so the figures draw what the table scores."""
        row = PlanRow(cell_key(g.model_key, me, mt, g.samples.ids, self.suite, self.settings.numerics),
                      g.dataset.entry.display, g.model_entry.entry.display, g.model_key, me.entry.display,
                      mt.entry.display, mt.spec.category, mt.spec.higher_is_better, None)
        return self.execution.curves(g, Cell(row, g.dataset, g.model_entry, me, mt), maps)

    def cached_maps(self, g: GroupContext, me: Resolved) -> np.ndarray:
        """``me``'s maps of ``g.samples`` from the saliency cache (computed and cached if absent).

        Raises :class:`CellError` with the method's failure when it cannot explain them.
        """
        maps, error, _ = self.execution.maps(g, me)
        if maps is None:
            raise CellError(error or "")
        return maps
