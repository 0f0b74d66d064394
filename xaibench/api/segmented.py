"""The Python API on a segmentation model: :func:`xaibench.api.score` and :func:`xaibench.api.explain` take one,
with a region target (:mod:`xaibench.suites.targets`), and explain and score each sample through its
:class:`~xaibench.scoring.segmentation.RegionScore`, as a suite's cells do (:mod:`xaibench.running.execution`).

Torch-free at import (``xaibench.api`` imports it); the work imports torch when called.
"""
from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from typing import Any

from xaibench.base.errors import XaibenchError
from xaibench.suites.targets import RegionTarget, region_target


def _keywords(signature: inspect.Signature, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    """Every argument of a call by name, ``**`` keywords flattened in."""
    bound = signature.bind(*args, **kwargs)
    bound.apply_defaults()
    out = {}
    for name, value in bound.arguments.items():
        if signature.parameters[name].kind is inspect.Parameter.VAR_KEYWORD:
            out.update(value)
        else:
            out[name] = value
    return out


def segmentable(function: Callable[..., Any]) -> Callable[..., Any]:
    """:func:`xaibench.api.score` or :func:`xaibench.api.explain` that also takes a segmentation model: with one,
    ``targets`` is a region target (:func:`region_target`; None: the default) and every sample is scored or
    explained through its :class:`~xaibench.scoring.segmentation.RegionScore` (class ``cls``), its results put back in
    order. A region target for a classifier, and a metric that needs a segmentation model (``"segmentation"`` in
    its needs) on a classifier, are refused with one line. Inputs the call itself refuses (a model that cannot
    run on them, bad shapes) go to it unchanged, so its errors come in its own order."""
    signature = inspect.signature(function)

    @functools.wraps(function)
    def call(*args: Any, **kwargs: Any) -> Any:
        from xaibench.contract.outputs import dense
        from xaibench.api.user_inputs import checked_inputs, torch_device, user_model

        a = _keywords(signature, args, kwargs)
        try:
            x = checked_inputs(a["inputs"])
            device = torch_device(a["device"])
            net, _ = user_model(a["model"], x, a["num_classes"], a["output"], a["output_index"], a["output_key"],
                                device)
        except Exception:  # noqa: BLE001 - the call's own checks say what is wrong, in their order
            return function(*args, **kwargs)
        if not dense(net):
            if isinstance(a["targets"], (Mapping, RegionTarget)):
                raise XaibenchError("targets is a region target, which explains a segmentation model's "
                                    "(N, K, *spatial) output, but the model returns (N, K) class scores: pass class "
                                    "indices (or None for the predicted classes)")
            _refuse_segmentation_metrics(a.get("metrics"))
            return function(*args, **kwargs)
        return per_sample(function, a, net, x, device, region_target(a["targets"], "targets"))

    return call


def _refuse_segmentation_metrics(metrics: Any) -> None:
    from xaibench.api.user_metrics import metric_specs

    for spec in [] if metrics is None else metric_specs(metrics):
        if "segmentation" in spec.needs:
            raise XaibenchError(f"not applicable: metric {spec.name!r} needs a segmentation model "
                                f"((N, K, *spatial) per-pixel logits); the model returns (N, K) class scores")


def per_sample(function: Any, a: dict[str, Any], net: Any, x: Any, device: Any, target: RegionTarget) -> Any:
    """``function`` (:func:`xaibench.api.score` or :func:`~xaibench.api.explain`, its arguments ``a`` by name) on
    segmenter ``net``: the regions fixed on the unperturbed ``x`` (:func:`~xaibench.scoring.segmentation.target_regions`),
    then each sample alone through its :class:`~xaibench.scoring.segmentation.RegionScore` for class ``target.cls``,
    with its own id (so its seeds), mask, map and region
    map; the maps ``(N, *spatial)`` come back stacked, the scores as one :class:`~xaibench.api.scores.Scores` (each
    metric's summary over all samples, as :func:`~xaibench.api.score` summarises)."""
    import numpy as np

    from xaibench.storage.cache import cache_home
    from xaibench.scoring.engine import Engine
    from xaibench.scoring.segmentation import RegionScore, target_regions
    from xaibench.scoring.throughput import engine_batch_size
    from xaibench.api.user_inputs import checked_annotation, checked_maps, sample_ids

    masks = checked_annotation(a.get("masks"), x, "masks")
    scoring = "metrics" in a
    # the engine batch of score/explain (and of the runner's group), so the regions are fixed on the same logits
    batch = (a["batch_size"] if scoring else None) or engine_batch_size(net, x[:1], device, cache_home())
    logits = Engine(net, device, batch).logits(x)
    regions = target_regions(target, logits, masks)
    ids = sample_ids(a["ids"], x)
    maps = checked_maps(a["maps"], x) if scoring else None
    graded = checked_annotation(a["regions"], x, "region maps") if scoring else None
    results = []
    for i in range(int(x.shape[0])):
        one = slice(i, i + 1)
        kw = dict(a, model=RegionScore(net, regions[i], target.reduce, target.cls), inputs=x[one],
                  targets=[target.cls], ids=[ids[i]], output="logits", output_index=None, output_key=None,
                  num_classes=int(logits.shape[1]), masks=None if masks is None else masks[one])
        if scoring:
            kw.update(maps=maps[one], regions=None if graded is None else graded[one])
        results.append(function(**kw))
    if not scoring:
        return np.concatenate(results)
    return merged_scores(results, ids, a["seed"])


def merged_scores(results: list[Any], ids: tuple[str, ...], seed: int) -> Any:
    """One :class:`~xaibench.api.scores.Scores` of per-sample ``results`` (in the order of ``ids``), each metric's
    mean and bootstrap CI over all of them, seeded as :func:`xaibench.api.score` seeds it."""
    import numpy as np

    from xaibench.running.execution import bootstrap_seed
    from xaibench.api.scores import Scores
    from xaibench.scoring.stats import summarize
    from xaibench.api.user_metrics import metric_specs

    first = results[0]
    specs = metric_specs(list(first.values))
    values = {s.name: np.concatenate([r.values[s.name] for r in results]) for s in specs}
    summary = {s.name: summarize(values[s.name], bootstrap_seed(seed, s), ids) for s in specs}
    constant = {s.name: sum(r.constant_maps[s.name] for r in results) for s in specs}
    return Scores(ids, values, summary, constant, dict(first.higher_is_better))
