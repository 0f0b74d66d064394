"""The thread counts a user set stay set: every entry point leaves torch's and numba's unchanged.

Numba's OpenMP threading layer, started by the first parallel kernel, calls
``omp_set_num_threads(NUMBA_NUM_THREADS)``; torch (built on the same OpenMP) then ran on that many
threads (1 -> 2 with ``OMP_NUM_THREADS=1`` on two cores). Numba starts once per process, so each
entry point runs first in a fresh interpreter. ``NUMBA_NUM_THREADS=2`` makes numba's count differ from
torch's on any machine, as it does by default on a multi-core one.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SUITE = {"name": "threads", "seed": 0, "samples": 4, "image_size": 32, "batch_size": 32,
         "datasets": [{"name": "synthetic-lesions", "params": {"n_train": 32, "n_val": 8, "n_test": 4}}],
         "models": [{"name": "small-cnn", "params": {"width": 4, "depth": 2},
                     "train": {"epochs": 1, "patience": 0}}],
         "methods": ["random", "ground-truth"], "metrics": ["relevance-mass", "hit-rate"]}

MODEL = """
import torch
torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                            torch.nn.Flatten(), torch.nn.Linear(4, 2))
images = torch.rand(4, 1, 16, 16)
masks = torch.zeros(4, 16, 16, dtype=torch.bool)
masks[:, 4:10, 4:10] = True
"""

ENTRY_POINTS = {
    "xaibench.score (a numba kernel metric)": MODEL + (
        "import xaibench\nxaibench.score(model, images, None, images[:, 0], ['relevance-mass'], masks=masks)"),
    "xaibench.explain": MODEL + (
        "import xaibench\nxaibench.explain(model, images, method='integrated-gradients', n_steps=4)"),
    "xaibench.run": f"import xaibench\nxaibench.run({SUITE!r}, store='r.sqlite', progress=False)",
    "the CLI": (f"import json, pathlib\npathlib.Path('threads.json').write_text(json.dumps({SUITE!r}))\n"
                "from xaibench.api.cli import main\n"
                "assert main(['run', '--suite', 'threads.json', '--no-progress', '--out', 'boards']) == 0"),
}

# How the user set the counts: (environment, statements run before the entry point, numba's count)
SETTINGS = {
    "OMP_NUM_THREADS=1": ({"OMP_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "2"}, "", 2),
    "torch.set_num_threads(1) in-process": ({"NUMBA_NUM_THREADS": "2"}, "torch.set_num_threads(1)", 2),
    "numba.set_num_threads(1), then torch's": (
        {"NUMBA_NUM_THREADS": "2"}, "import numba\nnumba.set_num_threads(1)\ntorch.set_num_threads(1)", 1),
}

SCRIPT = """
import json, torch
{before}
torch_before = torch.get_num_threads()
{entry}
import numba
print(json.dumps([torch_before, torch.get_num_threads(), numba.get_num_threads()]))
"""


# every entry point under OMP_NUM_THREADS=1; the kernel metric's call under the other settings too
CASES = [*((entry, "OMP_NUM_THREADS=1") for entry in sorted(ENTRY_POINTS)),
         *(("xaibench.score (a numba kernel metric)", setting) for setting in sorted(SETTINGS)
           if setting != "OMP_NUM_THREADS=1")]


@pytest.mark.parametrize(("entry", "setting"), CASES)
def test_an_entry_point_leaves_the_thread_counts_the_user_set(entry: str, setting: str, tmp_path: Path) -> None:
    environment, before, numba_threads = SETTINGS[setting]
    env = {key: value for key, value in os.environ.items() if key not in ("OMP_NUM_THREADS", "NUMBA_NUM_THREADS")}
    env.update(environment, XAIBENCH_HOME=str(tmp_path / "home"))
    script = SCRIPT.format(before=before, entry=ENTRY_POINTS[entry])
    run = subprocess.run([sys.executable, "-c", script], env=env, cwd=tmp_path, capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr
    torch_before, torch_after, numba_after = json.loads(run.stdout.strip().splitlines()[-1])
    assert (torch_before, torch_after, numba_after) == (1, 1, numba_threads)
