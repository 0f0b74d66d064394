"""This plugin's metric parameter values, checked before anything runs (``MetricSpec.check``).

The plugin's hook gives every metric it registers :func:`common_check` (the parameters that mean the
same thing wherever they appear: ``sign``, one of :data:`xaibench.maps.SIGNS`, and ``output``, one of
:data:`xaibench.engine.OUTPUTS`), unless the spec names a finer check that includes it, as the overlap
metrics do (:func:`overlap_check`). A suite gets the error with its ``file:line`` and exit 2,
:func:`xaibench.score` an :class:`~xaibench.errors.XaibenchError`, through the same
:func:`xaibench.params.check_plugin_params`. Other values are checked when the metric runs.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from xaibench import kernels
from xaibench.engine import OUTPUTS
from xaibench.maps import SIGNS
from xaibench.validate import is_number
from xaibench_metrics.localization import SELECTIONS


def _one_of(params: Mapping[str, Any], key: str, allowed: tuple[str, ...]) -> None:
    if key in params and params[key] not in allowed:
        raise ValueError(f"{key} must be one of {', '.join(allowed)}, got {params[key]!r}")


def common_check(params: Mapping[str, Any]) -> None:
    """Raise ``ValueError`` (one line) for a ``sign`` outside :data:`~xaibench.maps.SIGNS` or an ``output``
    outside :data:`~xaibench.engine.OUTPUTS` (``prob``: the target's probability, ``logit``: its logit)."""
    _one_of(params, "sign", SIGNS)
    _one_of(params, "output", OUTPUTS)


def overlap_check(params: Mapping[str, Any]) -> None:
    """The overlap metrics' check (IoU, Dice, coverage, Top-K Intersection), over :func:`common_check`: raise
    ``ValueError`` (one line) for a ``score`` or ``selection`` outside its list, a ``k`` outside (0, 1] (a fraction
    of the map's pixels, not a count: Quantus's ``k`` pixels are ``k / P`` here) or a ``threshold`` outside
    [0, 1] (the map is scaled to [0, 1])."""
    common_check(params)
    _one_of(params, "score", kernels.OVERLAPS)
    _one_of(params, "selection", SELECTIONS)
    if "k" in params and not (is_number(params["k"]) and 0 < params["k"] <= 1):
        raise ValueError(f"k is the fraction of the map's pixels kept, in (0, 1], got {params['k']!r}; "
                         f"for a number of pixels n give n / (pixels per map)")
    if "threshold" in params and not (is_number(params["threshold"]) and 0 <= params["threshold"] <= 1):
        raise ValueError(f"threshold applies to the map scaled to [0, 1]: give a number in [0, 1], got "
                         f"{params['threshold']!r}")
