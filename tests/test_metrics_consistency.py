"""Consistency (Dasgupta et al. 2022): a hand-worked case, 1D signals, and Quantus 0.6 on the same discretisation."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from torch import nn
from xaibench_metrics.consistency import peak_cells

from xaibench.scoring.engine import Engine
from xaibench.contract.metric_inputs import MetricContext
from xaibench.contract.plugins import load_harness
from xaibench.authoring.testing import score_metric


def _score(maps: torch.Tensor, logits: torch.Tensor, **params: object) -> np.ndarray:
    """The registered metric through the runner's seam (only its declared needs reach it)."""
    spec = load_harness().metrics.get("consistency")
    ctx = MetricContext(engine=None, base_logits=logits)
    return np.asarray(score_metric(spec, ctx, maps=maps, **{**spec.defaults, **params}), dtype=np.float64)


def _peaks(spatial: tuple[int, ...], where: list[tuple[int, ...]]) -> torch.Tensor:
    maps = torch.zeros(len(where), *spatial)
    for i, p in enumerate(where):
        maps[(i, *p)] = 1.0
    return maps


def test_hand_worked_labels_and_predictions() -> None:
    # 8x8, grid 2: cells of 4x4. Peaks: samples 0-2 top-left (cell 0), 3 bottom-right (cell 3), 4 top-right (cell 1)
    maps = _peaks((8, 8), [(0, 0), (3, 3), (2, 1), (7, 7), (0, 5)])
    predicted = torch.tensor([1, 1, 0, 2, 2])
    logits = torch.nn.functional.one_hot(predicted, 3).float()
    values = _score(maps, logits, grid=2)
    # sample 0: peers 1 (same class) and 2 (other): 1/2; sample 1 alike; sample 2: both peers differ: 0;
    # samples 3 and 4: no other sample peaks in their cell: undefined
    np.testing.assert_array_equal(values[:3], [0.5, 0.5, 0.0])
    assert np.isnan(values[3:]).all()
    assert peak_cells(maps, 2).tolist() == [0, 0, 0, 3, 1]
    # grid 1: one label for all, the score is the share of the others predicting the same class
    np.testing.assert_allclose(_score(maps, logits, grid=1), [1 / 4, 1 / 4, 0.0, 1 / 4, 1 / 4])


def test_signals_and_the_sign_handling() -> None:
    maps = torch.tensor([[0.0, 0.0, 0.0, -5.0], [0.0, 0.0, 0.0, 1.0], [2.0, 0.0, 0.0, 0.0]])
    assert peak_cells(maps, 2).tolist() == [1, 1, 0]
    assert peak_cells(maps, 2, abs=False).tolist() == [0, 1, 0]  # without abs the first sample's peak is at 0
    logits = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    np.testing.assert_array_equal(_score(maps, logits, grid=2)[:2], [1.0, 1.0])
    with pytest.raises(ValueError, match="^consistency needs grid >= 1 cells per axis, got 0$"):
        peak_cells(maps, 0)


def test_peak_cells_on_a_grid_that_does_not_divide_the_axes() -> None:
    """By hand, 8x8 in 3x3 cells: a peak at row p lies in cell floor(3p / 8); (2, 7) -> row 0, column 2, label 2;
    (3, 2) -> row 1, column 0, label 3; (7, 5) -> row 2, column 1, label 7. A volume 4x4x4 in 3x3x3 cells:
    (1, 3, 2) -> (0, 2, 1), label 0 * 9 + 2 * 3 + 1 = 7."""
    labels = peak_cells(_peaks((8, 8), [(2, 7), (3, 2), (7, 5)]), 3)
    assert labels.dtype == torch.long and labels.tolist() == [2, 3, 7]
    assert peak_cells(_peaks((4, 4, 4), [(1, 3, 2)]), 3).tolist() == [7]


def test_equals_quantus_with_the_same_discretisation() -> None:
    warnings.filterwarnings("ignore", module="quantus")
    quantus = pytest.importorskip("quantus")
    n, c, h, w, grid = 40, 1, 8, 8, 2
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(c, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * h * w, 3)).eval()
    x = torch.rand(n, c, h, w)
    maps = torch.randn(n, h, w)
    logits = Engine(model, "cpu", batch_size=16).logits(x)
    ours = _score(maps, logits, grid=grid)

    def cell_of_peak(a: np.ndarray, **_: object) -> int:
        """The peak's grid cell, computed independently with numpy's unravel_index."""
        r, col = np.unravel_index(int(np.argmax(a.reshape(h, w))), (h, w))
        return int(r * grid // h) * grid + int(col * grid // w)

    metric = quantus.Consistency(discretise_func=cell_of_peak, abs=True, normalise=True, disable_warnings=True)
    theirs = np.asarray(metric(model=model, x_batch=x.numpy(), y_batch=logits.argmax(1).numpy(),
                               a_batch=maps[:, None].numpy(), device="cpu", batch_size=n), dtype=np.float64)
    defined = np.isfinite(ours)
    assert defined.sum() >= n - 2 and np.unique(ours[defined]).size > 2  # a non-trivial case
    np.testing.assert_allclose(ours[defined], theirs[defined], atol=1e-8)
    np.testing.assert_array_equal(theirs[~defined], 0.0)  # Quantus scores "no peer" as 0; we leave it undefined


def test_the_papers_definition_local_and_global() -> None:
    """Dasgupta, Frost and Moshkovitz 2022, Sec. 3: the local consistency of an explanation e at x is
    m(x) = Pr_{x' ~ mu}[f(x') = f(x) | e(x') = e(x)] and the global consistency is E_x[m(x)]. Estimated on the
    cell's samples with x' != x (Quantus's estimator, ours): an explanation that is a function of the prediction
    is consistent (1 on every sample); one that takes the same value for two classes in proportions p and 1 - p
    scores p' = (count of its class - 1) / (count - 1) per sample, and the global value is their mean; brute force
    over the pairs gives both."""
    predicted = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2])
    logits = torch.nn.functional.one_hot(predicted, 3).float()
    by_class = _peaks((4, 4), [(0, 0), (0, 0), (0, 0), (3, 3), (3, 3), (0, 3), (0, 3), (0, 3)])
    np.testing.assert_array_equal(_score(by_class, logits, grid=2), 1.0)
    merged = _peaks((4, 4), [(0, 0)] * 5 + [(0, 3)] * 3)  # classes 0 and 1 share a label; class 2 alone
    local = _score(merged, logits, grid=2)
    labels = peak_cells(merged, 2).tolist()
    brute = [np.mean([predicted[j] == predicted[i] for j in range(8) if j != i and labels[j] == labels[i]])
             for i in range(8)]
    np.testing.assert_allclose(local, brute)
    np.testing.assert_allclose(local[:5], [2 / 4, 2 / 4, 2 / 4, 1 / 4, 1 / 4])
    np.testing.assert_allclose(local.mean(), (3 * 0.5 + 2 * 0.25 + 3 * 1.0) / 8)
