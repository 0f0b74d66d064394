"""Suite values from the command line (``xaibench run --set KEY=VALUE``) and from Python (``overrides=``).

Expected values are written by hand from the suite files below: what the overridden suite must hold, and the
one line each bad override must give (naming ``--set KEY``, never a line past the file's end).
"""
from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import xaibench
from xaibench.base.errors import SuiteError
from xaibench.suites.overrides import parse_assignments
from xaibench.suites.suite import Suite, load_suite

SUITE = """\
name: set-test
samples: 12
datasets: [{name: synthetic-lesions, params: {n_train: 64, n_val: 16, n_test: 12}}]
models:
  - name: small-cnn
    params: {width: 8, depth: 3}
    train: {epochs: 3, batch_size: 32, patience: 0}
methods: [saliency, random]
metrics: [hit-rate, relevance-mass]
"""


@pytest.fixture
def suite_file(tmp_path: Path) -> Path:
    path = tmp_path / "set-test.yaml"
    path.write_text(SUITE, encoding="utf-8")
    return path


def test_values_are_typed_as_yaml() -> None:
    assert parse_assignments(["image_size=224", "target=label", "methods=[saliency, gradcam]", "cell_timeout=",
                              "seed=3", "seed=4", "models.0.train.lr=0.001"]) == {
        "image_size": 224, "target": "label", "methods": ["saliency", "gradcam"], "cell_timeout": None,
        "seed": 4, "models.0.train.lr": 0.001}


@pytest.mark.parametrize(("text", "line"), [
    ("image_size", "--set image_size: give KEY=VALUE, e.g. --set image_size=224 or --set models.0.train.epochs=3"),
    ("=3", "--set =3: give KEY=VALUE, e.g. --set image_size=224 or --set models.0.train.epochs=3"),
    ("methods=[a", "--set methods: the value '[a' is not YAML (expected ',' or ']', but got '<stream end>')"),
])
def test_malformed_assignments_give_one_line(text: str, line: str) -> None:
    with pytest.raises(SuiteError) as err:
        parse_assignments([text])
    assert str(err.value) == line


def test_overrides_land_where_their_keys_say(suite_file: Path) -> None:
    suite = load_suite(suite_file, {"image_size": 48, "samples": 4, "models.0.train.epochs": 1,
                                    "models.small-cnn.params.width": 4, "methods.random.label": "chance",
                                    "methods.saliency.params": {"abs": False}, "metrics": ["hit-rate"]})
    assert (suite.image_size, suite.samples) == (48, 4)
    [model] = suite.models
    assert model.train == {"epochs": 1, "batch_size": 32, "patience": 0}
    assert model.params == {"width": 4, "depth": 3}
    assert [(m.name, m.display, dict(m.params)) for m in suite.methods] == [
        ("saliency", "saliency", {"abs": False}), ("random", "chance", {})]
    assert [m.name for m in suite.metrics] == ["hit-rate"]
    # what the file does not set keeps the file's value; the overrides are recorded as given
    assert suite.seed == 0 and suite.datasets[0].params == {"n_train": 64, "n_val": 16, "n_test": 12}
    assert suite.overrides["image_size"] == 48
    plain = load_suite(suite_file)
    assert plain.samples == 12 and plain.digest() != suite.digest()
    assert load_suite(suite_file, {"image_size": 48}).digest() == load_suite(suite_file, {"image_size": 48}).digest()


#: Every top-level key of a suite file: what the checks give when a mapping is set where a scalar or list belongs.
TOP_KEYS = [f.name for f in dataclasses.fields(Suite) if f.name not in ("path", "overrides", "override_lines")]


@pytest.mark.parametrize("key", TOP_KEYS)
def test_every_suite_key_takes_a_value_and_refuses_a_wrong_type(suite_file: Path, key: str) -> None:
    good = {"name": "renamed", "description": "d", "seed": 7, "samples": 3, "image_size": 40, "target": "label",
            "batch_size": 5, "cell_timeout": 9.5, "meta_evaluation": 1, "folds": 2, "datasets": ["synthetic-lesions"],
            "models": ["small-cnn"], "methods": ["gradcam"], "metrics": ["dic"]}[key]
    suite = load_suite(suite_file, {key: good})
    value = getattr(suite, key)
    if key in ("datasets", "models", "methods", "metrics"):
        assert [e.name for e in value][:1] == good
    else:
        assert value == good
    with pytest.raises(SuiteError) as err:
        load_suite(suite_file, {key: {"a": 1}})
    message = str(err.value)
    assert message.startswith(f"--set {key}: ") and "\n" not in message
    if key == "target":  # a mapping is a region target (a segmenter's): its keys are checked
        assert message == "--set target: 'target': unknown target key 'a'; keys: region, class, reduce, box, pixel"
        return
    assert f"'{key}' must be " in message or f"each of '{key}' is a name or a mapping" in message


@pytest.mark.parametrize(("overrides", "line"), [
    ({"imag_size": 64}, "--set imag_size: unknown key 'imag_size' (did you mean 'image_size' or 'batch_size'?)"),
    ({"image_size": "big"}, "--set image_size: 'image_size' must be int or null, got str"),
    ({"samples": 0}, "--set samples: 'samples' must be positive"),
    ({"target": "logit"}, "--set target: 'target' must be one of predicted, label, or a region target such as "
     "{region: predicted, class: 1, reduce: sum}"),
    ({"models.2.train.epochs": 1}, "--set models.2.train.epochs: models has 1 item (0 to 0), not 2"),
    ({"models.resnet.train.epochs": 1},
     "--set models.resnet.train.epochs: models has no entry 'resnet' (entries: small-cnn; or give an index)"),
    ({"models.0.train.epoch": 1}, "--set models.0.train.epoch: unknown training option 'epoch' (did you mean "
     "'epochs' or 'min_epochs'?); known: epochs, batch_size, lr, weight_decay, augment, patience, min_epochs, "
     "frozen_epochs, location_supervision, threads"),
    ({"models.0.train.epochs": 0},
     "--set models.0.train.epochs: training option 'epochs' must be an integer of at least 1, got 0"),
    ({"samples.n": 3}, "--set samples.n: samples is int 12, which has no key 'n'"),
    ({"methods.0.bogus": 1}, "--set methods.0.bogus: unknown key 'bogus' in methods"),
    ({"models..train": 1}, "--set models..train: a dotted key has no empty parts, e.g. models.0.train.epochs"),
])
def test_bad_overrides_name_the_key_in_one_line(suite_file: Path, overrides: dict, line: str) -> None:
    with pytest.raises(SuiteError) as err:
        load_suite(suite_file, overrides)
    assert str(err.value) == line


def test_a_bad_value_deeper_in_the_file_still_names_its_line(suite_file: Path) -> None:
    suite_file.write_text(SUITE.replace("epochs: 3", "epochs: 0"), encoding="utf-8")
    with pytest.raises(SuiteError, match=r"set-test\.yaml:7: training option 'epochs'"):
        load_suite(suite_file, {"samples": 4})
    assert load_suite(suite_file, {"models.0.train.epochs": 2}).models[0].train["epochs"] == 2


def _cli(*args: str, cwd: Path, home: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "xaibench", *args], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, "XAIBENCH_HOME": str(home)}, timeout=300)


def test_the_cli_refuses_a_bad_value_before_anything_runs(tmp_path: Path, suite_file: Path) -> None:
    home = tmp_path / "home"
    out = _cli("run", "--suite", str(suite_file), "--set", "image_size=big", "--no-progress", cwd=tmp_path, home=home)
    assert out.returncode == 2
    assert out.stderr.strip() == "error: --set image_size: 'image_size' must be int or null, got str"
    assert not home.exists() and not (tmp_path / "xaibench-results").exists()


@pytest.mark.slow
def test_cli_set_and_python_overrides_give_the_same_numbers(tmp_path: Path, suite_file: Path) -> None:
    overrides = {"samples": 4, "image_size": 32, "models.0.train.epochs": 1}
    home = tmp_path / "home"
    args = [a for k, v in overrides.items() for a in ("--set", f"{k}={v}")]
    run = _cli("run", "--suite", str(suite_file), *args, "--store", "cli.sqlite", "--out", "boards", "--no-progress",
               "--no-figures", cwd=tmp_path, home=home)
    assert run.returncode == 0, run.stderr
    cli = json.loads(_cli("results", "--suite", "set-test", "--store", "cli.sqlite", "--format", "json",
                          cwd=tmp_path, home=home).stdout)
    os.environ["XAIBENCH_HOME"], before = str(home), os.environ.get("XAIBENCH_HOME")
    try:
        results = xaibench.run(suite_file, store=tmp_path / "api.sqlite", progress=False, overrides=overrides)
    finally:
        os.environ.pop("XAIBENCH_HOME") if before is None else os.environ.__setitem__("XAIBENCH_HOME", before)
    assert results.runner.suite.samples == 4 and results.runner.suite.image_size == 32
    cli_cells = {(c["method"], c["metric"]): (c["mean"], c["n"]) for c in cli}
    api_cells = {(r.method, r.metric): (r.mean, r.n) for r in results.cells}
    # 4 test samples drawn, not the file's 12 (hit rate and relevance mass score those with a lesion mask)
    assert len(cli_cells) == 4 and all(1 <= n <= 4 for _, n in cli_cells.values())
    assert api_cells == cli_cells
