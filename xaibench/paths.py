"""Where suite-given paths may point: the one rule, enforced in one place.

A suite is a file people share, so a path in it is untrusted input. The rule:

- a dataset's path parameter is *relative to the data root* (``--data-root`` or
  ``$XAIBENCH_DATA``, chosen by the user on the command line) and, once ``..`` and
  symbolic links are resolved, must stay inside it; absolute paths are refused;
- a model's ``checkpoint:`` is relative to the suite file (resolved by
  :func:`xaibench.suite.load_suite`); it may point anywhere because it is only ever
  loaded as plain tensors (``torch.load(weights_only=True)``), never unpickled.

Dataset plugins call :func:`under_root` for every path they take from a suite.
"""
from __future__ import annotations

from pathlib import Path

from xaibench.errors import XaibenchError

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
