"""The leaderboards CI workflow: valid YAML, real commands, and its pull-request flow run for real."""
from __future__ import annotations

import shlex
import shutil
from pathlib import Path

import pytest
import yaml

from conftest import TINY_SUITE
from xaibench.api.cli import build_parser, main
from xaibench.contract.plugins import load_harness

WORKFLOW = Path(__file__).resolve().parents[1] / ".github" / "workflows" / "leaderboards.yml"


def _workflow() -> dict:  # type: ignore[type-arg]
    wf = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    wf["on"] = wf.pop(True)  # PyYAML reads a bare `on` as YAML 1.1's true; GitHub reads the key "on"
    return wf


def _steps() -> list[dict]:  # type: ignore[type-arg]
    (job,) = _workflow()["jobs"].values()
    return job["steps"]


def _commands(step: dict, values: dict[str, str]) -> list[list[str]]:  # type: ignore[type-arg]
    """``xaibench`` command lines of a step's script, variables replaced by ``values``."""
    out = []
    for line in step.get("run", "").splitlines():
        line = line.split("||")[0].strip()
        if line.startswith("xaibench "):
            out.append([values.get(tok, tok) for tok in shlex.split(line)[1:]])
    return out


def _step(name: str) -> dict:  # type: ignore[type-arg]
    return next(s for s in _steps() if s.get("name", "").startswith(name))


def test_workflow_is_valid_against_the_github_workflow_schema() -> None:
    """SchemaStore's GitHub workflow schema, as vendored by check-jsonschema (a test dependency)."""
    import json
    from importlib import resources

    import jsonschema

    schema = resources.files("check_jsonschema") / "builtin_schemas" / "vendor" / "github-workflows.json"
    jsonschema.validate(_workflow(), json.loads(schema.read_text(encoding="utf-8")))
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**_workflow(), "jobs": {"x": {"steps": []}}}, json.loads(schema.read_text()))  # no runs-on


def test_workflow_triggers_and_every_command_exists_in_the_cli() -> None:
    wf = _workflow()
    on = wf["on"]
    assert "schedule" in on and on["schedule"][0]["cron"]
    assert "plugins/**" in on["pull_request"]["paths"] and "xaibench/**" in on["pull_request"]["paths"]
    # the project itself, editable, with the extras its suites' networks need (zoo: timm and MONAI)
    assert 'pip install -e ".[timm,monai]"' in _step("Install")["run"]
    suites = wf["env"]["SUITES"].split()
    assert set(suites) <= set(load_harness().suites.names()), "the workflow names suites that do not exist"
    values = {"$suite": suites[0], "$STORE": wf["env"]["STORE"], "$out": "leaderboards"}
    commands = [c for s in _steps() for c in _commands(s, values)]
    assert {c[0] for c in commands} == {"run", "leaderboard"}
    parser = build_parser()
    for argv in commands:
        parser.parse_args(argv)  # exits on an unknown command or option
    check = _step("Fail when")
    assert check["if"] == "github.event_name == 'pull_request'"
    assert all("--check" in c for c in _commands(check, values))
    assert any("--index" in c for c in _commands(check, values))
    assert "git push" in _step("Commit")["run"] and _step("Commit")["if"] == "env.PUBLISH == 'true'"


def test_pull_request_flow_fails_on_stale_and_passes_on_regenerated(
        tmp_path: Path, tiny_plugin, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    """The workflow's own commands, in its order: run into scratch, check the committed folder."""
    suite = tmp_path / "tiny.yaml"
    suite.write_text(TINY_SUITE)
    monkeypatch.chdir(tmp_path)
    harness = load_harness([("tiny", tiny_plugin)])
    monkeypatch.setattr("xaibench.api.cli.load_harness", lambda: harness)
    values = {"$suite": str(suite), "$STORE": "results.sqlite", "$out": "scratch"}
    (run,) = _commands(_step("Run the suites"), values)
    checks = _commands(_step("Fail when"), values)
    assert main(run) == 0
    (tmp_path / "leaderboards").mkdir()
    assert [main(c) for c in checks] == [1, 1]  # nothing committed yet: stale
    shutil.copytree(tmp_path / "scratch", tmp_path / "leaderboards", dirs_exist_ok=True)
    assert [main(c) for c in checks] == [0, 0]
    board = tmp_path / "leaderboards" / "tiny.md"
    board.write_text(board.read_text().replace("oracle", "0racle"))
    assert [main(c) for c in checks] == [1, 0]
