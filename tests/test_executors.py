"""Executors: a process pool and Ray give exactly the local executor's stored scores.

Only the driver writes the store, so a worker killed mid-task loses and duplicates
nothing: Ray retries the task and the scores are those of an uninterrupted run.
"""
from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from xaibench.contract.plugins import load_harness
from xaibench.running.runner import RunOptions, Runner
from xaibench.storage.store import Store
from xaibench.suites.suite import load_suite

TESTS = Path(__file__).resolve().parent
SUITE = """
name: exec
seed: 0
samples: 8
datasets: [tiny]
models: [tiny-cnn]
methods: [input-times-one, random, {name: integrated-gradients, params: {n_steps: 4}}, {name: occlusion, params: {window: 4}}]
metrics: [dic, iic, hit-rate, {name: deletion-auc, params: {steps: 8}}]
"""


def _run(tmp: Path, name: str, text: str = SUITE, **options: object) -> dict[tuple[str, str], float | None]:
    path = tmp / f"{name}.yaml"
    path.write_text(text)
    with Store(tmp / f"{name}.sqlite") as store:
        runner = Runner(load_harness([("tiny", "worker_plugins")]), load_suite(path), store,
                        RunOptions(progress=False, home=tmp / f"home-{name}", **options))  # type: ignore[arg-type]
        summary = runner.run()
    assert not summary.failed, summary.failed
    rows = sqlite3.connect(tmp / f"{name}.sqlite").execute("SELECT cell_key, sample_id, value FROM scores").fetchall()
    scores = {(k, s): v for k, s, v in rows}
    assert len(scores) == len(rows), "duplicate scores"
    return scores


@pytest.fixture(scope="module")
def ray_local(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    ray = pytest.importorskip("ray", reason="ray (the ray extra) is not installed")
    marker = tmp_path_factory.mktemp("kill") / "killed"
    os.environ["XAIBENCH_TEST_KILL_MARKER"] = str(marker)
    path = os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False,
             runtime_env={"env_vars": {"PYTHONPATH": path, "XAIBENCH_TEST_KILL_MARKER": str(marker)}})
    yield marker
    ray.shutdown()


def test_ray_gives_the_local_scores_and_survives_a_killed_worker(tmp_path: Path, ray_local: Path) -> None:
    local = _run(tmp_path, "local")
    remote = _run(tmp_path, "ray", executor="ray")
    assert remote == local and len(local) == 4 * 4 * 8

    killing = SUITE.replace("metrics: [", "metrics: [kill-worker-once, ")
    ray_local.touch()  # disarmed: the local reference run must not kill this process
    local_k = _run(tmp_path, "local-k", killing)
    ray_local.unlink()
    remote_k = _run(tmp_path, "ray-k", killing, executor="ray")
    assert ray_local.exists(), "a worker was killed mid-task"
    assert remote_k == local_k and len(remote_k) == 4 * 5 * 8


def test_process_pool_gives_the_local_scores(tmp_path: Path) -> None:
    assert _run(tmp_path, "pool", workers=2) == _run(tmp_path, "local")


def test_in_process_object_plugins_cannot_go_to_workers(tmp_path: Path, tiny_plugin) -> None:  # type: ignore[no-untyped-def]
    from xaibench.base.errors import XaibenchError

    path = tmp_path / "s.yaml"
    path.write_text(SUITE)
    with Store(tmp_path / "s.sqlite") as store, pytest.raises(XaibenchError, match="by module name"):
        Runner(load_harness([("tiny", tiny_plugin)]), load_suite(path), store,
               RunOptions(progress=False, workers=2)).run()
