"""xaibench: a benchmark harness for saliency methods on CNNs."""
from __future__ import annotations

from typing import Any

import pluggy

from xaibench.base import moved
from xaibench.base.version import __version__

moved.install()  # the flat layout's module paths, for one release (docs/architecture.md)

#: Decorator for plugin hook implementations.
hookimpl = pluggy.HookimplMarker("xaibench")

#: The public Python API (:mod:`xaibench.api`), imported at first use so that ``import xaibench`` stays light.
API = ("Comparison", "Metric", "Results", "Scores", "compare", "explain", "metric", "run", "score")

__all__ = ["Comparison", "Metric", "Results", "Scores", "__version__", "compare", "explain", "hookimpl", "metric", "run", "score"]


def __getattr__(name: str) -> Any:
    """``xaibench.score`` and the other names of :data:`API`, from :mod:`xaibench.api` (no torch until called)."""
    if name in API:
        from xaibench import api

        return getattr(api, name)
    raise AttributeError(f"module 'xaibench' has no attribute {name!r}")
