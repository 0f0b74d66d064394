"""Issue 14, case 7: method and metric parameters checked at suite load, with file:line and "did you mean"."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from xaibench.errors import SuiteError
from xaibench.params import accepted
from xaibench.plugins import load_harness
from xaibench.runner import Runner, RunOptions
from xaibench.store import Store
from xaibench.suite import load_suite


def _runner(tmp_path: Path, methods: str, metrics: str = "[dic]") -> Runner:
    path = tmp_path / "suite.yaml"
    path.write_text(f"name: p\ndatasets: [synthetic-lesions]\nmodels: [small-cnn]\nmethods:\n{methods}\n"
                    f"metrics: {metrics}\n")
    return Runner(load_harness(), load_suite(path), Store(tmp_path / "r.sqlite"), RunOptions(progress=False))


def test_case7_layer_on_a_method_without_a_target_layer(tmp_path: Path) -> None:
    with pytest.raises(SuiteError) as exc:
        _runner(tmp_path, "  - {name: saliency, params: {layer: features.0}}")
    assert str(exc.value) == (f"{tmp_path / 'suite.yaml'}:5: method 'saliency' takes no target layer: remove `layer` "
                              "(it applies to methods that explain a layer, such as the CAM family)")


def test_case7_misspelled_parameter_is_refused_before_running(tmp_path: Path) -> None:
    with pytest.raises(SuiteError) as exc:
        _runner(tmp_path, "  - gradcam\n  - {name: occlusion, params: {windw: 4}}")
    assert str(exc.value) == (f"{tmp_path / 'suite.yaml'}:6: method 'occlusion' has no parameter 'windw' (did you "
                              "mean 'window'?); it accepts fill, per_pixel, stride, window")
    with pytest.raises(SuiteError, match=r"suite.yaml:7: metric 'dic' has no parameter 'treshold' \(did you mean "
                                         r"'threshold'\?\)"):
        _runner(tmp_path, "  - gradcam", "\n  - {name: dic, params: {treshold: 0.5}}")


def test_case7_valid_parameters_pass(tmp_path: Path) -> None:
    runner = _runner(tmp_path, "  - {name: gradcam, params: {layer: features.0}}\n  - {name: occlusion, params: "
                               "{window: 4, fill: mean}}", "[{name: dic, params: {threshold: 0.5}}]")
    assert len(runner.methods) == 2


def test_case7_cli_exit_2_one_line(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("name: p\ndatasets: [synthetic-lesions]\nmodels: [small-cnn]\n"
                    "methods: [{name: saliency, params: {layer: features.0}}]\nmetrics: [dic]\n")
    out = subprocess.run([sys.executable, "-m", "xaibench", "run", "--suite", str(path)], capture_output=True,
                         text=True, cwd=tmp_path, timeout=300)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert f"{path}:4: method 'saliency' takes no target layer" in out.stderr


def test_accepted_reads_keywords_after_the_fixed_arguments() -> None:
    def explain(model, x, target, ctx, *, window=4, fill="zero"):  # type: ignore[no-untyped-def]
        return x

    def score(batch, sign="abs", steps=10):  # type: ignore[no-untyped-def]  # a future one-argument signature
        return batch

    def anything(model, x, target, ctx, **params):  # type: ignore[no-untyped-def]
        return x

    assert accepted(explain, 4) == {"window", "fill"}
    assert accepted(explain, 4, {"extra": 1}, takes_layer=True) == {"window", "fill", "extra", "layer"}
    assert accepted(score, 1) == {"sign", "steps"}
    assert accepted(anything, 4) is None
