"""``medical --device <bench device>`` against the CPU leaderboard committed in ``leaderboards/medical.json``.

Runs only with ``XAIBENCH_BENCH_DEVICE`` set to a non-CPU device (``benchmarks/gpu.sh`` sets it): the whole
suite through the CLI into a temporary store and board folder, then every number of the new board's JSON
is compared with the same place in the committed one. Reported, not asserted: the device's run trains its
own model (the device is part of every cache key), so its scores equal the CPU's only as far as the two
trainings agree; the rows say how far that is (the largest difference, and how many numbers differ by more
than 1e-4). The header's timings and device are not compared.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import BENCH_DEVICE, report

ROOT = Path(__file__).resolve().parents[1]
#: Header fields that describe the run, not its scores.
IGNORED = {"device", "seconds", "created", "versions", "wall_seconds"}


def _leaves(node: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key not in IGNORED:
                yield from _leaves(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _leaves(value, f"{path}[{i}]")
    else:
        yield path, node


@pytest.mark.skipif(BENCH_DEVICE == "cpu", reason="set XAIBENCH_BENCH_DEVICE=cuda (benchmarks/gpu.sh does)")
def test_medical_on_the_device_vs_the_cpu_leaderboard(tmp_path: Path) -> None:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "xaibench", "run", "--suite", "medical", "--device", BENCH_DEVICE,
                    "--out", str(tmp_path / "boards"), "--store", str(tmp_path / "r.sqlite"), "--no-progress"],
                   check=True, env={**os.environ, "XAIBENCH_HOME": str(tmp_path / "home")})
    seconds = time.perf_counter() - start
    ours = dict(_leaves(json.loads((tmp_path / "boards" / "medical.json").read_text())))
    cpu = dict(_leaves(json.loads((ROOT / "leaderboards" / "medical.json").read_text())))
    numbers = [(abs(ours[k] - v), k) for k, v in cpu.items()
               if isinstance(v, (int, float)) and isinstance(ours.get(k), (int, float)) and v == v and ours[k] == ours[k]]
    strings = [k for k, v in cpu.items() if isinstance(v, str) and ours.get(k) != v]
    worst = max(numbers, default=(0.0, ""))
    print(f"\nmedical on {BENCH_DEVICE}: {seconds:.0f} s; {len(numbers)} numbers compared, largest difference "
          f"{worst[0]:.3g} at {worst[1]}; {len(strings)} strings differ (first: {strings[:3]}); "
          f"{len(set(cpu) ^ set(ours))} places in one board only")
    case = f"medical --device {BENCH_DEVICE} vs leaderboards/medical.json"
    report(case, "largest |device - CPU| over the board's numbers", worst[0], "small (own training)")
    report(case, "numbers differing by > 1e-4", sum(d > 1e-4 for d, _ in numbers), "")
    report(case, "wall seconds of the run", seconds, "")
