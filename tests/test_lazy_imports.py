"""Instant start: loading the plugins registers every spec without importing the heavy libraries.

Those libraries (torch itself, numerical, plotting, peer explainers) load on first use: by the
method, metric, dataset or model that needs them (named with :func:`xaibench.contract.lazy.lazy`), or
by the numba kernels at their first call.
"""
from __future__ import annotations

import inspect
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from xaibench import hookimpl
from xaibench.base.errors import XaibenchError
from xaibench.contract.lazy import lazy
from xaibench.contract.plugins import load_harness
from xaibench.running.runner import RunOptions, Runner
from xaibench.contract.specs import MetricSpec
from xaibench.storage.store import Store
from xaibench.suites.suite import load_suite

HEAVY = ("torch", "captum", "pytorch_grad_cam", "scipy", "sklearn", "skimage", "matplotlib", "numba", "quantus",
         "torchvision", "pandas", "torch._dynamo")

SCRIPT = """
import contextlib, io, json, sys
{body}
print(json.dumps(sorted(m for m in {heavy!r} if m in sys.modules)))
"""

CASES = {
    "xaibench plugins": "from xaibench.api.cli import main\nwith contextlib.redirect_stdout(io.StringIO()):\n"
                        "    code = main(['plugins'])\nassert code == 0, code",
    "import xaibench.api.cli": "import xaibench.api.cli",
    # torch loads when one of them is called (a metric's parameters are checked against its function's signature)
    "the Python API's names": "import xaibench, xaibench.api\nfor name in xaibench.API:\n"
                              "    assert getattr(xaibench, name) is getattr(xaibench.api, name)",
    "xaibench hooks": "from xaibench.api.cli import main\nwith contextlib.redirect_stdout(io.StringIO()):\n"
                      "    code = main(['hooks'])\nassert code == 0, code",
    "xaibench --help": "from xaibench.api.cli import main\ntry:\n    with contextlib.redirect_stdout(io.StringIO()):\n"
                       "        main(['--help'])\nexcept SystemExit as exit:\n    assert exit.code == 0, exit.code",
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

    from xaibench.scoring import kernels

    curves = np.array([[1.0, 0.5, 0.0], [0.0, 0.0, 1.0]])
    np.testing.assert_allclose(kernels.auc(curves), [0.5, 0.25])
    assert "numba" in sys.modules


def test_every_builtin_spec_resolves_and_its_score_takes_its_needs() -> None:
    """What registration no longer imports is imported here: every lazily named function exists, and every
    metric's score takes the needs it declares (the check a registration of a loaded function makes at once)."""
    harness = load_harness()
    named = 0
    for kind in ("datasets", "models", "methods", "metrics"):
        for entry in harness.registry(kind):
            for value in vars(entry.spec).values():
                if hasattr(value, "resolve"):
                    assert callable(value.resolve()), (entry.spec.name, value)
                    named += 1
            if kind == "metrics":
                entry.spec.check_score()
    assert named > 60


def test_a_lazy_function_equals_its_target_pickles_by_name_and_shows_its_signature() -> None:
    one = lazy("xaibench.scoring.kernels:auc")
    assert not one.loaded and one == lazy("xaibench.scoring.kernels:auc") and one != lazy("xaibench.scoring.kernels:auc", 1)
    again = pickle.loads(pickle.dumps(one))
    assert again == one and not again.loaded
    from xaibench.scoring import kernels

    assert list(inspect.signature(one).parameters) == list(inspect.signature(kernels.auc).parameters)
    assert one.loaded and one.resolve() is kernels.auc
    with pytest.raises(ValueError, match="package.module:attribute"):
        lazy("xaibench.scoring.kernels.auc")


def test_a_lazy_score_missing_a_declared_need_is_refused_before_the_run(tmp_path: Path) -> None:
    """Registration cannot read a lazy function's signature without importing it; the suite's validation does."""
    class Plugin:
        @hookimpl
        def xaibench_register_metrics(self, register):  # type: ignore[no-untyped-def]
            register(MetricSpec(name="lazy-auc", score=lazy("xaibench.scoring.kernels:auc"), category="complexity",
                                higher_is_better=True, description="declares maps, takes curves"))

    harness = load_harness([("lazy-plugin", Plugin())])
    path = tmp_path / "suite.yaml"
    path.write_text("name: p\ndatasets: [synthetic-lesions]\nmodels: [small-cnn]\nmethods: [random]\n"
                    "metrics: [lazy-auc]\n")
    with pytest.raises(XaibenchError, match=r"suite.yaml:5: metric 'lazy-auc' declares needs 'maps' that its "
                                            r"function does not take"):
        Runner(harness, load_suite(path), Store(tmp_path / "r.sqlite"), RunOptions(progress=False))
    with pytest.raises(ValueError, match="declares needs 'maps'"):  # a loaded function is checked at once
        MetricSpec(name="x", score=lazy("xaibench.scoring.kernels:auc").resolve(), category="complexity",
                   higher_is_better=True, description="")
