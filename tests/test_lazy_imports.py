"""Instant start: loading the plugins registers every spec without importing the heavy libraries.

Those libraries (numerical, plotting, peer explainers) load on first use: by the method,
metric, dataset or model that needs them, or by the numba kernels at their first call.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

HEAVY = ("captum", "pytorch_grad_cam", "scipy", "sklearn", "skimage", "matplotlib", "numba", "quantus",
         "torchvision", "pandas", "torch._dynamo")

SCRIPT = """
import contextlib, io, json, sys
{body}
print(json.dumps(sorted(m for m in {heavy!r} if m in sys.modules)))
"""

CASES = {
    "xaibench plugins": "from xaibench.cli import main\nwith contextlib.redirect_stdout(io.StringIO()):\n"
                        "    code = main(['plugins'])\nassert code == 0, code",
    "import xaibench.cli": "import xaibench.cli",
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_no_heavy_library_is_imported_to_list_the_plugins(case: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    env = dict(os.environ, XAIBENCH_HOME=str(tmp_path / "home"))
    run = subprocess.run([sys.executable, "-c", SCRIPT.format(body=CASES[case], heavy=HEAVY)], env=env, cwd=tmp_path,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout.strip().splitlines()[-1]) == []


def test_a_kernel_compiles_on_first_call_and_equals_its_reference() -> None:
    import numpy as np

    from xaibench import kernels

    curves = np.array([[1.0, 0.5, 0.0], [0.0, 0.0, 1.0]])
    np.testing.assert_allclose(kernels.auc(curves), [0.5, 0.25])
    assert "numba" in sys.modules
