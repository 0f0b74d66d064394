"""A plugin that fails to import (or to register) is reported by name; the others still load and run.

The broken plugins are real entry points of a throwaway distribution on ``sys.path``,
found by ``importlib.metadata`` exactly like an installed third-party plugin.
"""
from __future__ import annotations

import json
import textwrap
from pathlib import Path

import faults
import pytest

from xaibench.api import cli

BROKEN_IMPORT = 'raise ImportError("needs libfoo >= 2, which is not installed")\n'
BROKEN_HOOK = textwrap.dedent("""
    from xaibench import hookimpl

    @hookimpl
    def xaibench_register_methods(register):
        raise RuntimeError("registration blew up")
    """)


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XAIBENCH_DISABLE_PLUGINS", faults.other_plugins())  # before ours are on the path
    site = faults.make_distribution(tmp_path / "site", {"faults": "faults:plugin", "broken": "xb_broken_import",
                                                        "badhook": "xb_broken_hook"})
    (site / "xb_broken_import.py").write_text(BROKEN_IMPORT)
    (site / "xb_broken_hook.py").write_text(BROKEN_HOOK)
    monkeypatch.syspath_prepend(str(site))
    return site


def test_plugins_lists_the_others_and_warns_naming_the_broken_ones(site: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["plugins"]) == 0
    out, err = capsys.readouterr()
    assert "warning: plugin 'broken' failed to load: ImportError: needs libfoo >= 2, which is not installed" in err
    assert "warning: plugin 'badhook' failed to load: xaibench_register_methods raised RuntimeError: " \
           "registration blew up" in err
    assert "probe" in out and "random" in out and "xaibench-faults 1.0 (faults)" in out

    assert cli.main(["plugins", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert {b["plugin"] for b in data["broken"]} == {"broken", "badhook"}
    assert "probe" in {m["name"] for m in data["methods"]}


def test_a_suite_of_working_plugins_runs_and_a_missing_name_mentions_the_broken_plugin(
        site: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    suite = tmp_path / "s.yaml"
    text = "name: s\nsamples: 4\ndatasets: [squares]\nmodels: [probe-cnn]\nmethods: [probe]\nmetrics: [mass]\n"
    suite.write_text(text)
    args = ["run", "--suite", str(suite), "--store", str(tmp_path / "r.sqlite"), "--out", str(tmp_path / "lb"),
            "--no-progress", "--no-figures"]
    assert cli.main(args) == 0, capsys.readouterr().err
    capsys.readouterr()
    suite.write_text(text.replace("[probe]", "[libfoo-saliency]"))
    assert cli.main(args) == 2
    err = capsys.readouterr().err
    assert "s.yaml:5: unknown method 'libfoo-saliency'" in err
    assert "plugin 'broken' failed to load: ImportError: needs libfoo >= 2" in err
