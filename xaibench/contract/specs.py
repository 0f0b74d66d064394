"""Frozen specs: what a plugin registers, and the data types that flow between layers.

Every plugin kind is described by one frozen dataclass that carries the callable
doing the work *and* the metadata the runner needs to plan a run before anything
expensive happens (modalities, whether masks are needed, the better direction).
Keeping metadata on the spec, not on a class hierarchy, means a plugin is one
function plus one ``register(Spec(...))`` call.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping

import numpy as np

from xaibench.contract.lazy import Lazy, resolved
# What a metric receives lives in xaibench.contract.metric_inputs; plugins may import it from here, the public facade.
from xaibench.contract.metric_inputs import (  # noqa: F401
    METRIC_NEEDS, MetricBatch, MetricContext, Shared, metric_arguments, unshared)
from xaibench.contract.published import PretrainedWeights
# The data a dataset plugin returns lives in xaibench.contract.samples; plugins may import it from here, the public facade.
from xaibench.contract.samples import DataBundle, Samples  # noqa: F401

if TYPE_CHECKING:  # torch loads on first use, not to register specs (xaibench.contract.lazy)
    import torch
    from torch import nn

#: Modalities the harness knows: images ``(N, C, H, W)``, signals ``(N, C, L)`` and volumes
#: ``(N, C, D, H, W)`` (CT/MRI; depth first, as ``torch.nn.Conv3d`` reads them). Maps drop ``C``.
MODALITIES = ("image", "signal", "volume")
#: The inputs' number of dimensions per modality, batch and channel axes included.
MODALITY_DIMS = {"signal": 3, "image": 4, "volume": 5}
#: The input layout per modality, as error messages name it.
MODALITY_SHAPES = {"signal": "(N, C, L)", "image": "(N, C, H, W)", "volume": "(N, C, D, H, W)"}
#: What a metric that declares no modalities supports: volumes are opt-in, since a metric's
#: neighbourhoods (patches, stencils, tolerances, SSIM windows) must each be checked in 3D.
PLANAR = frozenset({"image", "signal"})


@dataclass(frozen=True)
class DatasetRequest:
    """Everything a dataset loader may depend on; hashed into the dataset's cache key."""

    params: Mapping[str, Any]
    seed: int
    image_size: int | None
    data_root: str | None
    #: The user passed ``--download``: a loader may fetch a missing public release into the
    #: data root, checksum-verified (:mod:`xaibench.data.download`). Never hashed: it does not change the data.
    download: bool = False
    #: ``--mirror``: a base URL serving the release files under their own names.
    mirror: str | None = None


@dataclass(frozen=True)
class DatasetSpec:
    """A dataset plugin: ``load(request) -> DataBundle`` plus what the planner needs before loading.

    ``modality`` is one of :data:`MODALITIES`; ``has_masks`` / ``has_regions`` say whether the
    test split carries lesion masks / graded region maps; ``deterministic`` lets the runner cache the
    loaded bundle keyed by the request and ``version``.
    """

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


#: What a suite model entry may declare with ``output:`` (how :mod:`xaibench.contract.outputs` reads the model's output).
OUTPUT_FORMS = ("logits", "probabilities")
#: The augmentations the harness's trainer knows (``TrainRecipe.augment``).
AUGMENTATIONS = ("hflip", "vflip", "rot90", "rotate", "shift")


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
    #: With a suite's ``weights:``, first train only the new head this many epochs (backbone frozen). Not in
    #: the repr, so other recipes' cache keys are unchanged; the model key names it when weights are used.
    frozen_epochs: int = field(default=0, repr=False)
    #: A model that defines ``training_loss(x, y, masks)`` is trained with the split's masks (location
    #: supervision, seed 002); False trains it on the labels alone with cross-entropy and never reads the masks
    #: (the target stage of ``fine_tune_from``, and the unsupervised control). Not in the repr (cache keys
    #: unchanged); the model key names it when False.
    location_supervision: bool = field(default=True, repr=False)
    #: Torch threads the trainer uses on a CPU (the user's count is restored afterwards). 1 makes the trained
    #: weights independent of the machine's thread count (2 threads trained other weights than 1: their
    #: gradients are summed in another order); 0 trains on the thread count the user set (faster on many cores,
    #: but the weights, and so the board, then depend on it). In the cache key, like every field in the repr.
    threads: int = 1


#: The defaults of the segmenters' recipes (Dice + cross-entropy, :mod:`xaibench.models.segtraining`): early stopping on
#: validation Dice, which a segmenter improves from its first epochs (no majority-class plateau to wait out).
SEGMENTATION_RECIPE = TrainRecipe(epochs=20, batch_size=16, lr=2e-3, augment=("hflip",), patience=4, min_epochs=4)


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
    #: Published weights by name (a suite model's ``weights: imagenet``): ``((name, PretrainedWeights), ...)``.
    weights: tuple[tuple[str, PretrainedWeights], ...] = ()


#: What a method may declare in ``MethodSpec.needs`` beyond what every method gets.
METHOD_NEEDS = {
    "masks": "the batch's ground-truth masks (N, *spatial) bool as MethodContext.masks; the method is "
             "skipped on datasets without masks (the calibration baseline that returns them)",
}


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
    #: Ground-truth masks ``(N, *spatial)``, only for a method that declares ``"masks"`` in its needs; else None.
    masks: torch.Tensor | None = None
    #: Batch of the engine's forward passes (the runner's engine batch: 16 on a CPU, timed on CUDA, by
    #: :func:`xaibench.scoring.throughput.engine_batch_size`, or ``--batch-size``); None: ``batch_size``. Read it as
    #: :attr:`pass_batch`.
    engine_batch: int | None = None

    @property
    def pass_batch(self) -> int:
        """Inputs per pass of a method that makes many (RISE, Score-CAM, occlusion, integrated gradients' steps,
        a noise tunnel's noisy copies), across its samples."""
        return self.engine_batch or self.batch_size


def _check_needs(kind: str, name: str, needs: frozenset[str], known: Mapping[str, str],
                 call: Callable[..., Any] | None) -> None:
    unknown = sorted(set(needs) - set(known))
    if unknown:
        raise ValueError(f"{kind} {name!r} needs {', '.join(map(repr, unknown))}; a {kind} may need "
                         f"{', '.join(sorted(known))}")
    if call is None or (isinstance(call, Lazy) and not call.loaded):
        return  # a lazy function is checked when the runner validates a suite (MetricSpec.check_score)
    try:
        parameters = inspect.signature(call).parameters
    except (TypeError, ValueError):  # builtins and some C callables have no signature: nothing to check
        return
    if any(p.kind is p.VAR_KEYWORD for p in parameters.values()):
        return
    missing = sorted(n for n in needs if n not in parameters)
    if missing:
        raise ValueError(f"{kind} {name!r} declares needs {', '.join(map(repr, missing))} that its function "
                         "does not take as keyword parameters")


#: Smallest map a CAM layer may give, per spatial axis: the plan and :func:`xaibench.explain` refuse a coarser
#: layer before anything runs (unless ``allow_small_cam``), and the calibration verdict flags one so accepted.
MIN_CAM_SIZE = 4


def cam_size_ok(size: Any) -> bool:
    """Whether a CAM layer's map of spatial shape ``size`` (a sequence of ints) has at least :data:`MIN_CAM_SIZE`
    units on every axis (an empty shape, a layer that never ran, does not)."""
    return bool(size) and min(size) >= MIN_CAM_SIZE


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
    #: What it needs beyond the batch and the common context (keys of :data:`METHOD_NEEDS`).
    needs: frozenset[str] = frozenset()
    #: Model capabilities it needs (``ModelSpec.provides``); its cells on other models are skipped with a reason.
    requires_model: frozenset[str] = frozenset()
    #: Default parameters, merged under the suite's parameters.
    defaults: Mapping[str, Any] = field(default_factory=dict)
    #: A calibration baseline's role, checked by each leaderboard section's verdict
    #: (:mod:`xaibench.leaderboard.verdict`): ``"chance"`` (a uniformly random map), ``"oracle"`` (the
    #: annotated mask itself), ``"centre-bias"`` (a fixed central bump), or ``""`` for a real method. A method
    #: with a role is a reference in every leaderboard table, never ranked and never a winner.
    calibration: str = ""
    #: Its maps (with the default parameters) are additive attributions in the model output's units, whose
    #: sums over pixels compare with output changes (integrated gradients, DeepLIFT, SHAP, occlusion spread per
    #: pixel); a CAM or a gradient magnitude is not. Metrics with ``requires_additive`` show its cells as
    #: "not applicable" (not scored, not ranked).
    additive: bool = False
    #: ``covers(model) -> reason | None``: None where the method's rules are defined for every layer and
    #: nonlinearity of ``model`` (an untrained instance, built as the suite builds it, output contract applied),
    #: else one line saying what they do not cover ("guided backpropagation modifies ReLU gradients; this network
    #: uses ReLU6"). The plan marks the method's cells on such a model not applicable with that reason, before any
    #: training, so no other method's map is ever scored under this method's name. None: every model.
    covers: Callable[[nn.Module], str | None] | None = None
    #: What its maps are checked against: the peer library call or the identity worked by hand, and the test that
    #: does it (``"captum NoiseTunnel(Saliency), same draws: tests/test_methods_noise.py::test_smoothgrad"``).
    checked_against: str = ""
    #: A sample's map depends on its own input, target and seed only (the conformance kit checks it), so a metric's
    #: re-explanations (robustness draws, sMPRT noise, continuity shifts) fill calls across copies. False: one copy
    #: per call, grouped as the maps' own calls, and the kit skips its alone-vs-batch check.
    batch_invariant: bool = True
    #: ``check(params)``: raise ``ValueError`` or ``TypeError`` with one line saying what to change where a
    #: parameter's value lies outside what the method is defined for; ``params`` are the defaults with the
    #: suite's (or the Python call's) values over them. The runner calls it before anything runs, and the error
    #: starts with the suite's ``file:line``. None: the values are checked when the method runs.
    check: Callable[[Mapping[str, Any]], None] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "needs", frozenset(self.needs))
        _check_needs("method", self.name, self.needs, METHOD_NEEDS, None)

    @property
    def requires_mask(self) -> bool:
        """It needs ground-truth masks, so it is refused on datasets without them."""
        return "masks" in self.needs


#: Metric categories, in the order the leaderboard shows them.
METRIC_CATEGORIES = ("faithfulness", "robustness", "localization", "randomization", "complexity", "axiomatic")


@dataclass(frozen=True)
class ModelVariant:
    """A model derived from a suite's model by another training protocol, declared by the metric that needs it.

    ``fit(model, bundle, recipe, seed, device)`` trains the freshly built (seeded)
    ``model`` in place on ``bundle`` with the suite's ``recipe``; the runner caches
    the result under ``content_key(name, model key)`` and ``seed`` derives from that key.
    """

    name: str
    fit: Callable[..., None]
    description: str = ""


@dataclass(frozen=True)
class Pairing:
    """A metric parameter ``param`` that must equal the method's (``method_params``: the method parameters holding
    it, the first present counts, else ``implied`` if not None; ``values``: what the metric can take; ``why``: what
    is paired, in words), as completeness ``sum(a) = f(x) - f(b)`` holds only for the method's own baseline ``b``.
    Applied by :func:`xaibench.suites.plan.metric_params` and :func:`xaibench.suites.plan.pairing_conflict`."""

    param: str
    method_params: tuple[str, ...]
    values: tuple[Any, ...]
    why: str
    implied: Any = None


@dataclass(frozen=True)
class MetricSpec:
    """A metric: ``score(**needs, **params) -> (N,) float``, called with exactly what it declares.

    ``needs`` names the :data:`METRIC_NEEDS` it takes (a complexity metric: ``{"maps"}``);
    the runner passes each as the keyword of that name, then the suite's parameters.
    Stateless: everything it needs arrives as arguments. NaN marks a sample where the
    metric is undefined (a hit rate on an empty mask); the runner excludes NaNs from
    the mean and reports how many samples counted.
    """

    name: str
    score: Callable[..., np.ndarray]
    category: str
    higher_is_better: bool
    description: str
    #: What ``score`` takes (keys of :data:`METRIC_NEEDS`), each passed as the keyword of that name.
    needs: frozenset[str] = frozenset({"maps"})
    citation: str = ""
    version: str = "1"
    requires_mask: bool = False
    #: Defined on a bounding-box region too (pointing game, energy pointing game, relevance mass in the box):
    #: scores datasets whose ground truth is boxes; other mask metrics skip them.
    box_ground_truth: bool = False
    requires_region: bool = False
    #: It compares sums of the map with changes of the model's output (completeness, sensitivity-n,
    #: infidelity), so it applies only to methods declaring ``MethodSpec.additive``.
    requires_additive: bool = False
    #: When a sample's score is undefined (NaN) and why, in one line; the leaderboard shows it next to a
    #: cell that is undefined on every sample ("" : the metric never returns NaN, or says so in its description).
    undefined: str = ""
    #: Defaults to :data:`PLANAR`: a metric declares ``"volume"`` once it is checked on volumes.
    modalities: frozenset[str] = PLANAR
    defaults: Mapping[str, Any] = field(default_factory=dict)
    #: Model variants the metric compares against (``needs`` then includes ``"variant"``).
    variants: tuple[ModelVariant, ...] = ()
    #: ``curve(**needs, **params) -> (N, S)``: the per-sample curve whose trapezoid area
    #: (:func:`xaibench.scoring.kernels.auc`) is ``score`` (deletion, insertion); the leaderboard's
    #: curve figures draw exactly it, with the suite's parameters. None: no curve.
    curve: Callable[..., np.ndarray] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "needs", frozenset(self.needs))
        _check_needs("metric", self.name, self.needs, METRIC_NEEDS, self.score)

    def check_score(self) -> None:
        """Raise ``ValueError`` unless ``score`` (imported now if :func:`~xaibench.contract.lazy.lazy`) takes every need."""
        _check_needs("metric", self.name, self.needs, METRIC_NEEDS, resolved(self.score))
    #: ``chance(params)``: what a uniformly random map scores in expectation with these
    #: parameters, as a named level: ``"mask-fraction"`` (the mask's area fraction; Arras et
    #: al. 2022), or None where it is not known in closed form. None: never known.
    chance: Callable[[Mapping[str, Any]], str | None] | None = None
    #: What a map equal to the mask scores on every sample with a non-empty mask (1 for the
    #: pointing game and relevance mass), or None where the oracle has no fixed score.
    oracle: float | None = None
    #: ``(low, high)``: the values a per-sample score cannot pass (None: unbounded on that side), e.g.
    #: ``(0, 1)`` for a hit rate, ``(0, 100)`` for DiC. The leaderboard's meta-evaluation reports the share of
    #: scores exactly at a bound (a metric that saturates cannot tell methods apart).
    bounds: tuple[float | None, float | None] = (None, None)
    #: ``describe(params) -> str``: the description for the effective parameters, where they change what
    #: the metric is (MPRT with ``steps: 1`` randomizes the whole model at once: not a cascade); the
    #: leaderboard's metric table shows it. None: ``description`` whatever the parameters.
    describe: Callable[[Mapping[str, Any]], str] | None = None
    #: The definition in one formula, in the notation of the metric reference (docs), e.g.
    #: ``"DiC = 100 * max(0, p_c(x) - p_c(x * L)) / p_c(x)"``.
    formula: str = ""
    #: What its scores are checked against: the peer library call or the value worked by hand, and the test that
    #: does it (``"Quantus 0.6 PixelFlipping, same inputs: tests/test_peers_quantus.py::test_pixel_flipping"``).
    checked_against: str = ""
    #: Parameters that take the method's value (:class:`Pairing`), e.g. completeness's reference input.
    pairs: tuple[Pairing, ...] = ()
    #: ``check(params)``: raise ``ValueError`` or ``TypeError`` with one line saying what to change where a
    #: parameter's value lies outside what the metric is defined for (``MethodSpec.check``'s contract);
    #: ``params`` are the defaults with the suite's (or the Python call's) values over them. The runner calls
    #: it before anything runs, with the suite's ``file:line``; :func:`xaibench.score` before scoring.
    #: None: the values are checked when the metric runs.
    check: Callable[[Mapping[str, Any]], None] | None = None


@dataclass(frozen=True)
class SuiteSource:
    """A built-in suite: a name and the YAML file shipped as package data."""

    name: str
    path: str
    description: str = ""
