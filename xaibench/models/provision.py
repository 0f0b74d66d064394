"""Models of a run: built with seeded weights, trained or loaded, cached by content key.

A model's key names everything its weights depend on (spec, parameters, recipe,
checkpoint digest, dataset fingerprint, seed), so the same suite trains the same
model on a fresh machine and a re-run loads it from ``<home>/models``. Variants
(a model trained by another protocol, such as Adebayo et al.'s label-randomized
twin) are declared by the plugin that needs them (:class:`~xaibench.contract.specs.ModelVariant`)
and cached here like any model.
"""
from __future__ import annotations

import time
from pathlib import Path

import torch
from torch import nn

from xaibench.base import progress

from xaibench.models import pretrained, transfer
from xaibench.data.bundles import Bundles
from xaibench.suites.byom import output_form
from xaibench.storage.cache import content_key, file_digest, load_checkpoint, save_checkpoint
from xaibench.base.errors import SuiteError, XaibenchError
from xaibench.models.gate import verdict
from xaibench.suites.options import Settings
from xaibench.contract.outputs import CONTRACT_VERSION, conform, dense, unwrap
from xaibench.suites.plan import Resolved
from xaibench.contract.published import PretrainedWeights
from xaibench.contract.specs import ModelSpec, ModelVariant
from xaibench.scoring.stats import seed_from
from xaibench.storage.store import Store
from xaibench.models.segtraining import SEGMENT_CLASSES, SEGMENTATION, evaluate_segmentation
from xaibench.models.training import evaluate, recipe_with, train


class Models:
    """Builds, trains, loads and caches the models of one run; ``store`` (None in workers) records evaluations."""

    def __init__(self, settings: Settings, bundles: Bundles, store: Store | None) -> None:
        self.settings = settings
        self.bundles = bundles
        self.store = store
        #: Models trained by this object (not loaded from the cache or a checkpoint), variants included,
        #: and the wall-clock seconds their training took.
        self.trained = 0
        self.training_seconds = 0.0

    def key(self, ds: Resolved, mo: Resolved) -> str:
        """The content key of model ``mo`` trained on dataset ``ds``."""
        spec: ModelSpec = mo.spec
        fingerprint = self.bundles.fingerprint(ds)
        recipe = recipe_with(spec.recipe, mo.entry.train)
        checkpoint = mo.entry.checkpoint
        if checkpoint and Path(checkpoint).exists():
            checkpoint = file_digest(Path(checkpoint))
        start = self._weights(mo)
        return content_key("model", spec.name, spec.version, mo.params, recipe, checkpoint, fingerprint,
                           self.settings.suite.seed, output_form(mo.entry), self.settings.numerics,
                           *([{"weights": mo.entry.weights, "file": pretrained.file_name(start)[0],
                               "frozen_epochs": recipe.frozen_epochs}] if start else []),
                           *([{"location_supervision": False}] if not recipe.location_supervision else []),
                           *([{"fine_tune_from": self.key(*mo.source)}] if mo.source else []),
                           *([{"output_contract": CONTRACT_VERSION}] if mo.entry.factory else []))

    def _weights(self, mo: Resolved) -> PretrainedWeights | None:
        """The published weights ``mo`` starts from (``weights:``), or None; unknown names refused with file:line."""
        return pretrained.chosen(mo.spec, mo.entry.weights, recipe_with(mo.spec.recipe, mo.entry.train),
                                 f"{self.settings.suite.at(mo.entry.line)}")

    def _pretrain(self, model: nn.Module, mo: Resolved) -> PretrainedWeights | None:
        """Load the published weights the suite names (``weights:``) into ``model`` before training; None if none."""
        start = self._weights(mo)
        if start is not None:
            opts = self.settings.options
            who = f"model {mo.entry.display!r} (weights: {mo.entry.weights})"
            pretrained.initialise(unwrap(model), start, pretrained.locate(start, opts.home, opts.download,
                                                                          opts.mirror, who), who)
        return start

    def build(self, ds: Resolved, mo: Resolved) -> nn.Module:
        """An untrained model of ``mo`` shaped for dataset ``ds``.

        Its initial weights are seeded from the model's cache key, so the same suite
        trains the same model on a fresh machine, whatever ran before in the process.
        """
        bundle = self.bundles.bundle(ds)
        try:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed_from(self.settings.suite.seed, self.key(ds, mo), "init"))
                built = mo.spec.build(num_classes=self.classes(ds, mo), in_channels=bundle.in_channels,
                                      modality=bundle.modality, **dict(mo.entry.params))
        except TypeError as exc:
            raise SuiteError(f"{self.settings.suite.at(mo.entry.line)}: model {mo.entry.display!r}: {exc}") from None
        return conform(built, num_classes=self.classes(ds, mo), in_channels=bundle.in_channels, spatial=bundle.spatial,
                       form=output_form(mo.entry), who=f"model {mo.entry.display!r} on {ds.entry.display!r}")

    def classes(self, ds: Resolved, mo: Resolved) -> int:
        """The classes ``mo`` is built with: the dataset's, or for a segmenter (``"segmentation"`` in
        ``ModelSpec.provides``) two per pixel, background and lesion (:data:`~xaibench.models.segtraining.SEGMENT_CLASSES`)."""
        if "segmentation" in mo.spec.provides:
            return len(SEGMENT_CLASSES)
        return self.bundles.bundle(ds).num_classes

    def _checkpoint(self, mo: Resolved, model_key: str) -> Path:
        """Where the trained weights are: the user's checkpoint, or the cache's file for ``model_key``."""
        return Path(mo.entry.checkpoint) if mo.entry.checkpoint else self.settings.options.home / "models" / f"{model_key}.pt"

    def prepare(self, ds: Resolved, mo: Resolved) -> None:
        """Train (when not cached) and evaluate (when the store has no evaluation) model ``mo`` on ``ds``,
        without loading it when both are already done: a run readies its models before its cells."""
        model_key = self.key(ds, mo)
        if self._checkpoint(mo, model_key).exists() and (
                self.store is None or self.store.model_evaluation(model_key) is not None):
            return
        self.load(ds, mo)

    def load(self, ds: Resolved, mo: Resolved) -> nn.Module:
        """The trained model in eval mode on the run's device: the user's checkpoint, the cache, or trained now."""
        bundle = self.bundles.bundle(ds)
        device = self.settings.device
        model_key = self.key(ds, mo)
        model = self.build(ds, mo)
        what = f"model {mo.entry.display!r} on {ds.entry.display!r}"
        path = self._checkpoint(mo, model_key)
        if not mo.entry.checkpoint:
            if not path.exists():
                recipe = recipe_with(mo.spec.recipe, mo.entry.train)
                start = self._initialise(model, ds, mo)
                started = time.perf_counter()
                progress.say(f"training {what} ({recipe.epochs} epochs max"
                             f"{f', from {mo.entry.weights} weights' if start else ''}) ...")
                objective = SEGMENTATION if dense(model) else None
                on_epoch = progress.epochs(mo.entry.display, objective.name if objective else "accuracy") \
                    if self.settings.options.progress else None
                seed = seed_from(self.settings.suite.seed, model_key)
                if start is None:
                    train(model, bundle.train, bundle.val, recipe, seed, device, on_epoch=on_epoch, objective=objective)
                else:
                    pretrained.fine_tune(unwrap(model), model, start, bundle.train, bundle.val, recipe, seed, device,
                                         on_epoch)
                save_checkpoint(model, path)
                self.trained += 1
                self.training_seconds += time.perf_counter() - started
        load_checkpoint(model, path, what)
        model.to(device).eval()
        if self.store is not None and self.store.model_evaluation(model_key) is None:
            evaluation = (evaluate_segmentation(model, bundle.test, device,
                                                seed_from(self.settings.suite.seed, model_key, "evaluation"))
                          if dense(model) else evaluate(model, bundle.test, device, bundle.class_names))
            evaluation.update(gate=verdict(evaluation), numerics=self.settings.numerics)  # the model gate
            if evaluation["gate"]["reason"]:
                progress.say(f"{what}: {evaluation['gate']['reason']}")
            self.store.put_model(model_key, ds.entry.display, mo.entry.display, file_digest(path), evaluation,
                                 {"checkpoint": str(path), "params": dict(mo.entry.params),
                                  "train": dict(mo.entry.train), "torch": torch.__version__})
        return model

    def _initialise(self, model: nn.Module, ds: Resolved, mo: Resolved) -> PretrainedWeights | None:
        """Start ``model`` before its training: the published weights (``weights:``), then its training on the
        ``fine_tune_from`` dataset; returns the published weights, or None."""
        start = self._pretrain(model, mo)
        if mo.source:
            self._from_source(model, ds, mo)
        return start

    def _from_source(self, model: nn.Module, ds: Resolved, mo: Resolved) -> None:
        """Start ``model`` from ``mo`` trained on its ``fine_tune_from`` dataset (trained and cached first if absent)."""
        source_ds, source_mo = mo.source
        bundle, source_bundle = self.bundles.bundle(ds), self.bundles.bundle(source_ds)
        who = f"{self.settings.suite.at(mo.entry.line)}: model {mo.entry.display!r} fine_tune_from " \
              f"{source_ds.entry.name!r}"
        if source_bundle.modality != bundle.modality:
            raise XaibenchError(f"{who}: the source is {source_bundle.modality} data and {ds.entry.display!r} is "
                                f"{bundle.modality} data; use a source of the same modality")
        try:
            source = self.load(source_ds, source_mo)
        except XaibenchError as exc:
            raise XaibenchError(f"{who}: {exc}") from None
        probe = mo.spec.build(num_classes=bundle.num_classes + 1, in_channels=bundle.in_channels,
                              modality=bundle.modality, **dict(mo.entry.params))
        head = transfer.class_dependent(unwrap(model), probe)
        fresh = transfer.initialise(unwrap(model), unwrap(source), head,
                                    source_bundle.num_classes == bundle.num_classes, who)
        renewed = f" (new: {', '.join(fresh)})" if fresh else ""
        progress.say(f"model {mo.entry.display!r} starts from its training on {source_ds.entry.name!r}{renewed}")

    def variant(self, ds: Resolved, mo: Resolved, variant: ModelVariant) -> nn.Module:
        """``mo`` built like the real model and fitted by ``variant``'s protocol, cached by its own key.

        The key is ``content_key(variant.name, model key)``; the fit gets the model's
        recipe (with the suite's overrides) and a seed derived from that key.
        """
        bundle = self.bundles.bundle(ds)
        key = content_key(variant.name, self.key(ds, mo))
        path = self.settings.options.home / "models" / f"{key}.pt"
        model = self.build(ds, mo)
        if not path.exists():
            self._initialise(model, ds, mo)
            progress.say(f"training {mo.entry.display!r} on {ds.entry.display!r}: {variant.name} variant ...")
            start = time.perf_counter()
            variant.fit(model, bundle, recipe_with(mo.spec.recipe, mo.entry.train),
                        seed_from(self.settings.suite.seed, key), self.settings.device)
            save_checkpoint(model, path)
            self.trained += 1
            self.training_seconds += time.perf_counter() - start
        load_checkpoint(model, path, f"{variant.name} model {mo.entry.display!r}")
        return model.to(self.settings.device).eval()
