"""Region targets: what a segmentation model is explained for, in one vocabulary for suites and the Python API.

Torch-free and import-light (:mod:`xaibench.suites.suite` checks a suite's ``target:`` with it): the
:class:`RegionTarget` record, its parser :func:`region_target` and its plain form :func:`region_dict`. The
adapter that explains a segmenter for one is :mod:`xaibench.scoring.segmentation`; :mod:`xaibench.api.segmented` puts the
Python API on it.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from xaibench.base.errors import XaibenchError, did_you_mean

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


def region_dict(target: RegionTarget) -> dict[str, Any]:
    """``target`` as the plain dict of :data:`KEYS` that a suite stores and cache keys hash (lists, not tuples)."""
    return {"region": target.region, "class": target.cls, "reduce": target.reduce,
            "box": None if target.box is None else [list(p) for p in target.box],
            "pixel": None if target.pixel is None else list(target.pixel)}
