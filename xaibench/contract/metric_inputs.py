"""What a metric receives: the evaluated batch (:class:`MetricBatch`), the cell's context
(:class:`MetricContext`), and the vocabulary of ``MetricSpec.needs`` that selects from both."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Hashable

if TYPE_CHECKING:  # torch loads on first use, not to register specs (xaibench.contract.lazy)
    import torch
    from torch import nn


@dataclass(frozen=True)
class MetricBatch:
    """The evaluated samples of one cell, as a metric sees them (all on the run's device).

    ``inputs`` ``(N, C, *spatial)`` float32 as the model consumes them; ``targets``
    ``(N,)`` long, the explained class; ``maps`` ``(N, *spatial)`` float32, finite,
    the method's saliency maps upsampled to the input size; ``masks`` ``(N, *spatial)``
    bool and ``regions`` ``(N, *spatial)`` int8 levels (higher = more relevant), or
    None where the dataset has none. New per-sample annotations (bounding boxes,
    fold ids, volumes' slices) join this batch as fields and :data:`METRIC_NEEDS` keys.
    """

    inputs: torch.Tensor
    targets: torch.Tensor
    maps: torch.Tensor
    masks: torch.Tensor | None = None
    regions: torch.Tensor | None = None

    def __len__(self) -> int:
        return int(self.targets.shape[0])


#: ``shared(key, compute)``: the result of ``compute()`` for ``key``, computed once per method's maps.
Shared = Callable[[Hashable, Callable[[], Any]], Any]


def unshared(key: Hashable, compute: Callable[[], Any]) -> Any:
    """``compute()``: the :data:`Shared` of a metric called alone (tests, notebooks), nothing memoised."""
    return compute()


@dataclass(frozen=True)
class MetricContext:
    """What a cell offers its metric besides the batch; a metric receives only what it declares.

    ``explain(model=None, inputs=None, targets=None)`` re-runs the cell's method (same
    parameters, same per-sample seeds) for another model, other inputs of the same samples
    and/or other explained classes ``(N,)``: the randomization checks use other models
    and classes (random logit), robustness metrics perturbed inputs. ``inputs`` may hold
    ``k`` perturbed copies of the ``N`` samples stacked copy-major, ``(k N, C, *spatial)``
    (every robustness draw at once): each row keeps its sample's seed, ``targets`` are
    ``(k N,)`` or ``(N,)`` for every copy, the maps come back ``(k N, *spatial)``, and the
    runner fills the method's calls across copies (a ``batch_invariant`` method) or calls
    it one copy at a time, grouped as its maps were.
    ``variant(name)`` is the cell's model trained by one of the metric's declared
    :class:`ModelVariant` protocols (cached like any model).
    """

    engine: Any  # xaibench.scoring.engine.Engine; typed loosely to keep specs import-light
    base_logits: torch.Tensor  # (N, K) logits of the unperturbed inputs
    data_mean: torch.Tensor | None = None
    #: The dataset's bundle: class names, modality, ``region_top_level`` and other metadata.
    dataset: Any = None  # xaibench.contract.specs.DataBundle | None; typed loosely: specs imports this module
    #: A fresh copy of the trained model (randomization metrics perturb copies).
    model: Callable[[], nn.Module] | None = None
    explain: Callable[..., torch.Tensor] | None = None
    variant: Callable[[str], nn.Module] | None = None
    #: ``shared(key, compute)``: ``compute()``, run once per key for these maps and reused by the
    #: other metrics of the same method (the fused mask kernel gives several scores in one pass).
    #: The key must name everything the result depends on besides the maps, masks and inputs.
    shared: Shared = unshared
    #: One seed per evaluated sample, from the run's seed, the metric with its parameters and the sample's id only
    #: (not its position, its batch-mates, the model or the method): sample ``i``'s every random draw comes from
    #: ``sample_seeds[i]``, so a sample scores the same alone, in a batch or in another order, and every method of a
    #: cell faces the same draws (common random numbers).
    sample_seeds: tuple[int, ...] = ()
    #: The seed of randomized models (MPRT's cascade, eMPRT, sMPRT): from the run's seed only, the same for every
    #: model, method and metric: randomized models are common random numbers too.
    model_seed: int = 0
    #: A segmenter's sample, scored alone: its :class:`xaibench.scoring.segmentation.RegionScore` (``region``
    #: ``(*spatial)`` bool, ``cls``, ``reduce``, ``segmenter()`` the per-pixel model), the engine's model; None for
    #: a classifier.
    segmentation: Any = None


#: What a metric may declare in ``MetricSpec.needs``; each arrives as the keyword argument of that name.
METRIC_NEEDS = {
    "inputs": "MetricBatch.inputs (N, C, *spatial)",
    "targets": "MetricBatch.targets (N,)",
    "maps": "MetricBatch.maps (N, *spatial)",
    "masks": "MetricBatch.masks (N, *spatial) bool, or None",
    "regions": "MetricBatch.regions (N, *spatial) int8, or None",
    "engine": "MetricContext.engine: batched forward passes of the trained model",
    "base_logits": "MetricContext.base_logits (N, K) of the unperturbed inputs",
    "model_seed": "MetricContext.model_seed, the seed of randomized models, the same for every method and metric",
    "data_mean": "MetricContext.data_mean (C,), the training inputs' per-channel mean",
    "dataset": "MetricContext.dataset, the DataBundle (metadata such as region_top_level)",
    "model": "MetricContext.model() -> a fresh copy of the trained model",
    "explain": "MetricContext.explain(model=None, inputs=None, targets=None) -> (N, *spatial) maps of the cell's method "
               "((k N, *spatial) for k stacked copies of the inputs)",
    "variant": "MetricContext.variant(name) -> the model trained by a declared MetricSpec.variants protocol",
    "shared": "MetricContext.shared(key, compute): one result per key shared by a method's metric cells",
    "segmentation": "MetricContext.segmentation: the sample's RegionScore (region, class, segmenter()) on a "
                    "segmentation model, one sample per call; metrics that need it are not applicable to classifiers",
    "sample_seeds": "MetricContext.sample_seeds, one seed per sample from the run's seed and its id (never its "
                    "position), the same for every method (common random numbers)",
}


def metric_arguments(needs: frozenset[str], batch: MetricBatch, ctx: MetricContext) -> dict[str, Any]:
    """The keyword arguments of a metric that declares ``needs``: fields of ``batch``, else of ``ctx``."""
    return {n: getattr(batch, n) if hasattr(batch, n) else getattr(ctx, n) for n in sorted(needs)}
