"""Suite validation: every error names the file and the line."""
from __future__ import annotations

from pathlib import Path

import pytest

from xaibench.base.errors import SuiteError
from xaibench.contract.plugins import load_harness
from xaibench.suites.suite import load_suite

GOOD = """
name: s
seed: 3
samples: 5
target: label
datasets:
  - name: synthetic-lesions
    params: {n_train: 30}
models:
  - name: small-cnn
    train: {epochs: 1}
methods:
  - gradcam
  - {name: occlusion, label: occ-4, params: {window: 4}}
metrics: [dic]
"""


def test_valid_suite_loads(write_suite) -> None:  # type: ignore[no-untyped-def]
    s = load_suite(write_suite(GOOD))
    assert (s.name, s.seed, s.samples, s.target) == ("s", 3, 5, "label")
    assert s.datasets[0].params == {"n_train": 30} and s.models[0].train == {"epochs": 1}
    assert [m.display for m in s.methods] == ["gradcam", "occ-4"]
    assert s.methods[1].line == 13
    assert s.cell_timeout is None
    assert load_suite(write_suite(GOOD.replace("samples: 5", "cell_timeout: 2.5"))).cell_timeout == 2.5


@pytest.mark.parametrize(
    "text, message",
    [
        ("name: s\ndatasets: [a\nmodels: []\n", r"suite.yaml:3: malformed YAML"),
        ("name: s\nmetircs: [a]\n", r"suite.yaml:2: unknown key 'metircs' \(did you mean 'metrics'\?\)"),
        ("name: s\ndatasets: [a]\n", r"suite.yaml:1: missing required key 'models'"),
        (GOOD.replace("samples: 5", "samples: five"), r"suite.yaml:3: 'samples' must be int"),
        (GOOD.replace("target: label", "target: truth"), r"suite.yaml:4: 'target' must be one of"),
        (GOOD.replace("    train: {epochs: 1}", "    trian: {epochs: 1}"), r"suite.yaml:10: unknown key 'trian' in models \(did you mean 'train'\?\)"),
        (GOOD.replace("  - gradcam", "  - {name: occlusion, label: occ-4}"), r"suite.yaml:13: method 'occ-4' appears twice \(first on line 12\)"),
        (GOOD.replace("metrics: [dic]", "metrics: []"), r"suite.yaml:\d+: 'metrics' is empty"),
        ("- just\n- a list\n", r"suite.yaml:1: a suite is a YAML mapping"),
        (GOOD.replace("samples: 5", "samples: 0"), r"suite.yaml:3: 'samples' must be positive"),
        (GOOD.replace("samples: 5", "cell_timeout: soon"), r"suite.yaml:3: 'cell_timeout' must be int or float or null"),
        (GOOD.replace("samples: 5", "cell_timeout: 0"), r"suite.yaml:3: 'cell_timeout' must be a positive number"),
    ],
)
def test_bad_suites_name_file_and_line(write_suite, text: str, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SuiteError, match=message):
        load_suite(write_suite(text))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SuiteError, match="cannot read suite"):
        load_suite(tmp_path / "nope.yaml")


def test_yaml_is_loaded_safely(write_suite) -> None:  # type: ignore[no-untyped-def]
    path = write_suite("name: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(SuiteError, match="malformed YAML"):
        load_suite(path)


def test_unknown_plugin_name_in_suite_points_at_its_line(write_suite) -> None:  # type: ignore[no-untyped-def]
    from xaibench.running.runner import Runner
    from xaibench.storage.store import Store

    path = write_suite(GOOD.replace("  - gradcam", "  - gradcma"))
    with Store(path.parent / "r.sqlite") as store, pytest.raises(SuiteError) as err:
        Runner(load_harness(), load_suite(path), store)
    assert "suite.yaml:12: unknown method 'gradcma' (did you mean 'gradcam'" in str(err.value)


def test_builtin_suites_are_valid_and_named_after_their_files() -> None:
    h = load_harness()
    for entry in h.suites:
        suite = load_suite(entry.spec.path)
        assert suite.name == entry.spec.name
        for kind in ("datasets", "models", "methods", "metrics"):
            for e in getattr(suite, kind):
                h.registry(kind).get(e.name)
