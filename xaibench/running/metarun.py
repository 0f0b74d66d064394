"""Re-scoring a run's cells under MetaQuantus's perturbations: the data behind noise resilience and adversary
reactivity (Hedström et al., "The Meta-Evaluation Problem in Explainable AI", TMLR 2023, Sec. 4-5).

With the suite option ``meta_evaluation: K`` (default 0: off), every runnable cell of a
real method (calibration baselines are references and are skipped) is re-explained
and re-scored under K draws of each perturbation of :data:`xaibench.scoring.metaeval.PERTURBATIONS`:

- **model**: a copy of the trained model whose every parameter is multiplied by
  noise from N(1, std^2) (std 0.001 minor, 2.0 disruptive);
- **input**: every input value plus noise from N(0, std^2) (std 0.001 minor, 5.0
  disruptive, in the inputs' units).

The explained class stays the unperturbed one; under a *minor* perturbation a sample
whose predicted class changed is NaN (MetaQuantus excludes it: the minor perturbation
was meant to leave the model's decision alone). The metric's own random draws are
those of the unperturbed cell (the runner seeds them from the suite's seed, the metric and the
sample's id), so only the perturbation differs. Each perturbed cell is stored under
:func:`xaibench.scoring.metaeval.perturbed_key` (reused on a re-run, like any cell); the
leaderboard's meta-evaluation table reads them (:mod:`xaibench.leaderboard.trust`).
The noise is seeded from the suite's seed, the model's key, the test, kind and draw (input noise also from
the sample's id).

Cost: 4K re-runs of every real method's maps and of every metric on them, on top of the
run: on by default only in ``quick`` (K = 1: +20 CPU seconds, 12 s -> 32 s with the model cached); opt in
elsewhere.
"""
from __future__ import annotations

import copy
import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from xaibench.base.errors import XaibenchError
from xaibench.running.execution import GroupContext, describe_failure
from xaibench.scoring.metaeval import PERTURBATIONS, perturbed_key
from xaibench.suites.plan import Cell
from xaibench.scoring.stats import seed_from, summarize


def perturbed_model(model: nn.Module, std: float, seed: int) -> nn.Module:
    """A copy of ``model`` with every parameter multiplied elementwise by N(1, ``std``^2) noise drawn from ``seed``."""
    out = copy.deepcopy(model)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in out.parameters():
            noise = torch.randn(p.shape, generator=generator, dtype=torch.float32) * std + 1.0
            p.mul_(noise.to(p.device, p.dtype))
    return out


def perturbed_inputs(x: torch.Tensor, std: float, seed: int, ids: Sequence[str]) -> torch.Tensor:
    """``x`` ``(N, C, *spatial)`` plus N(0, ``std``^2) noise (same shape, dtype and device); sample ``i``'s noise is
    drawn from ``seed_from(seed, ids[i])``, so it follows the sample, not its position in the batch."""
    noise = torch.stack([torch.randn(x.shape[1:], generator=torch.Generator().manual_seed(seed_from(seed, sid)),
                                     dtype=torch.float32) for sid in ids])
    return x + (noise * std).to(x.device, x.dtype)


def meta_evaluate(runner: Any, cells: list[Cell]) -> int:
    """Re-score the runnable ``cells`` of real methods under every perturbation draw not yet in the store.

    ``runner`` is the :class:`xaibench.running.runner.Runner` (typed loosely: the runner calls this). Returns the
    number of perturbed cells computed.
    """
    draws = runner.suite.meta_evaluation
    real = [c for c in cells if not c.row.skip_reason and not c.method.spec.calibration]
    if draws < 1 or not real:
        return 0
    computed = 0
    pairs: dict[tuple[str, str], list[Cell]] = {}
    for c in real:
        pairs.setdefault((c.dataset.entry.display, c.model.entry.display), []).append(c)
    for group in pairs.values():
        first = group[0]
        wanted = {(t, kind, k) for t in PERTURBATIONS for kind in PERTURBATIONS[t] for k in range(draws)}
        keys = {(t, kind, k): [perturbed_key(c.row.cell_key, t, kind, k) for c in group] for t, kind, k in wanted}
        todo = [w for w in sorted(wanted) if len(runner.store.finished(keys[w])) < len(group)]
        if not todo:
            continue
        model = runner.trainer.load(first.dataset, first.model)
        base = runner.execution.group_context(first.dataset, first.model, model)
        for test, kind, k in todo:
            g = _perturbed_context(runner, base, test, kind, k)
            computed += _score_group(runner, g, base, group, test, kind, k)
    return computed


def _perturbed_context(runner: Any, base: GroupContext, test: str, kind: str, k: int) -> GroupContext:
    """``base`` with its model or its inputs perturbed (draw ``k``), explaining the unperturbed target classes."""
    std = PERTURBATIONS[test][kind]
    seed = seed_from(runner.suite.seed, base.model_key, "meta", test, kind, k)
    if test == "model":
        g = runner.execution.group_context(base.dataset, base.model_entry, perturbed_model(base.model, std, seed))
    else:
        samples = dataclasses.replace(base.samples, x=perturbed_inputs(base.samples.x, std, seed,
                                                                                    base.samples.ids))
        g = runner.execution.group_context(base.dataset, base.model_entry, base.model, samples)
    return dataclasses.replace(g, model_key=base.model_key, target=base.target)


def _score_group(runner: Any, g: GroupContext, base: GroupContext, group: list[Cell], test: str, kind: str,
                 k: int) -> int:
    """Every cell of ``group`` on the perturbed ``g``, method by method (maps computed once, not cached)."""
    execution, store = runner.execution, runner.store
    changed = (g.base_logits.argmax(1) != base.base_logits.argmax(1)).cpu().numpy()
    by_method: dict[str, list[Cell]] = {}
    for c in group:
        by_method.setdefault(c.method.entry.display, []).append(c)
    computed = 0
    for cells in by_method.values():
        me = cells[0].method
        try:
            maps = execution.isolated(f"method {me.entry.display!r}", g.model, lambda: execution.explain(g, me))
            error = None
        except (XaibenchError, KeyboardInterrupt):
            raise
        except (Exception, SystemExit) as exc:
            maps, error = None, describe_failure(exc)
        memo: dict[Any, Any] = {}
        for c in cells:
            key = perturbed_key(c.row.cell_key, test, kind, k)
            result, values = execution.score(g, c, maps, memo) if maps is not None else (
                execution.failed(c, error or ""), None)
            if values is not None and kind == "minor":
                values = np.where(changed, np.nan, np.asarray(values, dtype=np.float64))
                mean, low, high, n = summarize(values, seed_from(runner.suite.seed, key), g.samples.ids)
                result = dataclasses.replace(result, mean=mean, ci_low=low, ci_high=high, n=n)
            store.put_cell(dataclasses.replace(result, cell_key=key),
                           g.samples.ids if values is not None else (), list(values) if values is not None else ())
            computed += 1
    return computed
