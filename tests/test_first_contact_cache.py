"""Numba's ``cache=True`` files go under XAIBENCH_HOME, never inside the installed package (issue 21)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import xaibench

PACKAGE = Path(xaibench.__file__).parent

SCRIPT = """
import numpy as np
from xaibench.scoring import kernels
sal = np.random.default_rng(0).random((4, 8, 8)).astype(np.float32)
masks = np.zeros((4, 8, 8), bool); masks[:, 2:5, 2:5] = True
s = kernels.mask_scores(sal, masks, (0.1,))
print(s.mass.round(3).tolist(), s.rank.round(3).tolist())
"""


def _package_files() -> set[Path]:
    return {p for p in PACKAGE.rglob("*") if p.is_file() and p.suffix != ".pyc"}


def test_numba_cache_lives_under_xaibench_home(tmp_path: Path) -> None:
    before = _package_files()
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    env["XAIBENCH_HOME"] = str(tmp_path / "home")
    run = subprocess.run([sys.executable, "-c", SCRIPT], env=env, cwd=tmp_path, capture_output=True, text=True,
                         timeout=600)
    assert run.returncode == 0, run.stderr
    written = sorted((tmp_path / "home" / "numba").rglob("*.nbi"))
    assert written, "numba wrote no index file under XAIBENCH_HOME/numba"
    assert any("kernels" in p.name for p in written)
    assert _package_files() == before, "files appeared inside the xaibench package"


def test_an_explicit_numba_cache_dir_is_respected(tmp_path: Path) -> None:
    env = dict(os.environ, XAIBENCH_HOME=str(tmp_path / "home"), NUMBA_CACHE_DIR=str(tmp_path / "mine"))
    run = subprocess.run([sys.executable, "-c", SCRIPT], env=env, cwd=tmp_path, capture_output=True, text=True,
                         timeout=600)
    assert run.returncode == 0, run.stderr
    assert sorted((tmp_path / "mine").rglob("*.nbi"))
    assert not (tmp_path / "home" / "numba").exists()
