"""`xaibench new`: names, package layout, refusals, and the generated plugin registering in-process.

Installing the generated packages and running their own tests is in test_contributors.py.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

from xaibench.api.cli import main
from xaibench.base.errors import XaibenchError
from xaibench.contract.plugins import load_harness
from xaibench.authoring.scaffold import KINDS, PluginNames, new_plugin, render


def load_module(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_names_derive_from_the_registered_name() -> None:
    names = PluginNames.of("grad-x-input")
    assert names == PluginNames("grad-x-input", "xaibench-grad-x-input", "xaibench_grad_x_input")
    assert PluginNames.of("xaibench-rise2").dist == "xaibench-rise2"
    for bad in ("Grad", "1st", "a--b", "a_b", "-a", ""):
        with pytest.raises(XaibenchError, match="lowercase words joined by hyphens"):
            PluginNames.of(bad)


@pytest.mark.parametrize("kind", KINDS)
def test_package_layout_and_entry_point(kind: str, tmp_path: Path) -> None:
    root = new_plugin(kind, f"my-{kind}", tmp_path / "pkg")
    files = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
    assert files == ["README.md", "pyproject.toml", f"src/xaibench_my_{kind}/__init__.py",
                     f"src/xaibench_my_{kind}/plugin.py", "tests/test_plugin.py"]
    pyproject = (root / "pyproject.toml").read_text()
    assert f'\nname = "xaibench-my-{kind}"\n' in pyproject
    assert f'[project.entry-points.xaibench]\nxaibench_my_{kind} = "xaibench_my_{kind}.plugin"\n' in pyproject
    for path in root.rglob("*"):
        if path.is_file():
            text = path.read_text()
            assert "{{" not in text, f"unfilled placeholder in {path}"
            if path.suffix == ".py":
                compile(text, str(path), "exec")


@pytest.mark.parametrize("kind", KINDS)
def test_generated_plugin_registers_its_spec(kind: str, tmp_path: Path) -> None:
    root = new_plugin(kind, f"gen-{kind}", tmp_path / "pkg")
    module = load_module(root / "src" / f"xaibench_gen_{kind}" / "plugin.py", f"xaibench_gen_{kind}_plugin")
    harness = load_harness([("generated", module)], entry_points=False)
    entry = harness.registry(f"{kind}s").entry(f"gen-{kind}")
    assert entry.plugin == "generated" and entry.spec.description


def test_refuses_to_overwrite_and_unknown_kinds(tmp_path: Path) -> None:
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine")
    with pytest.raises(XaibenchError, match="already exists and is not empty"):
        new_plugin("method", "x", tmp_path / "taken")
    assert (tmp_path / "taken" / "notes.txt").read_text() == "mine"
    with pytest.raises(XaibenchError, match="unknown plugin kind 'model'; choose one of method, metric, dataset"):
        new_plugin("model", "x", tmp_path / "other")
    with pytest.raises(KeyError, match="placeholder"):
        render("{{nope}}", {"name": "x"})


def test_cli_new_defaults_to_the_distribution_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["new", "metric", "my-score"]) == 0
    assert (tmp_path / "xaibench-my-score" / "src" / "xaibench_my_score" / "plugin.py").exists()
    assert "python -m pip install -e" in capsys.readouterr().out
    assert main(["new", "metric", "My Score"]) == 2
    assert "error: plugin name 'My Score' must be lowercase" in capsys.readouterr().err
