"""The flat layout's module paths (xaibench 0.1) work for one release and warn (issue 43, item 2).

Expected values come from the table itself: each old path must give the very module object at its new path
and one DeprecationWarning naming that path; the code base itself imports no old path.
"""
from __future__ import annotations

import importlib
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

import xaibench
from xaibench.base.moved import MOVED, UNTIL

ROOT = Path(__file__).resolve().parents[1]

#: xaibench 0.1's modules beside ``__init__``, ``__main__`` and ``leaderboard/`` (``git show 5742de6:xaibench``).
FLAT = """api applicability bundles byom cache calibration cli comparison curves degenerate download engine environment
errors execution executors explaining figures fills folds gate hookdoc hookspecs inputs isolation jit kernels layers
lazy maps metaeval metarun metric_inputs models nonlinearities options outputs overlay overrides params paths plan
plugins pretrained progress published reference registry results runner samples scaffold scores segmentation
segmented segtraining slices specs stats store suite targets testing throughput training transfer user_inputs
user_methods user_metrics validate version""".split()


def test_every_module_of_the_flat_layout_has_a_new_path() -> None:
    assert sorted(MOVED) == sorted(set(FLAT) - {"api"})  # xaibench.api is still xaibench.api, a package now
    for old, new in MOVED.items():
        assert importlib.import_module(f"xaibench.{new}").__name__ == f"xaibench.{new}"
        assert new.rpartition(".")[2] in (old, "provision", "charts")


def test_the_release_that_removes_the_old_paths_is_the_one_the_architecture_page_names() -> None:
    assert f"removed in {UNTIL})" in (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("old", sorted(old for old, new in MOVED.items() if new.partition(".")[0] != old))
def test_an_old_module_path_is_the_new_module_with_a_warning(old: str) -> None:
    sys.modules.pop(f"xaibench.{old}", None)
    vars(xaibench).pop(old, None)
    with pytest.warns(DeprecationWarning, match=rf"^xaibench\.{old} moved to xaibench\.{MOVED[old]};.*{UNTIL}"):
        module = importlib.import_module(f"xaibench.{old}")
    assert module is importlib.import_module(f"xaibench.{MOVED[old]}")


def test_from_xaibench_import_an_old_module_warns_and_gives_the_new_one() -> None:
    sys.modules.pop("xaibench.engine", None)
    vars(xaibench).pop("engine", None)
    with pytest.warns(DeprecationWarning, match="xaibench.scoring.engine"):
        from xaibench import engine
    from xaibench.scoring import engine as new

    assert engine is new


@pytest.mark.parametrize("room, name", [("models", "Models"), ("figures", "gallery")])
def test_an_old_module_named_as_its_room_serves_its_names_from_the_package(room: str, name: str) -> None:
    package = importlib.import_module(f"xaibench.{room}")
    new = importlib.import_module(f"xaibench.{MOVED[room]}")
    with pytest.warns(DeprecationWarning, match=rf"xaibench\.{room}\.{name} moved to xaibench\.{MOVED[room]}\.{name}"):
        value = getattr(package, name)
    assert value is getattr(new, name)
    with pytest.raises(AttributeError, match="no_such_name"):
        package.no_such_name  # noqa: B018
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert importlib.import_module(f"xaibench.{room}.{MOVED[room].rpartition('.')[2]}") is new  # new path: silent


def test_the_code_base_imports_no_old_path() -> None:
    """Every module of xaibench and of the built-in plugins imports with the old paths' warning as an error
    (the tests too: pyproject's ``filterwarnings`` makes it an error there)."""
    modules = sorted({".".join(p.relative_to(base).with_suffix("").parts).removesuffix(".__init__")
                      for base, top in ((ROOT, "xaibench"), (ROOT / "plugins", "xaibench_*"))
                      for package in base.glob(top) for p in package.rglob("*.py")} - {"xaibench.__main__"})
    script = ("import importlib, warnings\nwarnings.filterwarnings('error', r'xaibench\\.\\S+ moved to', DeprecationWarning)\n"
              f"for name in {modules!r}:\n    importlib.import_module(name)\n")
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600,
                         env={**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "plugins")])})
    assert run.returncode == 0, run.stderr[-2000:]
    assert len(modules) > 100
