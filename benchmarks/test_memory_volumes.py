"""Peak memory of a suite of 128^3 volumes (issue 40): a measurement, not a timed test.

One ``xaibench run`` in a fresh process under ``/usr/bin/time -v`` (its "Maximum resident set size"): the
``synthetic-volumes`` dataset at 128^3 (``XAIBENCH_MEMORY_SAMPLES`` test volumes, default 100, all evaluated;
8 training and 4 validation volumes), the 3D small CNN trained for one epoch (the scores do not matter here,
the arrays do), five methods (two gradient ones, in calls of 4 volumes, and three baselines: their maps are
as large as any method's) and the localization and deletion metrics. Run it alone on a shared machine
(minutes on one core), and at a smaller ``XAIBENCH_MEMORY_SAMPLES`` to see what grows with the samples::

    OMP_NUM_THREADS=1 python -m pytest benchmarks/test_memory_volumes.py -s -p no:cacheprovider
    OMP_NUM_THREADS=1 XAIBENCH_MEMORY_SAMPLES=25 python -m pytest benchmarks/test_memory_volumes.py -s -p no:cacheprovider
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import report

SAMPLES = int(os.environ.get("XAIBENCH_MEMORY_SAMPLES", "100"))
SIDE = 128
#: The bound the issue states for the 100-volume suite on the CPU.
BOUND_GB = 4.0
SUITE = f"""name: memory-volumes
seed: 0
samples: {SAMPLES}
image_size: {SIDE}
target: predicted
batch_size: 4
datasets:
  - name: synthetic-volumes
    params: {{n_train: 8, n_val: 4, n_test: {SAMPLES}}}
models:
  - name: small-cnn
    params: {{width: 8, depth: 3}}
    train: {{epochs: 1, min_epochs: 1, batch_size: 4, patience: 0}}
methods:
  - gradcam
  - saliency
  - random
  - centre
  - ground-truth
metrics:
  - name: deletion-auc
    params: {{steps: 2}}
  - relevance-mass
  - hit-rate
  - iou
"""


@pytest.mark.skipif(not Path("/usr/bin/time").exists(), reason="needs GNU time (/usr/bin/time -v)")
def test_peak_rss_of_a_volume_suite(tmp_path: Path) -> None:
    suite = tmp_path / "memory-volumes.yaml"
    suite.write_text(SUITE)
    env = {**os.environ, "XAIBENCH_HOME": str(tmp_path / "home")}
    xaibench = shutil.which("xaibench") or f"{sys.executable} -m xaibench"
    command = ["/usr/bin/time", "-v", *xaibench.split(), "run", "--suite", str(suite), "--store",
               str(tmp_path / "r.sqlite"), "--out", str(tmp_path / "boards"), "--no-progress", "--no-figures"]
    start = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, cwd=tmp_path, check=False)
    wall = time.perf_counter() - start
    assert done.returncode == 0, done.stderr[-3000:]
    peak_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr).group(1))
    peak_gb = peak_kb * 1024 / 1e9
    data_gb = SAMPLES * SIDE**3 * (4 + 1 + 1) / 1e9  # the test split: float32 volumes, bool masks, int8 regions
    print(f"\n{SAMPLES} volumes at {SIDE}^3: peak RSS {peak_gb:.2f} GB (the test split itself {data_gb:.2f} GB), "
          f"wall {wall:.0f} s; load average {os.getloadavg()[0]:.1f}")
    report(f"memory: {SAMPLES} volumes at {SIDE}^3, 5 methods, localization + deletion", "peak RSS (GB)", peak_gb,
           f"< {BOUND_GB}")
    # reported against the bound, not asserted: 7.06 GB measured at N = 100 (docs/performance.md says what holds it)
