"""Issue 14, cases 8 and 9: numerics in cache keys, early stopping on small data, and the model gate."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
from conftest import TINY_SUITE
from scipy.stats import binom
from torch import nn

from xaibench import hookimpl, leaderboard
from xaibench.suites.options import Settings
from xaibench.storage.cache import numerics
from xaibench.models.gate import ALPHA, verdict
from xaibench.contract.plugins import load_harness
from xaibench.running.runner import Runner, RunOptions
from xaibench.contract.specs import ModelSpec, Samples, TrainRecipe
from xaibench.storage.store import Store
from xaibench.suites.suite import load_suite
from xaibench.models.training import train, validation_score


def _tail(k: int, n: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p), summed term by term (independent of binomtest)."""
    return float(sum(binom.pmf(i, n, p) for i in range(k, n + 1)))


def test_case9_gate_uses_a_one_sided_exact_binomial_test() -> None:
    # The case: 3 balanced-ish classes, 0.40 majority, accuracy 0.40 on 60 samples: did not learn.
    v = verdict({"accuracy": 0.40, "n": 60, "majority": 0.40})
    assert not v["learned"] and v["p_value"] == pytest.approx(_tail(24, 60, 0.4))
    assert v["reason"].startswith("did not learn: test accuracy 0.400 is not significantly above the majority-class "
                                  "rate 0.400 (one-sided exact binomial test, n=60")
    # 0.66 on 60 (what the same model reaches with enough epochs) is far above 0.40.
    v = verdict({"accuracy": 0.66, "n": 60, "majority": 0.40})
    assert v["learned"] and v["p_value"] == pytest.approx(_tail(round(0.66 * 60), 60, 0.4)) and v["p_value"] < ALPHA
    # A margin small samples cannot support: 6 of 10 right against a 0.5 majority.
    assert not verdict({"accuracy": 0.6, "n": 10, "majority": 0.5})["learned"]
    assert not verdict({"accuracy": 1.0, "n": 10, "majority": 1.0})["learned"]


class Constant(nn.Module):
    """Predicts class 0 whatever the input: a model that never learned."""

    def __init__(self, num_classes: int, in_channels: int, modality: str) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.tensor([5.0] + [0.0] * (num_classes - 1)))
        self.conv = nn.Conv2d(in_channels, 1, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bias.expand(len(x), -1) + 0 * self.conv(x).mean((1, 2, 3))[:, None]


class ConstantPlugin:
    @hookimpl
    def xaibench_register_models(self, register):  # type: ignore[no-untyped-def]
        register(ModelSpec(name="constant", build=Constant, modalities=frozenset({"image"}),
                           target_layer=lambda m: m.conv, description="always class 0",
                           recipe=TrainRecipe(epochs=1, lr=0.0, min_epochs=1)))


def test_case9_a_model_that_did_not_learn_is_not_ranked(tmp_path: Path, tiny_plugin, capsys) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "suite.yaml"
    path.write_text(TINY_SUITE.replace("models: [tiny-cnn]", "models: [tiny-cnn, constant]"))
    store = Store(tmp_path / "r.sqlite")
    runner = Runner(load_harness([("tiny", tiny_plugin), ("c", ConstantPlugin())]), load_suite(path), store,
                    RunOptions(progress=False))
    runner.run()
    blocks = {b.model: b for b in leaderboard.board(store, "tiny")}
    assert all(r.rank is None for r in blocks["constant"].rows)
    assert all(rank is None for r in blocks["constant"].rows for rank in r.metric_ranks.values())
    assert any(r.rank == 1 for r in blocks["tiny-cnn"].rows)
    text = leaderboard.render(store, "tiny")
    reason = verdict({"accuracy": 0.5, "n": 16, "majority": 0.5})["reason"]
    assert f"**This model {reason}.**" in text
    assert f"model 'constant' on 'tiny': {reason}" in capsys.readouterr().out


def _stuck_then_learns(n_val: int) -> tuple[Samples, Samples]:
    """Two Gaussian blobs; the first epochs predict one class on the small validation split."""
    g = torch.Generator().manual_seed(0)

    def split(n: int, tag: str) -> Samples:
        y = torch.arange(n) % 2
        x = torch.randn(n, 1, 4, 4, generator=g) * 0.5 + y.view(-1, 1, 1, 1) * 0.6
        return Samples(x=x, y=y, ids=tuple(f"{tag}{i}" for i in range(n)))

    return split(200, "t"), split(n_val, "v")


def test_case9_early_stopping_breaks_accuracy_ties_by_loss_and_waits_min_epochs() -> None:
    train_set, val_set = _stuck_then_learns(30)

    def fit(recipe: TrainRecipe) -> float:
        torch.manual_seed(0)
        model = nn.Sequential(nn.Flatten(), nn.Linear(16, 2))
        with torch.no_grad():
            model[1].bias.copy_(torch.tensor([6.0, 0.0]))  # predicts class 0 for everything for several epochs
        train(model, train_set, val_set, recipe, seed=0, device=torch.device("cpu"))
        return validation_score(model, val_set, torch.device("cpu"))[0]

    base = TrainRecipe(epochs=30, batch_size=32, lr=3e-3, patience=5, min_epochs=1)
    patient = fit(dataclasses.replace(base, patience=0))  # the "patience 0 and 30 epochs"
    assert patient > 0.8
    # Ties broken by loss: no early stop at the majority rate (accuracy alone with a strict > stops at 0.5 here).
    assert fit(base) == pytest.approx(patient, abs=0.05)


def test_case8_cache_keys_include_device_dtype_and_autocast(tmp_path: Path, tiny_plugin, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    assert numerics(torch.device("cpu"), True) == {"device": "cpu", "dtype": "float32", "autocast": "off"}
    assert numerics(torch.device("cuda"), True)["autocast"] == "bfloat16"
    path = tmp_path / "suite.yaml"
    path.write_text(TINY_SUITE)
    suite = load_suite(path)
    runner = Runner(load_harness([("tiny", tiny_plugin)]), suite, Store(tmp_path / "r.sqlite"),
                    RunOptions(progress=False))
    cells = runner.plan()
    # what --device cuda --autocast gives, on a machine without CUDA:
    monkeypatch.setattr(Settings, "numerics", property(lambda s: {"device": "cuda", "dtype": "float32",
                                                                   "autocast": "bfloat16"}))
    other = Runner(load_harness([("tiny", tiny_plugin)]), suite, Store(tmp_path / "r.sqlite"),
                   RunOptions(progress=False))
    moved = other.plan()
    assert {c.row.model_key for c in cells}.isdisjoint({c.row.model_key for c in moved})
    assert {c.row.cell_key for c in cells}.isdisjoint({c.row.cell_key for c in moved})
    monkeypatch.undo()
    runner.run()
    board = leaderboard.render(runner.store, "tiny")
    assert "Computed on cpu, float32, autocast off." in board
