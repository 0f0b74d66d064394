"""Where a run's groups execute when not in the driver: a local process pool or Ray.

The driver (the process running ``xaibench run``) plans the cells, trains or loads
every model and alone writes the store; workers receive the suite, the datasets
and the model weights once, compute whole groups (one dataset x model x method:
the saliency maps, then each metric cell) and send the outcomes back. Resumption,
fault isolation and the store's one-transaction-per-cell guarantee are therefore
exactly those of the in-process executor, and the scores are the same numbers.

A worker that dies mid-group (killed, out of memory) loses nothing: Ray retries
the task, the process pool reports the group's cells as failed, and nothing of
that group was written.
"""
from __future__ import annotations

import os
import uuid
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Iterator

import torch

from xaibench.errors import XaibenchError
from xaibench.specs import DataBundle

if TYPE_CHECKING:
    from xaibench.runner import Outcome, Runner, RunOptions, RunSummary, _Cell
    from xaibench.suite import Suite

#: Attempts of a Ray task whose worker process died, before its cells fail.
RAY_MAX_RETRIES = 3


@dataclass(frozen=True)
class Payload:
    """Everything a worker needs, shipped once (Ray's object store / the pool's initializer)."""

    token: str
    suite: "Suite"
    options: "RunOptions"
    plugin_modules: dict[str, str]
    bundles: dict[str, DataBundle]
    fingerprints: dict[str, str]
    #: (dataset, model) display names -> state dict of the trained model.
    states: dict[tuple[str, str], dict[str, torch.Tensor]]
    threads: int


@dataclass(frozen=True)
class Task:
    dataset: str
    model: str
    cell_keys: tuple[str, ...]


_WORKER: dict[str, "Runner"] = {}


def _worker_runner(payload: Payload) -> "Runner":
    """The worker's runner for this payload, built once per worker process."""
    from xaibench.plugins import load_harness
    from xaibench.runner import Runner

    if payload.token not in _WORKER:
        _WORKER.clear()
        torch.set_num_threads(payload.threads)
        harness = load_harness(list(payload.plugin_modules.items()))
        runner = Runner(harness, payload.suite, store=None, options=payload.options)  # type: ignore[arg-type]
        runner.adopt(payload.bundles, payload.fingerprints)
        _WORKER[payload.token] = runner
    return _WORKER[payload.token]


def compute_group(payload: Payload, task: Task) -> list["Outcome"]:
    """Run one group in a worker: rebuild its model from the shipped weights, explain, score."""
    runner = _worker_runner(payload)
    wanted = set(task.cell_keys)
    cells = [c for c in runner.plan() if c.row.cell_key in wanted]
    if len(cells) != len(wanted):
        raise XaibenchError("a worker planned different cells than the driver: are the plugin versions the same?")
    first = cells[0]
    model = runner.build_model(first.dataset, first.model)
    model.load_state_dict(payload.states[(task.dataset, task.model)])
    model.to(runner.device).eval()
    return list(runner.group_outcomes(runner.group_context(first.dataset, model), cells))


def _payload(runner: "Runner", groups: list[list["_Cell"]], threads: int, summary: "RunSummary") -> Payload:
    """Trains (or loads) every model here, once, before any worker needs it."""
    if runner.harness.extra_objects:
        raise XaibenchError(
            f"plugins registered in process as objects ({', '.join(runner.harness.extra_objects)}) cannot be "
            "sent to workers; register them by module name or install them as entry points"
        )
    states = {}
    for group in groups:
        c = group[0]
        pair = (c.dataset.entry.display, c.model.entry.display)
        if pair not in states:
            model = runner._model(c.dataset, c.model, c.row.model_key, summary)
            states[pair] = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    names = {c.dataset.entry.display for g in groups for c in g}
    return Payload(
        token=uuid.uuid4().hex, suite=runner.suite,
        options=replace(runner.options, executor="local", workers=1, progress=False),
        plugin_modules=dict(runner.harness.extra_modules),
        bundles={n: runner._bundles[n] for n in names}, fingerprints={n: runner._fingerprints[n] for n in names},
        states=states, threads=threads,
    )


def _tasks(groups: list[list["_Cell"]]) -> list[Task]:
    return [Task(g[0].dataset.entry.display, g[0].model.entry.display, tuple(c.row.cell_key for c in g)) for g in groups]


def remote_outcomes(runner: "Runner", groups: list[list["_Cell"]], summary: "RunSummary") -> Iterator["Outcome"]:
    """Outcomes of ``groups`` computed by the executor ``runner.options`` names, as they finish."""
    if runner.options.executor == "ray":
        yield from _ray_outcomes(runner, groups, summary)
    elif runner.options.executor == "local":
        yield from _pool_outcomes(runner, groups, summary)
    else:
        raise XaibenchError(f"unknown executor {runner.options.executor!r}; use local or ray")


def _pool_outcomes(runner: "Runner", groups: list[list["_Cell"]], summary: "RunSummary") -> Iterator["Outcome"]:
    import concurrent.futures as cf
    import multiprocessing

    workers = runner.options.workers
    payload = _payload(runner, groups, max(1, (os.cpu_count() or 1) // workers), summary)
    tasks = _tasks(groups)
    ctx = multiprocessing.get_context("spawn")  # no forked torch/OpenMP state in workers
    with cf.ProcessPoolExecutor(workers, mp_context=ctx, initializer=_remember, initargs=(payload,)) as pool:
        futures = {pool.submit(_compute_remembered, task): (task, group) for task, group in zip(tasks, groups)}
        for future in cf.as_completed(futures):
            task, group = futures[future]
            try:
                outcomes = future.result()
            except Exception as exc:  # the worker died: the group's cells fail, the run goes on
                outcomes = [(c.row.cell_key, runner._failed(c, f"worker process failed: {type(exc).__name__}: {exc}",
                                                            len(runner.evaluated_samples(c.dataset))), None, 0)
                            for c in group]
            yield from outcomes


_POOL_PAYLOAD: list[Payload] = []


def _remember(payload: Payload) -> None:
    _POOL_PAYLOAD[:] = [payload]


def _compute_remembered(task: Task) -> list["Outcome"]:
    return compute_group(_POOL_PAYLOAD[0], task)


def _ray_outcomes(runner: "Runner", groups: list[list["_Cell"]], summary: "RunSummary") -> Iterator["Outcome"]:
    try:
        import ray
    except ImportError:
        raise XaibenchError("--executor ray needs Ray: pip install 'xaibench[ray]'") from None
    started = not ray.is_initialized()
    if started:
        ray.init(address=runner.options.address, include_dashboard=False, log_to_driver=False,
                 configure_logging=False)
    try:
        gpus = 1 if runner.device.type == "cuda" else 0
        payload_ref = ray.put(_payload(runner, groups, 1 if gpus else torch.get_num_threads(), summary))
        remote = ray.remote(num_cpus=1, num_gpus=gpus, max_retries=RAY_MAX_RETRIES)(compute_group)
        pending = {remote.remote(payload_ref, task): group for task, group in zip(_tasks(groups), groups)}
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            group = pending.pop(ready[0])
            try:
                outcomes = ray.get(ready[0])
            except Exception as exc:  # retries exhausted: the group's cells fail, the run goes on
                first = str(exc).splitlines()[0]
                outcomes = [(c.row.cell_key, runner._failed(c, f"Ray task failed: {first}",
                                                            len(runner.evaluated_samples(c.dataset))), None, 0)
                            for c in group]
            yield from outcomes
    finally:
        if started:
            ray.shutdown()
