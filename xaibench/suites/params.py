"""Suite parameters checked against what each method and metric accepts, before anything runs.

A parameter the plugin does not take would otherwise be dropped (``layer`` on a method
without a target layer) or fail the cell at run time (a misspelled name); a method's or a
metric's values are checked by its spec's ``check``, where it has one. The accepted
names of a plugin are read from its function's signature: the keyword parameters after
the fixed leading arguments the runner passes (:data:`FIXED`), plus the spec's declared
``defaults``, plus ``layer`` for methods that take a target layer. A function with
``**kwargs`` accepts any name (it receives them all).
"""
from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from xaibench.base.errors import SuiteError, XaibenchError, did_you_mean
from xaibench.suites.suite import Suite

#: Leading arguments the runner passes positionally, per plugin kind: ``explain(model, x, target, ctx, ...)``;
#: a metric's ``score`` takes its declared ``needs`` by keyword instead (they are not parameters).
FIXED = {"method": 4, "metric": 0}


def accepted(fn: Callable[..., Any], fixed: int, defaults: Iterable[str] = (), takes_layer: bool = False) -> set[str] | None:
    """Parameter names ``fn`` accepts after its first ``fixed`` positional ones; None when it takes ``**kwargs``."""
    sig = inspect.signature(fn)
    names: set[str] = set(defaults) | ({"layer"} if takes_layer else set())
    positional = 0
    for p in sig.parameters.values():
        if p.kind is p.VAR_KEYWORD:
            return None
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and positional < fixed:
            positional += 1
            continue
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY):
            names.add(p.name)
    return names


def check_entry(where: str, kind: str, display: str, params: Iterable[str], allowed: set[str] | None,
                takes_layer: bool) -> None:
    """Raise :class:`SuiteError` (``where`` is ``file:line``) for the first parameter not in ``allowed``."""
    if allowed is None:
        return
    for name in params:
        if name in allowed:
            continue
        if name == "layer" and kind == "method" and not takes_layer:
            raise SuiteError(f"{where}: method {display!r} takes no target layer: remove `layer` (it applies to "
                             f"methods that explain a layer, such as the CAM family)")
        known = f"; it accepts {', '.join(sorted(allowed))}" if allowed else "; it takes no parameters"
        raise SuiteError(f"{where}: {kind} {display!r} has no parameter {name!r}{did_you_mean(name, allowed)}{known}")


def validate_params(suite: Suite, methods: Iterable[Any], metrics: Iterable[Any]) -> None:
    """Check every method's and metric's ``params:`` in ``suite``; ``methods``/``metrics`` have ``.entry`` and ``.spec``."""
    for kind, resolved in (("method", methods), ("metric", metrics)):
        for r in resolved:
            check_plugin_params(f"{suite.at(r.entry.line)}", kind, r.entry.display, r.spec, r.entry.params)


def check_plugin_params(where: str, kind: str, display: str, spec: Any, params: Mapping[str, Any]) -> None:
    """Raise :class:`XaibenchError` (``where`` starts the line) when ``spec`` (a method or metric, by ``kind``)
    does not accept every name in ``params``, its ``check`` (``MethodSpec.check``, ``MetricSpec.check``) refuses
    their values (with the defaults under them), or a lazily named metric function does not take its needs."""
    fn = spec.explain if kind == "method" else spec.score
    if kind == "metric":
        try:  # a lazily named score function is imported and checked here, before anything runs
            spec.check_score()
        except ValueError as exc:
            raise XaibenchError(f"{where}: {exc}") from None
    takes_layer = bool(getattr(spec, "takes_layer", False))
    allowed = accepted(fn, FIXED[kind], getattr(spec, "defaults", {}), takes_layer)
    if allowed is not None and kind == "metric":
        allowed -= set(spec.needs)  # what the runner passes (MetricSpec.needs) is no parameter
    check_entry(where, kind, display, params, allowed, takes_layer)
    check = getattr(spec, "check", None)
    if check is not None:
        try:
            check({**dict(spec.defaults), **params})
        except (ValueError, TypeError) as exc:
            raise SuiteError(f"{where}: {kind} {display!r}: {exc}") from None
