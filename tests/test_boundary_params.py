"""Issue 14, case 7: method and metric parameters checked at suite load, with file:line and "did you mean"."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from xaibench.base.errors import SuiteError
from xaibench.suites.params import accepted
from xaibench.contract.plugins import load_harness
from xaibench.running.runner import Runner, RunOptions
from xaibench.storage.store import Store
from xaibench.suites.suite import load_suite


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


def _run_cli(tmp_path: Path, methods: str) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """``xaibench run`` on a one-line-methods suite ``s.yaml`` (methods on line 4), with its own empty XAIBENCH_HOME."""
    path = tmp_path / "s.yaml"
    path.write_text(f"name: p\ndatasets: [synthetic-lesions]\nmodels: [small-cnn]\nmethods: {methods}\nmetrics: [dic]\n")
    out = subprocess.run([sys.executable, "-m", "xaibench", "run", "--suite", str(path)], capture_output=True,
                         text=True, cwd=tmp_path, timeout=300, env={**os.environ, "XAIBENCH_HOME": str(tmp_path / "home")})
    return path, out


def test_case7_cli_exit_2_one_line(tmp_path: Path) -> None:
    path, out = _run_cli(tmp_path, "[{name: saliency, params: {layer: features.0}}]")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert f"{path}:4: method 'saliency' takes no target layer" in out.stderr


@pytest.mark.parametrize("entry,message", [
    ("{name: saliency, params: {noise_tunnel: {type: bogus}}}",
     "method 'saliency': noise_tunnel type must be one of smoothgrad, smoothgrad_sq, vargrad, got 'bogus'"),
    ("{name: integrated-gradients, params: {noise_tunnel: [1, 2]}}",
     "method 'integrated-gradients': noise_tunnel must be a mapping {type, samples, stdev}, got [1, 2]"),
    ("{name: guided-backprop, params: {noise_tunnel: {samples: abc}}}",
     "method 'guided-backprop': noise_tunnel needs an integer samples >= 1 and a finite stdev > 0, got 'abc' and 0.1"),
    ("{name: deeplift, params: {noise_tunnel: {samples: 0, stdev: .nan}}}",
     "method 'deeplift': noise_tunnel needs an integer samples >= 1 and a finite stdev > 0, got 0 and nan"),
    ("{name: saliency, params: {noise_tunnel: {typ: vargrad}}}",
     "method 'saliency': noise_tunnel: unknown key(s) typ; known: type, samples, stdev"),
    ("{name: smoothgrad, params: {noise_level: 0}}",
     "method 'smoothgrad': needs noise_level > 0 and samples >= 1 (an integer), got 0 and 50"),
    ("{name: vargrad, params: {noise_level: x}}",
     "method 'vargrad': needs noise_level > 0 and samples >= 1 (an integer), got 'x' and 50"),
    ("{name: smoothgrad-sq, params: {samples: 2.5}}",
     "method 'smoothgrad-sq': needs noise_level > 0 and samples >= 1 (an integer), got 0.15 and 2.5"),
])
def test_method_values_are_refused_with_file_and_line_before_anything_runs(tmp_path: Path, entry: str,
                                                                            message: str) -> None:
    """A method's spec ``check`` (here the noise tunnels' draws) refuses a value at suite load, where the suite names it."""
    with pytest.raises(SuiteError) as exc:
        _runner(tmp_path, f"  - gradcam\n  - {entry}")
    assert str(exc.value) == f"{tmp_path / 'suite.yaml'}:6: {message}"


@pytest.mark.parametrize("entry,message", [
    ("{name: integrated-gradients, params: {reduce: mean}}",
     "method 'integrated-gradients': reduce must be one of sum, abs, max_abs, got 'mean'"),
    ("{name: deeplift, params: {baseline: black}}",
     "method 'deeplift': baseline must be one of zero, mean, blur, noise, got 'black'"),
    ("{name: occlusion, params: {fill: black}}", "method 'occlusion': fill must be one of zero, mean, blur, noise, got 'black'"),
    ("{name: occlusion, params: {window: 0}}", "method 'occlusion': window must be an integer >= 1, got 0"),
    ("{name: occlusion-incremental, params: {stride: 2.5}}",
     "method 'occlusion-incremental': stride must be an integer >= 1 (or null: the window), got 2.5"),
    ("{name: feature-ablation, params: {per_pixel: yes please}}",
     "method 'feature-ablation': per_pixel must be true or false, got 'yes please'"),
    ("{name: gradient-shap, params: {n_samples: 0}}", "method 'gradient-shap': n_samples must be an integer >= 1, got 0"),
    ("{name: gradient-shap, params: {stdev: 0}}", "method 'gradient-shap': stdev must be a finite number > 0, got 0"),
    ("{name: gradient-shap, params: {stdev: true}}", "method 'gradient-shap': stdev must be a finite number > 0, got True"),
    ("{name: kernel-shap, params: {n_samples: -1}}", "method 'kernel-shap': n_samples must be an integer >= 0, got -1"),
    ("{name: lime, params: {n_segments: 0}}", "method 'lime': n_segments must be an integer >= 2, got 0"),
    ("{name: kernel-shap, params: {n_segments: 1}}", "method 'kernel-shap': n_segments must be an integer >= 2, got 1"),
    ("{name: lime, params: {compactness: 0}}", "method 'lime': compactness must be a finite number > 0, got 0"),
    ("{name: feature-ablation, params: {patch: 0}}", "method 'feature-ablation': patch must be an integer >= 1, got 0"),
    ("{name: lime, params: {kernel_width: .inf}}", "method 'lime': kernel_width must be a finite number > 0, got inf"),
    ("{name: integrated-gradients, params: {n_steps: true}}",
     "method 'integrated-gradients': n_steps must be an integer >= 1, got True"),
])
def test_captum_method_values_are_refused_by_one_rule_per_parameter(tmp_path: Path, entry: str, message: str) -> None:
    with pytest.raises(SuiteError) as exc:
        _runner(tmp_path, f"  - gradcam\n  - {entry}")
    assert str(exc.value) == f"{tmp_path / 'suite.yaml'}:6: {message}"


def test_every_builtin_suite_passes_the_method_checks() -> None:
    """The checks refuse no parameter a built-in suite sets (its defaults included)."""
    from xaibench.suites.params import check_plugin_params

    harness = load_harness()
    suites = sorted((Path(__file__).resolve().parents[1] / "plugins" / "xaibench_suites" / "suites").glob("*.yaml"))
    assert suites
    for path in suites:
        suite = load_suite(path)
        for entry in suite.methods:
            check_plugin_params(f"{path}:{entry.line}", "method", entry.display, harness.methods.get(entry.name),
                                entry.params)


def test_method_values_the_check_accepts_pass(tmp_path: Path) -> None:
    runner = _runner(tmp_path, "  - {name: saliency, params: {noise_tunnel: {type: vargrad, samples: 4, stdev: 1}}}\n"
                               "  - {name: smoothgrad, params: {samples: 1, noise_level: 2}}\n  - integrated-gradients\n"
                               "  - {name: kernel-shap, params: {n_samples: 0}}\n"
                               "  - {name: occlusion, params: {window: 4, stride: null, fill: noise, per_pixel: false}}\n"
                               "  - {name: feature-ablation, params: {patch: 1}}\n"
                               "  - {name: occlusion-incremental, params: {window: 4, stride: 1}}")
    assert len(runner.methods) == 7


def test_method_value_cli_exit_2_one_line_before_any_training(tmp_path: Path) -> None:
    path, out = _run_cli(tmp_path, "[{name: saliency, params: {noise_tunnel: {type: bogus}}}]")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.strip().splitlines() == [f"error: {path}:4: method 'saliency': noise_tunnel type must be one of "
                                               "smoothgrad, smoothgrad_sq, vargrad, got 'bogus'"]
    assert out.stdout == "" and not (tmp_path / "home").exists()  # no data generated, no model trained, no cache


def test_method_values_are_refused_by_the_python_api_in_one_line() -> None:
    import torch

    import xaibench
    from xaibench.authoring.testing import tiny_model

    model, x = tiny_model("image", in_channels=1), torch.rand(2, 1, 16, 16)
    with pytest.raises(SuiteError) as exc:
        xaibench.explain(model, x, method="saliency", noise_tunnel={"type": "bogus"})
    assert str(exc.value) == ("xaibench.explain: method 'saliency': noise_tunnel type must be one of smoothgrad, "
                              "smoothgrad_sq, vargrad, got 'bogus'")


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
