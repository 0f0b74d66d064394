"""The flat layout's module paths (``xaibench.engine``, ...), kept working for one release with a DeprecationWarning.

Up to xaibench 0.1 the core was one folder of modules; it is now grouped into rooms named for a run's
steps (docs/architecture.md). Third-party code that imports an old path, say ``from xaibench.engine
import Engine``, gets the same module object as ``xaibench.scoring.engine`` and one
:class:`DeprecationWarning` naming the new path. Two old modules share their name with their room,
``xaibench.models`` (now :mod:`xaibench.models.provision`) and ``xaibench.figures`` (now
:mod:`xaibench.figures.charts`): their old names are read from the room's package through
:func:`forwarding`. Nothing of xaibench imports an old path; ``tests/test_moved.py`` checks every entry.
"""
from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import warnings
from collections.abc import Callable
from types import ModuleType
from typing import Any

#: The release that removes the old paths.
UNTIL = "0.3"

#: Old module (below ``xaibench.``) -> its new path (below ``xaibench.``).
MOVED = {
    "errors": "base.errors",
    "version": "base.version",
    "progress": "base.progress",
    "specs": "contract.specs",
    "samples": "contract.samples",
    "metric_inputs": "contract.metric_inputs",
    "published": "contract.published",
    "lazy": "contract.lazy",
    "hookspecs": "contract.hookspecs",
    "registry": "contract.registry",
    "plugins": "contract.plugins",
    "validate": "contract.validate",
    "outputs": "contract.outputs",
    "layers": "contract.layers",
    "store": "storage.store",
    "cache": "storage.cache",
    "paths": "storage.paths",
    "jit": "storage.jit",
    "suite": "suites.suite",
    "overrides": "suites.overrides",
    "targets": "suites.targets",
    "options": "suites.options",
    "params": "suites.params",
    "plan": "suites.plan",
    "byom": "suites.byom",
    "inputs": "data.inputs",
    "bundles": "data.bundles",
    "folds": "data.folds",
    "download": "data.download",
    "engine": "scoring.engine",
    "kernels": "scoring.kernels",
    "curves": "scoring.curves",
    "fills": "scoring.fills",
    "maps": "scoring.maps",
    "degenerate": "scoring.degenerate",
    "throughput": "scoring.throughput",
    "segmentation": "scoring.segmentation",
    "stats": "scoring.stats",
    "metaeval": "scoring.metaeval",
    "calibration": "scoring.calibration",
    "models": "models.provision",
    "training": "models.training",
    "transfer": "models.transfer",
    "pretrained": "models.pretrained",
    "nonlinearities": "models.nonlinearities",
    "gate": "models.gate",
    "segtraining": "models.segtraining",
    "runner": "running.runner",
    "execution": "running.execution",
    "executors": "running.executors",
    "isolation": "running.isolation",
    "metarun": "running.metarun",
    "environment": "running.environment",
    "explaining": "running.explaining",
    "figures": "figures.charts",
    "slices": "figures.slices",
    "overlay": "figures.overlay",
    "testing": "authoring.testing",
    "scaffold": "authoring.scaffold",
    "hookdoc": "authoring.hookdoc",
    "reference": "authoring.reference",
    "applicability": "authoring.applicability",
    "results": "api.results",
    "scores": "api.scores",
    "comparison": "api.comparison",
    "user_inputs": "api.user_inputs",
    "user_methods": "api.user_methods",
    "user_metrics": "api.user_metrics",
    "segmented": "api.segmented",
    "cli": "api.cli",
}


def _warn(old: str, new: str) -> None:
    warnings.warn(f"{old} moved to {new}; import it from there (the old path is removed in xaibench {UNTIL})",
                  DeprecationWarning, stacklevel=3)


class _Alias(importlib.abc.Loader):
    """Loads an old path as the module now at ``target``: the same object, registered under both names."""

    def __init__(self, target: str) -> None:
        self.target = target

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> None:
        """The default module: :meth:`exec_module` replaces it in ``sys.modules``."""
        return None

    def exec_module(self, module: ModuleType) -> None:
        """Warn, then register the new module under the old name too: the import returns that one."""
        _warn(module.__name__, self.target)
        sys.modules[module.__name__] = importlib.import_module(self.target)  # the import system returns this one


class OldPaths(importlib.abc.MetaPathFinder):
    """Finds ``xaibench.<old>`` for every old module of :data:`MOVED` whose name is not a room's."""

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        """A spec loading the new module for an old path; None for every other name."""
        prefix, _, old = fullname.partition(".")
        new = MOVED.get(old) if prefix == "xaibench" and "." not in old else None
        if new is None or new.partition(".")[0] == old:
            return None  # not an old path, or a room's own package (models, figures): see forwarding
        return importlib.machinery.ModuleSpec(fullname, _Alias(f"xaibench.{new}"))


def install() -> None:
    """Put :class:`OldPaths` first on ``sys.meta_path``, once (``import xaibench`` does)."""
    if not any(isinstance(finder, OldPaths) for finder in sys.meta_path):
        sys.meta_path.insert(0, OldPaths())  # before any finder that could still see an old copy of a module


def forwarding(room: str) -> Callable[[str], Any]:
    """A room package's ``__getattr__`` serving the old module of the same name's public names, with a warning."""
    old = f"xaibench.{room}"
    new = f"xaibench.{MOVED[room]}"

    def __getattr__(name: str) -> Any:
        module = importlib.import_module(new)
        if name.startswith("__") or name not in vars(module):
            raise AttributeError(f"module {old!r} has no attribute {name!r}")
        _warn(f"{old}.{name}", f"{new}.{name}")
        return getattr(module, name)

    return __getattr__
