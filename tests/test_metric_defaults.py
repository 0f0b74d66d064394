"""A metric's score function called directly takes the defaults of the metric it was written for."""
from __future__ import annotations

import inspect
from collections import defaultdict

from xaibench.contract.plugins import load_harness


def test_score_function_defaults_are_the_defaults_of_one_of_its_metrics() -> None:
    """The runner passes each spec's defaults; a score function shared by variants (``dic`` and
    ``dic-important``, ``road-morf`` and ``road-lerf``) defaults each parameter that its specs set to the value
    of one of them, so a direct call of the function scores one of the registered metrics."""
    metrics = load_harness().metrics
    values: dict[tuple[object, str], list[object]] = defaultdict(list)
    for name in metrics.names():
        spec = metrics.get(name)
        for key, value in spec.defaults.items():
            values[spec.score, key].append(value)
    checked = 0
    for (score, key), seen in values.items():
        param = inspect.signature(score).parameters.get(key)
        if param is None or param.default is inspect.Parameter.empty:
            continue
        assert any(param.default == v and type(param.default) is type(v) for v in seen), \
            f"{score.__name__}: {key} defaults to {param.default!r}, none of its metrics' defaults {seen!r}"
        checked += 1
    assert checked >= 40


def test_curve_function_defaults_are_the_defaults_of_its_metric() -> None:
    """A metric's curve (``MetricSpec.curve``, what the curve figures draw) called directly draws the curve of
    the scores the metric publishes: every parameter it defaults and the spec sets has the spec's default."""
    metrics = load_harness().metrics
    checked = 0
    for name in metrics.names():
        spec = metrics.get(name)
        if spec.curve is None:
            continue
        parameters = inspect.signature(spec.curve).parameters
        for key, value in spec.defaults.items():
            param = parameters.get(key)
            assert param is not None, f"{name}: its curve takes no {key!r}"
            if param.default is inspect.Parameter.empty:
                continue
            assert param.default == value and type(param.default) is type(value), \
                f"{name}: its curve defaults {key} to {param.default!r}, the metric to {value!r}"
            checked += 1
    assert checked >= 6  # deletion: steps, fill; insertion: steps, fill, blur_size, blur_sigma
