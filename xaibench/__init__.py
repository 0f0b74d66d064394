"""xaibench: a benchmark harness for saliency methods on CNNs."""
from __future__ import annotations

import pluggy

__version__ = "0.1.0"

#: Decorator for plugin hook implementations.
hookimpl = pluggy.HookimplMarker("xaibench")

__all__ = ["__version__", "hookimpl"]
