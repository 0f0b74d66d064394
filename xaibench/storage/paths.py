"""Where suite-given paths may point: the one rule, enforced in one place.

A suite is a file people share, so a path in it is untrusted input. The rule:

- a dataset's path parameter is *relative to the data root* (``--data-root`` or
  ``$XAIBENCH_DATA``, chosen by the user on the command line) and, once ``..`` and
  symbolic links are resolved, must stay inside it; absolute paths are refused;
- a model's ``checkpoint:`` is relative to the suite file (resolved by
  :func:`xaibench.suites.suite.load_suite`); it may point anywhere because it is only ever
  loaded as plain tensors (``torch.load(weights_only=True)``), never unpickled.

Dataset plugins call :func:`under_root` for every path they take from a suite.

Where the harness itself writes at run time: only under the cache home
(``$XAIBENCH_HOME``), never inside the installed package (:func:`use_numba_cache`).
"""
from __future__ import annotations

import os
from pathlib import Path

from xaibench.storage.cache import cache_home
from xaibench.base.errors import XaibenchError

DATA_ENV = "XAIBENCH_DATA"


def under_root(root: str | Path | None, relative: str | Path, what: str = "dataset path",
               must_exist: bool = True) -> Path:
    """``root / relative`` resolved, refusing anything that leaves ``root``.

    Raises :class:`XaibenchError` when no root was given, when ``relative`` is
    absolute or escapes the root (through ``..`` or a symbolic link), and, with
    ``must_exist``, when the target does not exist.
    """
    if root is None or str(root) == "":
        raise XaibenchError(f"{what} {str(relative)!r} is read from the data root, and none was given: "
                            f"pass --data-root DIR or set {DATA_ENV}")
    base = Path(root).expanduser().resolve()
    if not base.is_dir():
        raise XaibenchError(f"the data root {root} is not a directory")
    rel = Path(relative)
    if rel.is_absolute() or rel.drive:
        raise XaibenchError(f"{what} {str(relative)!r} must be relative to the data root {base}, not absolute")
    target = (base / rel).resolve()
    if not target.is_relative_to(base):
        raise XaibenchError(f"{what} {str(relative)!r} escapes the data root {base} (it resolves to {target})")
    if must_exist and not target.exists():
        raise XaibenchError(f"{what} {str(relative)!r} does not exist under the data root {base}")
    return target


def use_numba_cache() -> Path:
    """Point numba's ``cache=True`` files at ``<cache home>/numba`` (unless ``NUMBA_CACHE_DIR`` is set).

    Numba's default locator writes beside the source, into ``site-packages/xaibench/__pycache__``
    for an installed copy; files there are not in the wheel's RECORD, so a later
    ``pip install -e .`` leaves that folder behind without ``__init__.py`` and Python imports
    ``xaibench`` from it as a namespace package. Numba reads ``config.CACHE_DIR`` when a
    function is decorated, so this must run before the first dispatcher is made
    (:func:`xaibench.storage.jit.compile_module` calls it).
    Returns the directory in use.
    """
    from numba.core import config

    if not os.environ.get("NUMBA_CACHE_DIR"):
        config.CACHE_DIR = str(cache_home() / "numba")
    return Path(config.CACHE_DIR)
