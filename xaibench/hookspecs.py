"""The hooks a plugin implements to contribute to xaibench.

Every hook receives a single ``register`` callback and calls it once per thing it
provides (the style of tox and llm). A plugin module implements any subset::

    from xaibench import hookimpl
    from xaibench.specs import MethodSpec

    @hookimpl
    def xaibench_register_methods(register):
        register(MethodSpec(name="my-method", explain=explain, ...))

and is made discoverable by one line in its distribution's ``pyproject.toml``::

    [project.entry-points.xaibench]
    my_method = "my_package.plugin"

Hook names are checked when plugins load: a misspelled ``xaibench_*`` function is
an error, not a silently ignored hook.
"""
from __future__ import annotations

from typing import Callable

import pluggy

from xaibench.specs import DatasetSpec, MethodSpec, MetricSpec, ModelSpec, SuiteSource

PROJECT = "xaibench"
hookspec = pluggy.HookspecMarker(PROJECT)


@hookspec
def xaibench_register_datasets(register: Callable[[DatasetSpec], None]) -> None:
    """Register dataset plugins.

    :param register: call with one :class:`~xaibench.specs.DatasetSpec` per dataset.
        The spec's ``load(request)`` returns a :class:`~xaibench.specs.DataBundle`
        with train/val/test splits, stable sample ids and, where known, lesion masks
        and graded region maps. Loading must not download anything.
    """


@hookspec
def xaibench_register_models(register: Callable[[ModelSpec], None]) -> None:
    """Register model architectures.

    :param register: call with one :class:`~xaibench.specs.ModelSpec` per model.
        ``build(num_classes, in_channels, modality, **params)`` returns an untrained
        ``nn.Module``; ``target_layer(model)`` names the layer CAM methods explain.
        The harness trains and caches the model, or loads the user's checkpoint.
    """


@hookspec
def xaibench_register_methods(register: Callable[[MethodSpec], None]) -> None:
    """Register saliency methods.

    :param register: call with one :class:`~xaibench.specs.MethodSpec` per method.
        ``explain(model, x, target, ctx, **params)`` takes ``x`` of shape
        ``(N, C, *spatial)`` and returns a float tensor of shape ``(N, *spatial)``
        (or a coarser map the harness upsamples), finite, without changing the
        model's parameters.
    """


@hookspec
def xaibench_register_metrics(register: Callable[[MetricSpec], None]) -> None:
    """Register evaluation metrics.

    :param register: call with one :class:`~xaibench.specs.MetricSpec` per metric.
        ``score(ctx, x, target, saliency, masks, regions, **params)`` returns one
        float per sample (NaN where undefined). Metrics are stateless; model access
        goes through ``ctx.engine``.
    """


@hookspec
def xaibench_register_suites(register: Callable[[SuiteSource], None]) -> None:
    """Register built-in suites.

    :param register: call with one :class:`~xaibench.specs.SuiteSource` per suite:
        a name and the path of its YAML file, usually shipped as package data.
    """


#: Hook name -> registry kind; the single place that ties hooks to registries.
HOOK_KINDS = {
    "xaibench_register_datasets": "datasets",
    "xaibench_register_models": "models",
    "xaibench_register_methods": "methods",
    "xaibench_register_metrics": "metrics",
    "xaibench_register_suites": "suites",
}
