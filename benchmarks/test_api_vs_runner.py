"""Benchmark: ``xaibench.score`` vs the runner on the ``quick`` suite's scoring work (target: API / runner <= 1.05).

Both sides score the same cached maps of quick's five methods with its metrics on its cached
model: the runner through :meth:`Execution.score` per cell (with the group's shared unperturbed
pass, as ``xaibench run`` does), the API with one ``xaibench.score`` call per method. Forward
passes are counted on both sides: they are equal except the unperturbed pass, which each API
call makes once (``N`` inputs) and the runner once per model, so the count asserted is
``api = runner + (methods - 1) * N``. The rounds alternate and the best of each side is compared, in
CPU seconds of this process (one torch thread: on a shared machine its wall time varies 3x between
identical rounds, its CPU time far less) and in wall seconds.
"""
from __future__ import annotations

import time
from pathlib import Path

import pytest
from conftest import report

import xaibench
from xaibench.scoring.engine import Engine
from xaibench.contract.plugins import load_harness
from xaibench.running.runner import Runner, RunOptions
from xaibench.storage.store import Store

ROUNDS = 5


def test_api_time_over_runner_time_on_quick(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XAIBENCH_HOME", str(tmp_path / "home"))
    store_path = tmp_path / "quick.sqlite"
    first = xaibench.run("quick", store=store_path, progress=False)  # trains the model and caches the maps
    assert not first.summary.failed
    passes = [0]
    forward = Engine._forward

    def counted(self: Engine, batch):  # type: ignore[no-untyped-def]
        passes[0] += batch.shape[0]
        return forward(self, batch)

    monkeypatch.setattr(Engine, "_forward", counted)
    with Store(store_path) as store:
        runner = Runner(load_harness(), first.runner.suite, store, RunOptions(progress=False))
        cells = [c for c in runner.plan() if not c.row.skip_reason]
        ds, mo = runner.datasets[0], runner.models[0]
        g0 = runner.group_context(ds, mo)
        maps = {me.entry.display: runner.cached_maps(g0, me) for me in runner.methods}
        model, samples = g0.model, g0.samples
        mean = g0.data_mean

        def by_runner() -> None:
            g = runner.execution.group_context(ds, mo, model)  # the unperturbed pass, once per model
            for me in runner.methods:
                memo: dict = {}  # type: ignore[type-arg]
                for c in (c for c in cells if c.method is me):
                    result, _ = runner.execution.score(g, c, maps[me.entry.display], memo)
                    assert result.status == "ok", result.error

        def by_api() -> None:
            for me in runner.methods:
                names = [c.metric.entry.display for c in cells if c.method is me]
                xaibench.score(model, samples.x, None, maps[me.entry.display], names, masks=samples.masks,
                               regions=samples.regions, additive=me.spec.additive, data_mean=mean,
                               seed=runner.suite.seed, ids=samples.ids, model_key=g0.model_key,
                               batch_size=g0.engine.batch_size)

        cpu: dict[str, list[float]] = {"runner": [], "api": []}
        wall: dict[str, list[float]] = {"runner": [], "api": []}
        counts: dict[str, int] = {}
        for _ in range(ROUNDS):
            for name, fn in (("runner", by_runner), ("api", by_api)):
                passes[0] = 0
                start, start_cpu = time.perf_counter(), time.process_time()
                fn()
                cpu[name].append(time.process_time() - start_cpu)
                wall[name].append(time.perf_counter() - start)
                counts[name] = passes[0]
    n, methods = len(samples), len(runner.methods)
    assert counts["api"] == counts["runner"] + (methods - 1) * n, counts
    ratio = min(cpu["api"]) / min(cpu["runner"])
    ratio_wall = min(wall["api"]) / min(wall["runner"])
    print(f"\nquick's scoring work, best of {ROUNDS}: runner {min(cpu['runner']):.3f} CPU s "
          f"({min(wall['runner']):.3f} s wall), API {min(cpu['api']):.3f} CPU s ({min(wall['api']):.3f} s wall); "
          f"API / runner {ratio:.3f} CPU, {ratio_wall:.3f} wall (target <= 1.05); forward passes {counts}")
    report("quick's scoring work", "xaibench.score CPU time / runner CPU time", ratio, "<= 1.05")
    report("quick's scoring work", "xaibench.score wall time / runner wall time", ratio_wall, "<= 1.05")
