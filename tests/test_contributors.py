"""The contributor's path, run as CONTRIBUTING.md tells a contributor to, in a temporary directory.

The commands and the suite come from CONTRIBUTING.md's "Your first method" section
(with the test's own plugin names), so the guide and this test cannot drift apart.
`xaibench new method|metric|dataset NAME` writes plugin packages; they and the
example third-party plugin under examples/ are pip-installed (editable, no deps,
no build isolation: fast and offline) into the current environment, discovered
through their entry points by a fresh process, pass their own generated tests,
and a new method reaches a leaderboard without any core file being edited.
Everything installed here is uninstalled when the module's tests finish.
"""
from __future__ import annotations

import importlib
import os
import re
import site
import subprocess
import sys
import sysconfig
from importlib import metadata
from pathlib import Path
from typing import Iterator

import pytest
import yaml

from xaibench.api.cli import main
from xaibench.contract.plugins import load_harness

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "xaibench-example-plugin"
#: kind -> the name a contributor gives the new plugin (distinct from every built-in name).
NEW = {"method": "contrib-gradient-x-input", "metric": "contrib-region-drop", "dataset": "contrib-bars"}
DISTS = ["xaibench-example-plugin", *(f"xaibench-{name}" for name in NEW.values())]
GUIDE_NAME = "my-method"  # the name CONTRIBUTING.md's walk-through uses


def guide_block(language: str) -> str:
    """The first ``language`` code block of CONTRIBUTING.md's walk-through, with the test's method name."""
    section = (REPO / "CONTRIBUTING.md").read_text(encoding="utf-8").split("## Your first method", 1)[-1]
    match = re.search(rf"```{language}\n(.*?)```", section, re.S)
    assert match, f"CONTRIBUTING.md's 'Your first method' section lost its {language} block"
    return match.group(1).replace(GUIDE_NAME, NEW["method"])


def run(*argv: str, cwd: Path, env: dict[str, str] | None = None,
        timeout: int = 240) -> subprocess.CompletedProcess[str]:
    """A command as a contributor types it, with this interpreter's environment."""
    return subprocess.run(list(argv), cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})})


def xaibench(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return run(sys.executable, "-m", "xaibench", *args, cwd=cwd, env=env)


def pip(*args: str, cwd: Path) -> None:
    out = run(sys.executable, "-m", "pip", *args, "-q", "--disable-pip-version-check", cwd=cwd)
    assert out.returncode == 0, out.stdout + out.stderr


def _installed(dist: str) -> bool:
    try:
        metadata.distribution(dist)
        return True
    except metadata.PackageNotFoundError:
        return False


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Steps 1 and 2 of CONTRIBUTING.md: generate the packages, pip-install them and the example."""
    root = tmp_path_factory.mktemp("contributor")
    leftovers = [d for d in DISTS if _installed(d)]  # from an interrupted earlier run
    if leftovers:
        pip("uninstall", "-y", *leftovers, cwd=root)
    steps = guide_block("bash")
    assert f"xaibench new method {NEW['method']}" in steps
    out = xaibench("new", "method", NEW["method"], cwd=root)
    assert out.returncode == 0, out.stderr
    for kind in ("metric", "dataset"):  # the same command, in-process to save an interpreter start
        assert main(["new", kind, NEW[kind], "--dir", str(root / f"xaibench-{NEW[kind]}")]) == 0
    assert f"python -m pip install -e ./xaibench-{NEW['method']}" in steps
    editable = [arg for path in [EXAMPLE, *(root / f"xaibench-{n}" for n in NEW.values())] for arg in ("-e", str(path))]
    try:
        pip("install", "--no-deps", "--no-build-isolation", *editable, cwd=root)
        yield root
    finally:
        pip("uninstall", "-y", *DISTS, cwd=root)


def test_generated_packages_and_the_example_pass_their_own_tests(workdir: Path) -> None:
    """Each package's tests, which run xaibench's conformance kit (xaibench.authoring.testing) on its plugin."""
    tests = [str(workdir / f"xaibench-{name}" / "tests") for name in NEW.values()] + [str(EXAMPLE / "tests")]
    out = run(sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--import-mode=importlib", *tests,
              cwd=workdir)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    assert " passed" in out.stdout and "skipped" not in out.stdout


def test_installed_plugins_are_discovered_with_distribution_and_version(workdir: Path) -> None:
    # This process started before the install: read the new .pth files as a fresh interpreter would.
    site.addsitedir(sysconfig.get_paths()["purelib"])
    importlib.invalidate_caches()
    harness = load_harness()
    mine = ["xaibench_example", *(f"xaibench_{name.replace('-', '_')}" for name in NEW.values())]
    assert not {p: harness.broken[p] for p in mine if p in harness.broken}
    assert harness.methods.entry("deconvnet").plugin == "xaibench_example"
    assert harness.models.entry("lenet5").plugin == "xaibench_example"
    info = harness.plugins["xaibench_example"]
    assert (info.distribution, info.version) == ("xaibench-example-plugin", "0.2.0")
    for kind, name in NEW.items():
        info = harness.plugins[harness.registry(f"{kind}s").entry(name).plugin]
        assert (info.distribution, info.version) == (f"xaibench-{name}", "0.1.0")
    assert harness.plugins[harness.methods.entry("gradcam").plugin].distribution == "xaibench"


def test_disable_plugins_hides_a_third_party_plugin_from_the_cli(workdir: Path) -> None:
    out = xaibench("plugins", cwd=workdir, env={"XAIBENCH_DISABLE_PLUGINS": "xaibench_example"})
    assert out.returncode == 0, out.stderr
    assert "deconvnet" not in out.stdout and "lenet5" not in out.stdout
    line = next(ln for ln in out.stdout.splitlines() if ln.split() and ln.split()[0] == NEW["method"])
    assert f"xaibench-{NEW['method']} 0.1.0" in line, line
    assert "gradcam" in out.stdout


def test_new_method_reaches_the_leaderboard_without_core_edits(workdir: Path) -> None:
    """The guide's suite and run command; the example's method, the new metric and dataset join the run."""
    run_command = "xaibench run --suite my-study.yaml --out my-boards --store my-results.sqlite"
    assert run_command in guide_block("bash")
    suite = yaml.safe_load(guide_block("yaml"))
    assert NEW["method"] in suite["methods"]
    suite["methods"].append("deconvnet")
    suite["metrics"].append(NEW["metric"])
    suite["datasets"].append({"name": NEW["dataset"], "params": {"n_train": 90, "n_val": 30, "n_test": 6}})
    (workdir / "my-study.yaml").write_text(yaml.safe_dump(suite, sort_keys=False), encoding="utf-8")
    out = xaibench(*run_command.split()[1:], "--no-progress", "--no-figures", cwd=workdir)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    board = (workdir / "my-boards" / f"{suite['name']}.md").read_text(encoding="utf-8")
    for dataset in ("synthetic-lesions", NEW["dataset"]):
        section = board.split(f"## {dataset} × small-cnn", 1)[-1].split("\n## ", 1)[0]
        assert section != board, f"no section for {dataset}:\n{board}"
        # "| rank | method | scores... |"; a model the gate finds did not learn lists its methods unranked ("–");
        # a calibration baseline is a reference ("ref", "random (chance baseline)"), never ranked
        unranked = "did not learn" in section
        ranked = {cells[2].strip().split(" (")[0]: cells for cells in (line.split("|") for line in section.splitlines())
                  if len(cells) > 3 and (cells[1].strip()[:1].isdigit() or cells[1].strip() == "ref"
                                         or (unranked and cells[1].strip() == "–"))}
        assert {NEW["method"], "deconvnet", "random"} <= set(ranked), section
        assert not [m for m, cells in ranked.items() if "failed" in "|".join(cells)], section
        assert f"{NEW['metric']} ↑" in section, section
