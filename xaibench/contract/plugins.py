"""Plugin discovery: a fresh pluggy PluginManager per :class:`Harness`.

There is no import-time global manager: tests and libraries can build harnesses
with exactly the plugins they want. Built-in plugins are found through the same
``xaibench`` entry-point group as third-party ones.
"""
from __future__ import annotations

import importlib
import os
import traceback
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, Iterable

import pluggy

from xaibench.contract import hookspecs
from xaibench.base.errors import XaibenchError
from xaibench.contract.registry import Registry
from xaibench.contract.specs import DatasetSpec, MethodSpec, MetricSpec, ModelSpec, SuiteSource

ENTRY_POINT_GROUP = "xaibench"
DISABLE_ENV = "XAIBENCH_DISABLE_PLUGINS"


@dataclass(frozen=True)
class PluginInfo:
    """A loaded plugin: its entry-point (or in-process) name and the distribution and version that provide it."""

    name: str
    distribution: str
    version: str


@dataclass
class Harness:
    """The registries of every loaded plugin, plus what failed to load and why."""

    pm: pluggy.PluginManager
    datasets: Registry[DatasetSpec] = field(default_factory=lambda: Registry("datasets"))
    models: Registry[ModelSpec] = field(default_factory=lambda: Registry("models"))
    methods: Registry[MethodSpec] = field(default_factory=lambda: Registry("methods"))
    metrics: Registry[MetricSpec] = field(default_factory=lambda: Registry("metrics"))
    suites: Registry[SuiteSource] = field(default_factory=lambda: Registry("suites"))
    plugins: dict[str, PluginInfo] = field(default_factory=dict)
    #: Plugins that failed to import or register: name -> one-line reason.
    broken: dict[str, str] = field(default_factory=dict)
    #: In-process plugins given by module name: what a worker process re-registers.
    extra_modules: dict[str, str] = field(default_factory=dict)
    #: In-process plugins given as objects: they cannot be re-created in another process.
    extra_objects: list[str] = field(default_factory=list)

    def registry(self, kind: str) -> Registry[Any]:
        """The registry of one kind: ``datasets``, ``models``, ``methods``, ``metrics`` or ``suites``."""
        return getattr(self, kind)

    def plugin_versions(self) -> dict[str, str]:
        """Plugin name -> "distribution version", recorded as provenance."""
        return {p.name: f"{p.distribution} {p.version}" for p in sorted(self.plugins.values(), key=lambda p: p.name)}


def disabled_plugins() -> set[str]:
    """Plugin names listed (comma-separated) in ``XAIBENCH_DISABLE_PLUGINS``; they are not loaded."""
    return {n.strip() for n in os.environ.get(DISABLE_ENV, "").split(",") if n.strip()}


def _distribution_of(ep: metadata.EntryPoint) -> tuple[str, str]:
    dist = getattr(ep, "dist", None)
    if dist is None:
        return ("unknown", "0")
    return (dist.metadata["Name"], dist.version)


def load_harness(
    extra: Iterable[tuple[str, object]] = (),
    *,
    entry_points: bool = True,
) -> Harness:
    """Build a harness from installed entry points plus ``extra`` (name, module-or-object) pairs.

    A plugin that fails to import is recorded in ``harness.broken`` and the others
    still load; a misspelled hook, a duplicate name or a malformed spec is an error.
    """
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    harness = Harness(pm=pm)
    disabled = disabled_plugins()

    if entry_points:
        for ep in sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
            if ep.name in disabled or pm.get_plugin(ep.name) is not None:
                continue
            try:
                module = ep.load()
            except Exception as exc:  # a broken third-party plugin must not sink the others
                harness.broken[ep.name] = f"{type(exc).__name__}: {exc}"
                continue
            dist, version = _distribution_of(ep)
            pm.register(module, name=ep.name)
            harness.plugins[ep.name] = PluginInfo(ep.name, dist, version)

    for name, plugin in extra:
        if name in disabled:
            continue
        if isinstance(plugin, str):
            harness.extra_modules[name] = plugin
            plugin = importlib.import_module(plugin)
        else:
            harness.extra_objects.append(name)
        pm.register(plugin, name=name)
        harness.plugins[name] = PluginInfo(name, "(registered in process)", "-")

    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        raise XaibenchError(f"plugin {exc.plugin!r} implements an unknown hook: {exc}") from None

    for hook_name, kind in hookspecs.HOOK_KINDS.items():
        _call_hook(harness, hook_name, harness.registry(kind))
    return harness


def _call_hook(harness: Harness, hook_name: str, registry: Registry[Any]) -> None:
    """Call ``hook_name`` through pluggy, once per implementing plugin, adding what each registers to ``registry``.

    Why one call per plugin rather than one ``pm.hook.<name>(register=...)`` for all:
    pluggy stops a hook call at the first implementation that raises, so one broken
    plugin would keep every plugin after it from registering; and a single shared
    ``register`` could not tell which plugin registered a spec (provenance and the
    "registered twice by A and by B" error need it). So each plugin gets its own
    ``pm.subset_hook_caller`` (the same hook, every other plugin removed) and its own
    ``register``: the call still goes through pluggy (its argument mapping, so an
    implementation may omit ``register`` as pluggy allows; its call tracing and
    monitoring), in the order pluggy lists the implementations, and a plugin whose
    hook raises is recorded in ``harness.broken`` while the others still load. A
    :class:`~xaibench.base.errors.XaibenchError` (a duplicate name, a malformed spec) is
    the user's to fix and propagates.
    """
    pm = harness.pm
    plugins = {name: plugin for name, plugin in pm.list_name_plugin()}
    for impl in getattr(pm.hook, hook_name).get_hookimpls():
        name = impl.plugin_name
        caller = pm.subset_hook_caller(hook_name, remove_plugins=[p for n, p in plugins.items() if n != name])

        def register(spec: object, _plugin: str = name) -> None:
            registry.add(spec, _plugin)

        try:
            caller(register=register)
        except XaibenchError:
            raise
        except Exception as exc:  # a broken third-party plugin must not sink the others
            harness.broken[name] = f"{hook_name} raised {type(exc).__name__}: {exc}\n{traceback.format_exc(limit=-3)}"
