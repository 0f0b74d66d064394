"""The optional libraries of this plugin, imported when a network is first built, with the pip command if absent."""
from __future__ import annotations

import importlib
from types import ModuleType

from xaibench.base.errors import XaibenchError


def require(module: str, extra: str, who: str) -> ModuleType:
    """``module`` imported; raises :class:`XaibenchError` naming ``pip install 'xaibench[<extra>]'`` when it is missing."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise XaibenchError(f"{who} needs the {extra!r} library, which is not installed: "
                            f"pip install 'xaibench[{extra}]'") from None
