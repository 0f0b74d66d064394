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
from typing import Iterator

import torch

from xaibench.data.bundles import Bundles
from xaibench.base.errors import XaibenchError
from xaibench.running.execution import Execution, Outcome
from xaibench.models.provision import Models
from xaibench.suites.options import RunOptions, Settings
from xaibench.suites.plan import Cell, cell_key, resolve
from xaibench.contract.plugins import load_harness
from xaibench.contract.specs import DataBundle
from xaibench.storage.store import PlanRow
from xaibench.suites.suite import Suite

#: Attempts of a Ray task whose worker process died, before its cells fail.
RAY_MAX_RETRIES = 3


@dataclass(frozen=True)
class Payload:
    """Everything a worker needs, shipped once (Ray's object store / the pool's initializer)."""

    token: str
    suite: Suite
    options: RunOptions
    plugin_modules: dict[str, str]
    bundles: dict[str, DataBundle]
    fingerprints: dict[str, str]
    #: (dataset, model) display names -> state dict of the trained model.
    states: dict[tuple[str, str], dict[str, torch.Tensor]]
    threads: int


@dataclass(frozen=True)
class Task:
    """One group for a worker: its dataset and model display names and the keys of its cells, in order."""

    dataset: str
    model: str
    method: str
    cell_keys: tuple[str, ...]


_WORKER: dict[str, Execution] = {}


def _worker_execution(payload: Payload) -> Execution:
    """The worker's execution for this payload, built once per worker process (no store: the driver writes)."""
    if payload.token not in _WORKER:
        _WORKER.clear()
        torch.set_num_threads(payload.threads)
        harness = load_harness(list(payload.plugin_modules.items()))
        settings = Settings.of(payload.suite, payload.options)
        bundles = Bundles(settings)
        bundles.adopt(payload.bundles, payload.fingerprints)
        _WORKER[payload.token] = Execution(harness, settings, bundles, Models(settings, bundles, store=None))
    return _WORKER[payload.token]


def _cells(execution: Execution, task: Task) -> list[Cell]:
    """The task's cells re-planned in the worker; refused if a key differs from the driver's."""
    suite = execution.settings.suite
    pick = {kind: next(r for r in resolve(execution.harness, kind, entries, suite) if r.entry.display == name)
            for kind, entries, name in (("datasets", suite.datasets, task.dataset), ("models", suite.models, task.model),
                                        ("methods", suite.methods, task.method))}
    ds, mo, me = pick["datasets"], pick["models"], pick["methods"]
    model_key = execution.models.key(ds, mo)
    ids = execution.bundles.evaluated(ds).ids
    by_key = {}
    for mt in resolve(execution.harness, "metrics", suite.metrics, suite):
        row_key = cell_key(model_key, me, mt, ids, suite, execution.settings.numerics)
        by_key[row_key] = Cell(PlanRow(row_key, ds.entry.display, mo.entry.display, model_key, me.entry.display,
                                       mt.entry.display, mt.spec.category, mt.spec.higher_is_better, None),
                               ds, mo, me, mt)
    if not set(task.cell_keys) <= set(by_key):
        raise XaibenchError("a worker planned different cells than the driver: are the plugin versions the same?")
    return [by_key[k] for k in task.cell_keys]


def compute_group(payload: Payload, task: Task) -> list[Outcome]:
    """Run one group in a worker: rebuild its model from the shipped weights, then :meth:`Execution.execute_group`."""
    execution = _worker_execution(payload)
    cells = _cells(execution, task)
    first = cells[0]
    model = execution.models.build(first.dataset, first.model)
    model.load_state_dict(payload.states[(task.dataset, task.model)])
    model.to(execution.settings.device).eval()
    return execution.execute_group(execution.group_context(first.dataset, first.model, model), cells)


def _payload(execution: Execution, groups: list[list[Cell]], threads: int) -> Payload:
    """Trains (or loads) every model here, once, before any worker needs it."""
    harness = execution.harness
    if harness.extra_objects:
        raise XaibenchError(
            f"plugins registered in process as objects ({', '.join(harness.extra_objects)}) cannot be "
            "sent to workers; register them by module name or install them as entry points"
        )
    states = {}
    for group in groups:
        c = group[0]
        pair = (c.dataset.entry.display, c.model.entry.display)
        if pair not in states:
            model = execution.models.load(c.dataset, c.model)
            states[pair] = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    bundles, fingerprints = execution.bundles.loaded({c.dataset.entry.display for g in groups for c in g})
    options = execution.settings.options
    return Payload(
        token=uuid.uuid4().hex, suite=execution.settings.suite,
        options=replace(options, executor="local", workers=1, progress=False),
        plugin_modules=dict(harness.extra_modules), bundles=bundles, fingerprints=fingerprints,
        states=states, threads=threads,
    )


def _tasks(groups: list[list[Cell]]) -> list[Task]:
    return [Task(g[0].dataset.entry.display, g[0].model.entry.display, g[0].method.entry.display,
                 tuple(c.row.cell_key for c in g)) for g in groups]


def _failed_group(execution: Execution, group: list[Cell], error: str) -> list[Outcome]:
    return [Outcome(c.row.cell_key, execution.failed(c, error), None, 0) for c in group]


def remote_outcomes(execution: Execution, groups: list[list[Cell]]) -> Iterator[Outcome]:
    """Outcomes of ``groups`` computed by the executor the run's options name, as they finish."""
    options = execution.settings.options
    if options.executor == "ray":
        yield from _ray_outcomes(execution, groups)
    elif options.executor == "local":
        yield from _pool_outcomes(execution, groups)
    else:
        raise XaibenchError(f"unknown executor {options.executor!r}; use local or ray")


def _pool_outcomes(execution: Execution, groups: list[list[Cell]]) -> Iterator[Outcome]:
    import concurrent.futures as cf
    import multiprocessing

    workers = execution.settings.options.workers
    payload = _payload(execution, groups, max(1, (os.cpu_count() or 1) // workers))
    tasks = _tasks(groups)
    ctx = multiprocessing.get_context("spawn")  # no forked torch/OpenMP state in workers
    with cf.ProcessPoolExecutor(workers, mp_context=ctx, initializer=_remember, initargs=(payload,)) as pool:
        futures = {pool.submit(_compute_remembered, task): (task, group) for task, group in zip(tasks, groups)}
        for future in cf.as_completed(futures):
            task, group = futures[future]
            try:
                outcomes = future.result()
            except Exception as exc:  # the worker died: the group's cells fail, the run goes on
                outcomes = _failed_group(execution, group, f"worker process failed: {type(exc).__name__}: {exc}")
            yield from outcomes


_POOL_PAYLOAD: list[Payload] = []


def _remember(payload: Payload) -> None:
    _POOL_PAYLOAD[:] = [payload]


def _compute_remembered(task: Task) -> list[Outcome]:
    return compute_group(_POOL_PAYLOAD[0], task)


def _ray_outcomes(execution: Execution, groups: list[list[Cell]]) -> Iterator[Outcome]:
    try:
        import ray
    except ImportError:
        raise XaibenchError("--executor ray needs Ray: pip install 'xaibench[ray]'") from None
    started = not ray.is_initialized()
    if started:
        ray.init(address=execution.settings.options.address, include_dashboard=False, log_to_driver=False,
                 configure_logging=False)
    try:
        gpus = 1 if execution.settings.device.type == "cuda" else 0
        payload_ref = ray.put(_payload(execution, groups, 1 if gpus else torch.get_num_threads()))
        remote = ray.remote(num_cpus=1, num_gpus=gpus, max_retries=RAY_MAX_RETRIES)(compute_group)
        pending = {remote.remote(payload_ref, task): group for task, group in zip(_tasks(groups), groups)}
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            group = pending.pop(ready[0])
            try:
                outcomes = ray.get(ready[0])
            except Exception as exc:  # retries exhausted: the group's cells fail, the run goes on
                outcomes = _failed_group(execution, group, f"Ray task failed: {str(exc).splitlines()[0]}")
            yield from outcomes
    finally:
        if started:
            ray.shutdown()
