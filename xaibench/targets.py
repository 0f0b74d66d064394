"""Region targets: what a segmentation model is explained for, in one vocabulary for suites and the Python API.

Torch-free (``xaibench.api`` imports it at import time): the :class:`RegionTarget` record, its parser
:func:`region_target`, and :func:`segmentable`, which puts :func:`xaibench.api.score` and
:func:`xaibench.api.explain` on the segmentation path (:mod:`xaibench.segmentation`) for a segmentation model.
"""
from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from xaibench.errors import XaibenchError, did_you_mean

#: Where a region target's region comes from.
REGIONS = ("predicted", "ground-truth", "box", "pixel")
#: How the region's logits become one score.
REDUCES = ("sum", "mean")
#: The keys of a region target in a suite's ``target:`` and in :func:`xaibench.api.score`'s ``targets=``.
KEYS = ("region", "class", "reduce", "box", "pixel")


@dataclass(frozen=True)
class RegionTarget:
    """What a segmentation model is explained for: class ``cls``'s logits summed (``reduce="sum"``) or averaged
    (``"mean"``) over a region: ``"predicted"`` (the pixels predicted as ``cls`` on the unperturbed input),
    ``"ground-truth"`` (the given mask), ``"box"`` (``box``: one half-open ``(start, stop)`` pixel range per
    spatial axis) or ``"pixel"`` (``pixel``: one index per spatial axis). In a suite and in the Python API the
    same dict: ``{"region": "predicted", "class": 1, "reduce": "sum"}`` (:func:`region_target`)."""

    region: str = "predicted"
    cls: int = 1
    reduce: str = "sum"
    box: tuple[tuple[int, int], ...] | None = None
    pixel: tuple[int, ...] | None = None


def _ints(value: Any, what: str, where: str) -> tuple[int, ...]:
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        raise XaibenchError(f"{where}: target {what} must be a list of integers, got {value!r}")
    return tuple(value)


def region_target(value: Any, where: str = "target") -> RegionTarget:
    """``value`` (a :class:`RegionTarget`, a dict of :data:`KEYS`, or None for the default: the predicted region
    of class 1, summed) as a checked :class:`RegionTarget`. Raises :class:`XaibenchError` with one line for an
    unknown key (with "did you mean"), region or reduce, a negative or non-integer class, a box or pixel
    missing for its region, given for another, or malformed."""
    if value is None or isinstance(value, RegionTarget):
        value = {} if value is None else {"region": value.region, "class": value.cls, "reduce": value.reduce,
                                          "box": value.box, "pixel": value.pixel}
    if not isinstance(value, Mapping):
        raise XaibenchError(f"{where}: a region target is a dict such as {{'region': 'predicted', 'class': 1, "
                            f"'reduce': 'sum'}}, got {type(value).__name__}")
    for key in value:
        if key not in KEYS:
            raise XaibenchError(f"{where}: unknown target key {key!r}{did_you_mean(str(key), KEYS)}; keys: "
                                f"{', '.join(KEYS)}")
    region, cls, reduce = value.get("region", "predicted"), value.get("class", 1), value.get("reduce", "sum")
    if region not in REGIONS:
        raise XaibenchError(f"{where}: target region {region!r} is not one of {', '.join(REGIONS)}"
                            f"{did_you_mean(str(region), REGIONS)}")
    if reduce not in REDUCES:
        raise XaibenchError(f"{where}: target reduce {reduce!r} is not one of {', '.join(REDUCES)}")
    if not isinstance(cls, int) or isinstance(cls, bool) or cls < 0:
        raise XaibenchError(f"{where}: target class must be a class index (an integer >= 0), got {cls!r}")
    box, pixel = value.get("box"), value.get("pixel")
    for name, given in (("box", box), ("pixel", pixel)):
        if (given is not None) != (region == name):
            raise XaibenchError(f"{where}: target {name} is " + (f"given for region {region!r}: remove it"
                                if given is not None else f"missing: region {name!r} needs `{name}:`"))
    if box is not None:
        if not isinstance(box, (list, tuple)):
            raise XaibenchError(f"{where}: target box is one [start, stop] pair per spatial axis, got {box!r}")
        box = tuple(_ints(pair, "box pair", where) for pair in box)
        if not box or any(len(pair) != 2 or pair[0] < 0 or pair[1] <= pair[0] for pair in box):
            raise XaibenchError(f"{where}: target box is one [start, stop] pair per spatial axis with "
                                f"0 <= start < stop, got {[list(p) for p in box]}")
    if pixel is not None:
        pixel = _ints(pixel, "pixel", where)
        if not pixel or min(pixel) < 0:
            raise XaibenchError(f"{where}: target pixel is one index >= 0 per spatial axis, got {list(pixel)}")
    return RegionTarget(region, cls, reduce, box, pixel)


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
    explained through its :class:`RegionScore` (class ``cls``), its results put back in order. A region target
    for a classifier, and a metric that needs a segmentation model (``"segmentation"`` in its needs) on a
    classifier, are refused with one line."""
    signature = inspect.signature(function)

    @functools.wraps(function)
    def call(*args: Any, **kwargs: Any) -> Any:
        from xaibench.outputs import dense
        from xaibench.segmentation import per_sample
        from xaibench.user_inputs import checked_inputs, torch_device, user_model

        a = _keywords(signature, args, kwargs)
        x = checked_inputs(a["inputs"])
        device = torch_device(a["device"])
        net, _ = user_model(a["model"], x, a["num_classes"], a["output"], a["output_index"], a["output_key"], device)
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
    from xaibench.user_metrics import metric_specs

    for spec in [] if metrics is None else metric_specs(metrics):
        if "segmentation" in spec.needs:
            raise XaibenchError(f"not applicable: metric {spec.name!r} needs a segmentation model "
                                f"((N, K, *spatial) per-pixel logits); the model returns (N, K) class scores")




def region_dict(target: RegionTarget) -> dict[str, Any]:
    """``target`` as the plain dict of :data:`KEYS` that a suite stores and cache keys hash (lists, not tuples)."""
    return {"region": target.region, "class": target.cls, "reduce": target.reduce,
            "box": None if target.box is None else [list(p) for p in target.box],
            "pixel": None if target.pixel is None else list(target.pixel)}
