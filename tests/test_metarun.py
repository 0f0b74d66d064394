"""Re-scoring under MetaQuantus's perturbations: the noise, the stored cells, the analytic invariances, reuse."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TINY_SUITE
from torch import nn

from xaibench import leaderboard
from xaibench.base.errors import SuiteError
from xaibench.leaderboard import trust
from xaibench.scoring.metaeval import PERTURBATIONS, perturbed_key
from xaibench.running.metarun import meta_evaluate, perturbed_inputs, perturbed_model
from xaibench.contract.plugins import load_harness
from xaibench.running.runner import Runner, RunOptions
from xaibench.storage.store import Store
from xaibench.suites.suite import load_suite


def test_the_model_noise_is_multiplicative_with_the_stated_spread_and_seeded() -> None:
    torch.manual_seed(0)
    model = nn.Linear(200, 100)
    moved = perturbed_model(model, 0.5, seed=3)
    ratio = (moved.weight / model.weight).detach().numpy().ravel()
    assert abs(ratio.mean() - 1.0) < 0.02 and abs(ratio.std() - 0.5) < 0.02  # N(1, 0.5^2) over 20,000 weights
    assert torch.equal(perturbed_model(model, 0.5, seed=3).weight, moved.weight)
    assert not torch.equal(perturbed_model(model, 0.5, seed=4).weight, moved.weight)
    x = torch.zeros(50, 1, 20, 20)
    ids = [f"s{i}" for i in range(50)]
    noise = perturbed_inputs(x, 0.25, seed=1, ids=ids)
    assert abs(float(noise.mean())) < 0.01 and abs(float(noise.std()) - 0.25) < 0.01
    # a sample's noise follows its id: alone or in another order, the same draw
    torch.testing.assert_close(perturbed_inputs(x[:1], 0.25, seed=1, ids=ids[7:8]), noise[7:8], rtol=0, atol=0)
    torch.testing.assert_close(perturbed_inputs(x, 0.25, seed=1, ids=ids[::-1]), noise.flip(0), rtol=0, atol=0)


def test_rescoring_a_run_under_every_perturbation(tmp_path: Path, tiny_plugin) -> None:  # type: ignore[no-untyped-def]
    """One tiny run with ``meta_evaluation: 1``: what is stored, an analytic invariance, reuse, the trust table."""
    (tmp_path / "suite.yaml").write_text(TINY_SUITE.replace("[dic, iic, hit-rate]", "[dic, hit-rate]")
                                          + "meta_evaluation: 1\n")
    harness = load_harness([("tiny", tiny_plugin)])
    with Store(tmp_path / "r.sqlite") as store:
        runner = Runner(harness, load_suite(tmp_path / "suite.yaml"), store, RunOptions(progress=False))
        summary = runner.run()
        assert not summary.failed, summary.failed
        recs = leaderboard.records(store, "tiny")
        kinds = [(t, kind) for t in PERTURBATIONS for kind in PERTURBATIONS[t]]
        for r in recs:
            stored = [store.cell(perturbed_key(r.cell_key, t, kind, 0)) for t, kind in kinds]
            if r.method == "input-times-one":
                assert all(c is not None and c.status == "ok" for c in stored)
            else:  # random and the oracle are references: not meta-evaluated
                assert all(c is None for c in stored)
        assert meta_evaluate(runner, runner.plan()) == 0  # a re-run reuses the stored perturbed cells

        # input-times-one's map is the input itself: perturbing the weights cannot move its hit rate
        rec = next(r for r in recs if (r.method, r.metric) == ("input-times-one", "hit-rate"))
        original = store.scores(rec.cell_key)
        for kind in ("minor", "disruptive"):
            moved = store.scores(perturbed_key(rec.cell_key, "model", kind, 0))
            assert moved.keys() == original.keys()
            assert all(np.isnan(moved[k]) or moved[k] == original[k] for k in original)  # NaN: prediction changed
            assert sum(not np.isnan(v) for v in moved.values()) > 0

        block, header = leaderboard.board(store, "tiny")[0], store.header("tiny")
        assert header["meta_evaluation"] == 1
        assessed = {t.metric: t for t in trust.assess(block, header)}
        assert assessed["hit-rate"].meta is not None and np.isfinite(trust.noise_resilience(assessed["hit-rate"].meta))
        assert "| hit-rate |" in "\n".join(trust.markdown(block, header))


def test_a_negative_meta_evaluation_is_refused_at_its_line(tmp_path: Path) -> None:
    (tmp_path / "suite.yaml").write_text(TINY_SUITE + "meta_evaluation: -1\n")
    with pytest.raises(SuiteError, match=r"suite.yaml:9: 'meta_evaluation' is the number of perturbations"):
        load_suite(tmp_path / "suite.yaml")
