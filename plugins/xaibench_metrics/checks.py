"""The metrics' parameter values, checked before anything runs (``MetricSpec.check``).

One rule per parameter name, whichever metric takes it, so a suite's or a Python call's bad value
is refused in one line before any model is trained, instead of failing every cell of the metric
after the run (or raising a bare ``ValueError`` from :func:`xaibench.score`):

- a choice (``fill``, ``order``, ``output``, ``cover``, ``selection``, ``similarity_measure``, ``noise``
  by name, ``sign``, ``score``, ``normalise``) is one of the names the module that scores the metric accepts: its own
  constant (``FILLS``, ``ORDERS``, ...) where it declares one, else the core's (:data:`CORE_CHOICES`);
- counts are integers with a least value (:data:`COUNTS`); ``steps`` is one too, or null where the
  metric's default is null;
- ROAD's ``fractions`` are a non-empty list of numbers strictly between 0 and 1, and a numeric ``noise``
  (ROAD, infidelity, ARCC) a finite number >= 0;
- :data:`POSITIVE` are finite numbers > 0, :data:`NON_NEGATIVE` finite numbers >= 0, ``subset`` a
  number in (0, 1), :data:`FLAGS` true or false.

A rule that depends on the input (a patch count below the pixels of the input, a removal count
below its patches) is checked when the metric runs. A metric's own ``check`` (declared at
registration) runs after these rules.
"""
from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from xaibench.contract.lazy import Lazy, lazy
from xaibench.contract.validate import is_integer, is_number

#: Choice parameters -> the constant a metric's module declares its accepted names in.
CHOICES = {"fill": "FILLS", "order": "ORDERS", "zone": "ZONES", "output": "OUTPUTS", "cover": "COVERS",
           "selection": "SELECTIONS",
           "similarity_measure": "SIMILARITIES", "noise": "NOISES", "sign": "SIGNS", "score": "OVERLAPS",
           "normalise": "NORMALISE"}
#: Where a choice's names come from when the metric's module declares none: ``module:CONSTANT`` of the core.
CORE_CHOICES = {"fill": "xaibench.scoring.fills:FILLS", "output": "xaibench.scoring.engine:OUTPUTS", "sign": "xaibench.scoring.maps:SIGNS",
                "score": "xaibench.scoring.kernels:OVERLAPS", "normalise": "xaibench_metrics.scaling:NORMALISE"}
#: Count parameters and their least value.
COUNTS = {"draws": 1, "runs": 1, "sets": 1, "n": 1, "n_segments": 1, "grid": 1, "patch": 1, "blur_size": 1,
          "n_bins": 2, "steps": 1, "width": 1}
#: Parameters that are finite numbers > 0.
POSITIVE = ("blur_sigma", "compactness", "scale", "noise_magnitude", "eps", "eps_min", "reference_size")
#: Parameters that are finite numbers >= 0.
NON_NEGATIVE = ("tolerance", "tol")
#: Parameters that are true or false.
FLAGS = ("abs", "relative", "normalize", "same_prediction")


def _module_of(score: Callable[..., Any]) -> str:
    return score.target.partition(":")[0] if isinstance(score, Lazy) else getattr(score, "__module__", "")


def _names(module: str, param: str) -> Sequence[str] | None:
    """The names ``param`` may take for a metric scored in ``module``; None: not a choice there."""
    found = getattr(importlib.import_module(module), CHOICES[param], None) if module else None
    if found is None and param in CORE_CHOICES:
        where, _, constant = CORE_CHOICES[param].partition(":")
        found = getattr(importlib.import_module(where), constant)
    return found


def check_fractions(value: Any) -> None:
    """Raise ValueError unless ``value`` is a non-empty list of numbers strictly between 0 and 1 (ROAD)."""
    if (isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Sequence) or not value
            or not all(is_number(f) and 0 < f < 1 for f in value)):
        raise ValueError(f"fractions must be a non-empty list of numbers strictly between 0 and 1 (the shares of "
                         f"pixels removed), got {value!r}")


def params_check(module: str, nullable: tuple[str, ...] = (), own: Callable[[Mapping[str, Any]], None] | None = None,
                 ) -> Callable[[Mapping[str, Any]], None]:
    """The ``MetricSpec.check`` of a metric scored in ``module``; ``nullable``: parameters whose default is null
    (null is then a value); ``own``: the metric's own check, run after these rules."""

    def check(params: Mapping[str, Any]) -> None:
        """Raise ValueError (one line) for the first value outside its rule (module doc)."""
        for key, value in params.items():
            if value is None and key in nullable:
                continue
            if key in CHOICES and not (key == "noise" and is_number(value)):
                names = _names(module, key)
                if names is not None and value not in names:
                    raise ValueError(f"{key} must be one of {', '.join(names)}, got {value!r}")
                if names is None and key == "noise":
                    raise ValueError(f"noise must be a finite number >= 0, got {value!r}")
            if key == "noise" and is_number(value) and not value >= 0:
                raise ValueError(f"noise must be a finite number >= 0, got {value!r}")
            if key in COUNTS and not (is_integer(value) and value >= COUNTS[key]):
                raise ValueError(f"{key} must be an integer >= {COUNTS[key]}"
                                 f"{' (or null)' if key in nullable else ''}, got {value!r}")
            if key in POSITIVE and not (is_number(value) and value > 0):
                raise ValueError(f"{key} must be a finite number > 0, got {value!r}")
            if key in NON_NEGATIVE and not (is_number(value) and value >= 0):
                raise ValueError(f"{key} must be a finite number >= 0, got {value!r}")
            if key == "subset" and not (is_number(value) and 0 < value < 1):
                raise ValueError(f"subset must be a number strictly between 0 and 1, got {value!r}")
            if key in FLAGS and not isinstance(value, bool):
                raise ValueError(f"{key} must be true or false, got {value!r}")
            if key == "fractions":
                check_fractions(value)
        if own is not None:
            own(params)

    return check


def checked(register: Callable[[Any], None]) -> Callable[[Any], None]:
    """``register`` giving every metric spec the rules of this module as its ``check`` (its own ``check``, if
    any, runs after them); imports nothing until a check runs."""

    def register_checked(spec: Any) -> None:
        nullable = tuple(sorted(k for k, v in spec.defaults.items() if v is None))
        register(dataclasses.replace(spec, check=lazy("xaibench_metrics.checks:params_check", _module_of(spec.score),
                                                      nullable, spec.check)))

    return register_checked
