"""Explaining and scoring segmentation networks: region targets and the one target adapter.

A segmentation model (:func:`xaibench.contract.outputs.dense`) returns per-pixel logits ``(N, K, *spatial)``. What a
method explains and a metric tracks is one scalar per sample, the *region score* (Seg-Grad-CAM: Vinogradova
et al., "Towards Interpretable Semantic Segmentation via Gradient-weighted Class Activation Mapping", AAAI 2020)::

    S_k(x) = sum_{i in R} y_{k,i}(x)          (reduce: sum)
    S_k(x) = 1/|R| sum_{i in R} y_{k,i}(x)    (reduce: mean)

``y_k`` class ``k``'s logits and ``R`` the region, fixed once per sample on the unperturbed input
(:class:`RegionTarget`): the predicted mask of class ``k`` (the default: the pixels whose argmax is ``k``), the
ground-truth mask, a box, or one pixel. A one-logit (sigmoid) segmenter's ``z`` is read as ``[-z, z]`` per pixel
(:mod:`xaibench.contract.outputs`), so class 1 is the foreground with ``S_1 = sum z`` and class 0 its negative.

The adapter: each sample is explained and scored through a :class:`RegionScore` module, the segmenter with its
sample's region, whose output is the ``(B, K)`` region scores of every class. Every method and metric reads
``(N, K)`` logits, so each runs on it unchanged; a perturbation method's batch holds perturbations of that one
sample, scored against the region fixed on the unperturbed input. Probabilities the harness reads are the softmax
of the region scores (one logit: ``sigmoid(S_1)``); metrics with an ``output: logit`` parameter read ``S_k``
itself. :func:`xaibench.api.segmented.segmentable` puts :func:`xaibench.api.score` and :func:`xaibench.api.explain`
on this path, :class:`xaibench.running.execution.Execution` a suite's cells.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from xaibench.base.errors import XaibenchError
from xaibench.contract.outputs import OutputAdapter
from xaibench.suites.targets import RegionTarget

def target_regions(target: RegionTarget, logits: torch.Tensor, masks: torch.Tensor | None,
                   allow_empty: bool = False) -> torch.Tensor:
    """``(N, *spatial)`` bool: each sample's region, from the segmenter's unperturbed ``logits`` ``(N, K, *spatial)``
    (``"predicted"``: ``argmax_k == target.cls``; ties go to the lower class, so a one-logit ``z = 0`` is
    background) or ``masks`` ``(N, *spatial)`` (``"ground-truth"``). Raises :class:`XaibenchError` for a class
    the model does not have, a box or pixel that does not fit the input, missing masks, and samples whose
    region is empty (their region score is the constant 0: nothing to explain) unless ``allow_empty`` (a suite's
    samples: such a sample's map is 0 and its every score NaN, counted as undefined)."""
    n, k, spatial = int(logits.shape[0]), int(logits.shape[1]), tuple(logits.shape[2:])
    if target.cls >= k:
        raise XaibenchError(f"target class {target.cls} is not one of the segmenter's classes 0..{k - 1}")
    if target.region == "predicted":
        regions = logits.argmax(1) == target.cls
    elif target.region == "ground-truth":
        if masks is None:
            raise XaibenchError("target region 'ground-truth' needs masks=(N, *spatial): pass the ground-truth masks")
        regions = masks.to(logits.device).bool()
    else:
        index = target.box if target.region == "box" else tuple((p, p + 1) for p in target.pixel or ())
        if len(index) != len(spatial) or any(stop > size for (_, stop), size in zip(index, spatial)):
            given = [list(p) for p in index] if target.region == "box" else list(target.pixel or ())
            raise XaibenchError(f"target {target.region} {given} "
                                f"does not fit inputs of size {list(spatial)}: give one "
                                f"{'[start, stop] pair' if target.region == 'box' else 'index'} per axis within it")
        regions = torch.zeros((n, *spatial), dtype=torch.bool, device=logits.device)
        regions[(slice(None), *(slice(a, b) for a, b in index))] = True
    empty = [i for i in range(n) if not regions[i].any()]
    if empty and not allow_empty:
        raise XaibenchError(f"sample(s) {', '.join(map(str, empty[:10]))}{' ...' if len(empty) > 10 else ''} have "
                            f"an empty {target.region} region for class {target.cls}: explain them with another "
                            f"region (a box, the ground truth) or leave them out")
    return regions


def region_weights(regions: torch.Tensor, reduce: str) -> torch.Tensor:
    """``(N, *spatial)`` float32 weights of ``regions`` ``(N, *spatial)`` bool: 1 on the region (``"sum"``), or
    ``1 / |R|`` (``"mean"``), 0 elsewhere."""
    weights = regions.float()
    sizes = weights.flatten(1).sum(1).clamp_min(1).reshape(-1, *[1] * (weights.dim() - 1))  # an empty region: 0
    return weights / sizes if reduce == "mean" else weights


def reduced(logits: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """``(B, K)`` region scores: ``sum_i weights[i] * logits[:, :, i]`` of per-pixel ``logits`` ``(B, K, *spatial)``
    with ``weights`` ``(B or 1, *spatial)``."""
    return (logits * weights.unsqueeze(1)).flatten(2).sum(2)


class RegionScore(OutputAdapter):
    """One sample's region scores: ``forward(x)`` is ``(B, K)``, ``S_k(x) = sum_{i in R} y_{k,i}(x)`` (``/ |R|``
    for ``reduce="mean"``) for every ``x`` of the batch, with ``y`` the segmenter's per-pixel logits
    ``(B, K, *spatial)`` and ``R`` the fixed ``region`` ``(*spatial)`` bool. Layer names, checkpoints and the
    one-logit convention are the segmenter's (an :class:`~xaibench.contract.outputs.OutputAdapter` of the user's model)."""

    def __init__(self, segmenter: OutputAdapter, region: torch.Tensor, reduce: str, cls: int) -> None:
        super().__init__(segmenter.wrapped, segmenter.form, segmenter.single)
        #: ``(*spatial)`` bool: the region, fixed on the unperturbed input.
        self.region = region.bool()
        #: The explained class.
        self.cls = cls
        self.reduce = reduce
        # a buffer, not an attribute: tracers (the methods' rule checks) see a constant, not an input-dependent factor
        self.register_buffer("weights", region_weights(region[None], reduce), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, K)`` region scores of ``x`` ``(B, C, *spatial)``."""
        return reduced(super().forward(x), self.weights)

    def segmenter(self) -> OutputAdapter:
        """The segmentation model itself (``(B, K, *spatial)`` per-pixel logits), sharing this module's layers."""
        return OutputAdapter(self.wrapped, self.form, self.single, dense=True)


def suite_target(target: Any) -> RegionTarget:
    """The region target of a suite's ``target:`` for a segmentation model: its dict (checked when the suite was
    loaded), or the default (the predicted region of class 1, summed) for ``predicted``. ``label`` is refused:
    a segmenter has no class label; its ground truth is a region (``{region: ground-truth, class: 1}``)."""
    from xaibench.suites.targets import region_target

    if isinstance(target, Mapping):
        return region_target(target, "suite 'target'")
    if target == "predicted":
        return RegionTarget()
    raise XaibenchError(f"suite `target: {target}` explains a classifier's class; a segmentation model is explained "
                        f"for a region: `target: {{region: ground-truth, class: 1}}` (or predicted, box, pixel)")


def model_target(target: Any, segmenter: bool, model: str) -> RegionTarget | None:
    """The region target a suite's ``target:`` gives model ``model`` (:func:`suite_target`) when it is a
    ``segmenter``; None for a classifier, whose class ``predicted``/``label`` is the runner's. The plan's check and
    the runner's group (``xaibench explain --suite`` runs no plan) share this rule: a region target on a classifier
    and ``label`` on a segmenter raise :class:`XaibenchError`."""
    if segmenter:
        return suite_target(target)
    if isinstance(target, Mapping):
        raise XaibenchError(f"model {model!r} returns (N, K) class scores, but the suite's target is a region "
                            f"target, which explains a segmentation model: use `target: predicted`")
    return None


def target_label(target: Any) -> str:
    """What a suite's ``target:`` explains on a segmenter, for a figure's title: ``"class 1 over the predicted
    region, sum"`` (:func:`suite_target`'s errors)."""
    rt = suite_target(target)
    return f"class {rt.cls} over the {rt.region} region, {rt.reduce}"


def region_score(model: Any) -> RegionScore | None:
    """``model`` when it is a :class:`RegionScore` (a metric's engine on a segmenter), else None."""
    return model if isinstance(model, RegionScore) else None
