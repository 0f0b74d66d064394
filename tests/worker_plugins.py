"""Test plugins registered *by module name*, so worker processes (pool, Ray) can re-register them.

``kill-worker-once`` is a fault injector: the first process to call it creates the
marker file named by ``XAIBENCH_TEST_KILL_MARKER`` and dies on the spot, as a
worker killed by the OOM killer would; later calls score like ``dic``.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from conftest import TinyPlugin
from xaibench_metrics.confidence import drop_in_confidence

from xaibench import hookimpl
from xaibench.contract.specs import MetricSpec

_tiny = TinyPlugin()
xaibench_register_datasets = _tiny.xaibench_register_datasets
xaibench_register_models = _tiny.xaibench_register_models
xaibench_register_methods = _tiny.xaibench_register_methods


def _kill_once(inputs, targets, maps, engine, base_logits):  # type: ignore[no-untyped-def]
    marker = Path(os.environ["XAIBENCH_TEST_KILL_MARKER"])
    try:
        marker.touch(exist_ok=False)
    except FileExistsError:
        return drop_in_confidence(inputs, targets, maps, engine, base_logits)
    os._exit(1)


@hookimpl
def xaibench_register_metrics(register: Callable[[MetricSpec], None]) -> None:
    register(MetricSpec(name="kill-worker-once", score=_kill_once, category="faithfulness", higher_is_better=False,
                        needs={"inputs", "targets", "maps", "engine", "base_logits"},
                        description="kills the first worker that runs it, then scores like dic"))
