"""Instant start: ``xaibench plugins`` and a cached CLI re-run of ``quick``, as ratios to ``import torch``.

Every figure is a fresh interpreter's wall time, measured in this run (best of 3, which on a
shared machine is the least disturbed): ``python -c pass`` (the interpreter alone),
``python -c "import torch"`` (the floor of any command that touches a model), ``xaibench
plugins``, ``xaibench hooks``, and the ``quick`` suite through the CLI, first run (empty cache)
and cached re-run. Targets: ``plugins`` under 1.5 s wall (it imports no torch); the cached
re-run at least 4x faster than the first run. The metadata commands alone::

    python -m pytest benchmarks/test_startup.py -k metadata -s -p no:cacheprovider
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from conftest import report


def _wall(args: list[str], env: dict[str, str], cwd: Path) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, *args], cwd=cwd, env=env, check=True, capture_output=True)
    return time.perf_counter() - start


def test_metadata_commands_vs_import_torch(tmp_path: Path) -> None:
    env = {**os.environ, "XAIBENCH_HOME": str(tmp_path / "home")}
    bare_s = min(_wall(["-c", "pass"], env, tmp_path) for _ in range(3))
    torch_s = min(_wall(["-c", "import torch"], env, tmp_path) for _ in range(3))
    plugins_s = min(_wall(["-m", "xaibench", "plugins"], env, tmp_path) for _ in range(3))
    hooks_s = min(_wall(["-m", "xaibench", "hooks"], env, tmp_path) for _ in range(3))
    print(f"\npython -c pass {bare_s:.2f} s, import torch {torch_s:.2f} s, xaibench plugins {plugins_s:.2f} s, "
          f"xaibench hooks {hooks_s:.2f} s, load average {os.getloadavg()[0]:.2f}")
    report("xaibench plugins", "wall time (s)", plugins_s, "< 1.5")
    report("xaibench plugins", "wall / import torch", plugins_s / torch_s, "")
    report("xaibench plugins", "wall / python -c pass", plugins_s / bare_s, "")
    report("xaibench hooks", "wall / import torch", hooks_s / torch_s, "")


def test_start_up_vs_import_torch(tmp_path: Path) -> None:
    env = {**os.environ, "XAIBENCH_HOME": str(tmp_path / "home")}
    torch_s = min(_wall(["-c", "import torch"], env, tmp_path) for _ in range(3))
    quick = ["-m", "xaibench", "run", "--suite", "quick", "--no-progress"]
    first = _wall(quick, env, tmp_path)
    again = min(_wall(quick, env, tmp_path) for _ in range(3))
    print(f"\nimport torch {torch_s:.2f} s, quick first {first:.2f} s, cached {again:.2f} s, "
          f"load average {os.getloadavg()[0]:.2f}")
    report("quick suite, CLI", "cached re-run / import torch", again / torch_s, "")
    report("quick suite, CLI", "first run / cached re-run", first / again, ">= 4")
