"""Per-class precision, recall and F1 of a model (seed 001's table), by hand on a 3-class confusion matrix."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from test_leaderboard import _store

from xaibench import leaderboard
from xaibench.contract.specs import Samples
from xaibench.models.training import evaluate

# labels and the predictions a stub model makes (the predicted class is written in the image):
TRUE = [0, 0, 0, 1, 1, 2]
PRED = [0, 0, 1, 1, 0, 1]


class Predicts(torch.nn.Module):
    """Logits that are one-hot at the class index stored in pixel (0, 0)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.one_hot(x[:, 0, 0, 0].long(), 4).float()


def test_per_class_values_from_the_confusion_matrix() -> None:
    x = torch.tensor(PRED, dtype=torch.float32).view(-1, 1, 1, 1).expand(-1, 1, 2, 2).contiguous()
    samples = Samples(x=x, y=torch.tensor(TRUE), ids=tuple(map(str, range(6))))
    e = evaluate(Predicts(), samples, torch.device("cpu"), ("a", "b", "c", "never"))
    # confusion matrix (rows true, columns predicted): a: [2, 1, 0], b: [1, 1, 0], c: [0, 1, 0]
    a, b, c = e["per_class"]["a"], e["per_class"]["b"], e["per_class"]["c"]
    assert (a["precision"], a["recall"], a["f1"], a["support"]) == pytest.approx((2 / 3, 2 / 3, 2 / 3, 3))
    # b: tp 1, predicted 3 times, 2 true: P 1/3, R 1/2, F1 = 2PR/(P+R) = 2/5
    assert (b["precision"], b["recall"], b["f1"], b["support"]) == pytest.approx((1 / 3, 1 / 2, 2 / 5, 2))
    # c is never predicted: precision undefined (None, not 0); recall 0; F1 0
    assert c["precision"] is None and (c["recall"], c["f1"], c["support"]) == (0.0, 0.0, 1)
    assert "never" not in e["per_class"]  # neither a label nor a prediction
    # the macro values count an undefined precision as 0 (the table's convention before per-class values)
    assert (e["accuracy"], e["precision"], e["recall"], e["f1"]) == pytest.approx((1 / 2, 1 / 3, 7 / 18, 16 / 45))


def test_leaderboard_shows_a_per_class_table(tmp_path: Path) -> None:
    with _store(tmp_path / "s.sqlite") as s:
        s.put_model("mk", "ds", "net", "sha", {"accuracy": 0.5, "precision": 1 / 3, "recall": 7 / 18, "f1": 16 / 45,
                                                "n": 6, "majority": 0.5, "per_class": {
                                                    "a": {"precision": 2 / 3, "recall": 2 / 3, "f1": 2 / 3, "support": 3},
                                                    "c": {"precision": None, "recall": 0.0, "f1": 0.0,
                                                          "support": 1}}}, {})
        md = leaderboard.render(s, "demo")
    lines = md.splitlines()
    assert any(line.replace(" ", "") == "|class|precision|recall|F1|n|" for line in lines)
    assert any(line.replace(" ", "") == "|a|0.667|0.667|0.667|3|" for line in lines)
    assert any(line.replace(" ", "") == "|c|–|0.000|0.000|1|" for line in lines)


def test_folds_pool_each_class_over_the_folds_where_it_is_defined() -> None:
    from xaibench.leaderboard.board import pooled_per_class

    folds = [{"per_class": {"a": {"precision": 0.5, "recall": 1.0, "f1": 2 / 3, "support": 2}}},
             {"per_class": {"a": {"precision": None, "recall": 0.0, "f1": 0.0, "support": 1},
                            "b": {"precision": None, "recall": None, "f1": 0.0, "support": 0}}}]
    assert pooled_per_class(folds) == {"a": {"precision": 0.5, "recall": 0.5, "f1": pytest.approx(1 / 3), "support": 3},
                                       "b": {"precision": None, "recall": None, "f1": 0.0, "support": 0}}
