"""Frozen specs: what a plugin registers, and the data types that flow between layers.

Every plugin kind is described by one frozen dataclass that carries the callable
doing the work *and* the metadata the runner needs to plan a run before anything
expensive happens (modalities, whether masks are needed, the better direction).
Keeping metadata on the spec, not on a class hierarchy, means a plugin is one
function plus one ``register(Spec(...))`` call.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Hashable, Mapping

import numpy as np
import torch
from torch import nn

#: Modalities the harness knows: images ``(N, C, H, W)`` and signals ``(N, C, L)``.
MODALITIES = ("image", "signal")


@dataclass(frozen=True)
class Samples:
    """One split of a dataset, held in memory as tensors.

    ``x`` is float32 ``(N, C, *spatial)`` with values as the model consumes them;
    ``masks`` (bool) and ``regions`` (int8 levels, higher = more relevant) are
    ``(N, *spatial)`` or ``None``; ``ids`` are stable across runs and machines.
    """

    x: torch.Tensor
    y: torch.Tensor
    ids: tuple[str, ...]
    masks: torch.Tensor | None = None
    regions: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.ids)

    def subset(self, index: slice | list[int] | np.ndarray) -> "Samples":
        idx = index if isinstance(index, slice) else torch.as_tensor(np.asarray(index), dtype=torch.long)
        ids = np.asarray(self.ids, dtype=object)[index if isinstance(index, slice) else np.asarray(index)]
        return Samples(
            x=self.x[idx],
            y=self.y[idx],
            ids=tuple(ids.tolist()),
            masks=None if self.masks is None else self.masks[idx],
            regions=None if self.regions is None else self.regions[idx],
        )


@dataclass(frozen=True)
class DataBundle:
    """What a dataset plugin returns: train/val/test splits plus descriptive metadata."""

    train: Samples
    val: Samples
    test: Samples
    class_names: tuple[str, ...]
    modality: str
    #: Level of ``regions`` that counts as "fully relevant" (graded hit rate normaliser).
    region_top_level: int | None = None
    #: Free-form notes shown in the leaderboard header (source, licence, caveats).
    notes: str = ""

    @property
    def in_channels(self) -> int:
        return int(self.train.x.shape[1])

    @property
    def spatial(self) -> tuple[int, ...]:
        return tuple(int(s) for s in self.train.x.shape[2:])

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


@dataclass(frozen=True)
class DatasetRequest:
    """Everything a dataset loader may depend on; hashed into the dataset's cache key."""

    params: Mapping[str, Any]
    seed: int
    image_size: int | None
    data_root: str | None
    #: The user passed ``--download``: a loader may fetch a missing public release into the
    #: data root, checksum-verified (:mod:`xaibench.download`). Never hashed: it does not change the data.
    download: bool = False
    #: ``--mirror``: a base URL serving the release files under their own names.
    mirror: str | None = None


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    load: Callable[[DatasetRequest], DataBundle]
    modality: str
    has_masks: bool
    description: str
    citation: str = ""
    version: str = "1"
    has_regions: bool = False
    #: The data is a pure function of the request (generated, or bundled with a package):
    #: the runner caches the loaded bundle, keyed by the request and ``version``.
    deterministic: bool = False


@dataclass(frozen=True)
class TrainRecipe:
    """Defaults for the harness's trainer; a suite may override any field."""

    epochs: int = 10
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 1e-4
    #: Augmentations the trainer applies: "hflip", "vflip", "rot90", "rotate" (small angles) (images)
    #: or "shift" (signals).
    augment: tuple[str, ...] = ()
    #: Stop when validation accuracy (ties broken by validation loss) has not improved for this many
    #: epochs (0 = never) ...
    patience: int = 3
    #: ... but never before this many epochs: a small model first predicts the majority class for a while.
    min_epochs: int = 8


@dataclass(frozen=True)
class ModelSpec:
    """A model builder plus how to find the layer CAM methods should explain."""

    name: str
    build: Callable[..., nn.Module]  # (num_classes, in_channels, modality, **params) -> nn.Module
    modalities: frozenset[str]
    target_layer: Callable[[nn.Module], nn.Module]
    description: str
    recipe: TrainRecipe = field(default_factory=TrainRecipe)
    citation: str = ""
    version: str = "1"
    #: Capabilities beyond classification that methods may require (``MethodSpec.requires_model``),
    #: e.g. "saliency-branch" for a model that outputs its own saliency map.
    provides: frozenset[str] = frozenset()


@dataclass(frozen=True)
class MethodContext:
    """What the runner hands a method besides the batch.

    ``sample_seeds`` gives each sample its own seed, so stochastic methods give
    the same map for a sample whether it is explained alone or inside a batch.
    """

    layer: nn.Module | None
    batch_size: int
    sample_seeds: tuple[int, ...]
    #: Per-channel mean of the training inputs (for "mean" fills and baselines).
    data_mean: torch.Tensor | None = None
    #: Ground-truth masks for the calibration baseline that returns them; else None.
    masks: torch.Tensor | None = None


@dataclass(frozen=True)
class MethodSpec:
    """A saliency method: ``explain(model, x, target, ctx, **params) -> (N, *spatial)``."""

    name: str
    explain: Callable[..., torch.Tensor]
    modalities: frozenset[str]
    description: str
    citation: str = ""
    version: str = "1"
    needs_gradients: bool = True
    takes_layer: bool = False
    #: Needs ground-truth masks (the oracle baseline); refused on datasets without them.
    requires_mask: bool = False
    #: Model capabilities it needs (``ModelSpec.provides``); its cells on other models are skipped with a reason.
    requires_model: frozenset[str] = frozenset()
    #: Default parameters, merged under the suite's parameters.
    defaults: Mapping[str, Any] = field(default_factory=dict)


#: Metric categories, in the order the leaderboard shows them.
METRIC_CATEGORIES = ("faithfulness", "localization", "randomization", "complexity")


def _unshared(key: Hashable, compute: Callable[[], Any]) -> Any:
    return compute()


@dataclass(frozen=True)
class MetricContext:
    """What a metric may use besides the batch: the engine and the unperturbed outputs."""

    engine: Any  # xaibench.engine.Engine; typed loosely to keep specs import-light
    base_logits: torch.Tensor  # (N, K) logits of the unperturbed inputs
    seed: int
    data_mean: torch.Tensor | None = None
    region_top_level: int | None = None
    #: A fresh copy of the trained model (randomization metrics perturb copies).
    model_factory: Callable[[], nn.Module] | None = None
    #: The cell's method applied to the cell's samples for another model: (model) -> (N, *spatial).
    explain: Callable[[nn.Module], torch.Tensor] | None = None
    #: The same architecture and recipe trained on permuted training labels (cached like any
    #: model): Adebayo et al.'s data randomization test compares the method's maps on both.
    label_randomized_model: Callable[[], nn.Module] | None = None
    #: ``shared(key, compute)``: ``compute()``, run once per key for these maps and reused by the
    #: other metrics of the same method (the fused mask kernel gives several scores in one pass).
    #: The key must name everything the result depends on besides the maps, masks and inputs.
    shared: Callable[[Hashable, Callable[[], Any]], Any] = _unshared


@dataclass(frozen=True)
class MetricSpec:
    """A metric: ``score(ctx, x, target, saliency, masks, regions, **params) -> (N,) float``.

    Stateless: everything it needs arrives as arguments. NaN marks a sample where the
    metric is undefined (a hit rate on an empty mask); the runner excludes NaNs from
    the mean and reports how many samples counted.
    """

    name: str
    score: Callable[..., np.ndarray]
    category: str
    higher_is_better: bool
    description: str
    citation: str = ""
    version: str = "1"
    requires_mask: bool = False
    requires_region: bool = False
    modalities: frozenset[str] = frozenset(MODALITIES)
    defaults: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SuiteSource:
    """A built-in suite: a name and the YAML file shipped as package data."""

    name: str
    path: str
    description: str = ""
