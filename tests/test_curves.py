"""Deletion/insertion curves: tie-breaking by a seeded random order, and figures that draw the table's curves."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from xaibench.scoring import kernels
from xaibench.scoring.curves import change_steps, perturbation_curve, pixel_ranks
from xaibench.scoring.engine import Engine
from xaibench.contract.plugins import load_harness
from xaibench.contract.metric_inputs import MetricContext
from xaibench.authoring.testing import score_metric

SIDE, N = 4, 400


class KeyPixel(nn.Module):
    """Two classes, logits ``[0, 3 * x[key]]``: class 1's probability is sigmoid(3) until the key pixel goes."""

    def __init__(self, key: tuple[int, int]) -> None:
        super().__init__()
        self.key = key

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = 3.0 * x[:, 0, self.key[0], self.key[1]]
        return torch.stack([torch.zeros_like(z), z], dim=1)


def test_pixel_ranks_order_by_saliency_and_shuffle_only_ties() -> None:
    sal = torch.tensor([[2.0, 1.0, 1.0, 1.0, 0.0, 3.0]])
    assert pixel_ranks(sal).tolist() == [[1, 2, 3, 4, 5, 0]]  # by hand: 3 > 2 > 1 = 1 = 1 > 0, ties in index order
    seen = set()
    for seed in range(40):
        r = pixel_ranks(sal, [seed])[0].tolist()
        assert (r[5], r[0], r[4]) == (0, 1, 5) and sorted(r[1:4]) == [2, 3, 4]
        seen.add(tuple(r[1:4]))
        assert pixel_ranks(sal, [seed]).tolist() == [r]  # the same seed, the same order
    assert len(seen) == 6  # all 3! orders of the tied pixels occur
    with pytest.raises(ValueError, match="^2 sample seeds for 1 maps: one seed per map$"):
        pixel_ranks(sal, [0, 1])


def test_unseeded_ties_keep_index_order_on_a_large_flat_map() -> None:
    """Without seeds a flat map of 5000 pixels is ranked in index order (ROAD's rule), pixel i at rank i:
    an unstable sort reorders ties on maps this large."""
    flat = torch.zeros(2, 50, 100)
    flat[1, 0, 0] = 1.0  # one peak, then the other 4999 pixels in index order
    ranks = pixel_ranks(flat)
    np.testing.assert_array_equal(ranks[0].numpy(), np.arange(5000))
    np.testing.assert_array_equal(ranks[1].numpy(), np.arange(5000))
    seeded = pixel_ranks(torch.zeros(1, 50, 100), [7])[0]  # ties in the order of the seed's permutation
    perm = torch.randperm(5000, generator=torch.Generator().manual_seed(7))
    np.testing.assert_array_equal(seeded[perm].numpy(), np.arange(5000))


@pytest.mark.parametrize("key", [(0, 0), (SIDE - 1, SIDE - 1)])
def test_a_flat_maps_deletion_auc_does_not_depend_on_raster_order(key: tuple[int, int]) -> None:
    """Through the registered metric: with P pixels deleted one per step and the key pixel deleted at
    a uniformly random step r, AUC(r) = ((r - 1) p1 + (p1 + p0) / 2 + (P - r) p0) / P, whose mean over
    r = 1..P is (p1 + p0) / 2, wherever the key pixel lies (raster order: 0.514 top-left, 0.935 bottom-right)."""
    model = KeyPixel(key).eval()
    x = torch.ones(N, 1, SIDE, SIDE)
    target = torch.ones(N, dtype=torch.long)
    engine = Engine(model, "cpu", batch_size=256)
    ctx = MetricContext(engine=engine, base_logits=engine.logits(x), sample_seeds=tuple(range(N)))
    spec = load_harness().metrics.get("deletion-auc")
    p = SIDE * SIDE
    scores = score_metric(spec, ctx, x, target, torch.zeros(N, SIDE, SIDE), steps=p, fill="zero")
    p1, p0 = 1 / (1 + np.exp(-3.0)), 0.5
    r = np.arange(1, p + 1)
    possible = ((r - 1) * p1 + (p1 + p0) / 2 + (p - r) * p0) / p
    step = np.abs(scores[:, None] - possible[None]).argmin(1) + 1
    np.testing.assert_allclose(scores, possible[step - 1], atol=1e-6)  # every score is one of the P values
    assert len(set(step.tolist())) == p  # and the key pixel went at every step for some sample
    se = (p1 - p0) * np.sqrt((p * p - 1) / 12) / p / np.sqrt(N)
    assert abs(scores.mean() - (p1 + p0) / 2) < 4 * se
    again = score_metric(spec, ctx, x, target, torch.zeros(N, SIDE, SIDE), steps=p, fill="zero")
    np.testing.assert_array_equal(scores, again)  # seeded: the same draws every time


@pytest.mark.parametrize("steps", [4, 300])
def test_change_steps_move_exactly_the_ranked_pixels(steps: int) -> None:
    """Moved at point s iff the pixel's rank (pixel_ranks, seeded ties) is below counts[s], point by point; one byte
    per pixel up to 256 points."""
    maps = torch.randint(0, 3, (3, 5, 7)).float()  # many ties: the seeded order decides
    counts = torch.round(torch.arange(steps + 1, dtype=torch.float64) * 35 / steps).long()
    seeds = (1, 2, 3)
    moved = change_steps(maps, counts, seeds)
    ranks = pixel_ranks(maps, seeds)
    assert moved.dtype == (torch.uint8 if steps < 256 else torch.int16)
    for s in range(steps + 1):
        assert torch.equal(moved <= s, ranks < counts[s])
    with pytest.raises(ValueError, match="one seed per map"):
        change_steps(maps, counts, (1, 2))


def test_curve_points_move_round_of_s_p_over_steps_pixels() -> None:
    """By hand on a 1x6 input with logit = the sum of what is left: deletion to zero, steps = 4
    moves round(s * 6 / 4) = 0, 2, 3, 4, 6 pixels (round half to even), most salient first."""

    class Sum(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            s = x.flatten(1).sum(1)
            return torch.stack([torch.zeros_like(s), s], dim=1)

    x = torch.tensor([[[[1.0, 2.0, 4.0, 8.0, 16.0, 32.0]]]])
    sal = torch.tensor([[[6.0, 5.0, 4.0, 3.0, 2.0, 1.0]]])
    engine = Engine(Sum(), "cpu", batch_size=3)
    target = torch.tensor([1])
    dele = perturbation_curve(engine, x, target, sal, "deletion", torch.zeros_like(x), 4, output="logit")
    np.testing.assert_allclose(dele, [[63, 60, 56, 48, 0]])
    ins = perturbation_curve(engine, x, target, sal, "insertion", torch.zeros_like(x), 4, output="logit")
    np.testing.assert_allclose(ins, [[0, 3, 7, 15, 63]])
    base = engine.logits(x)[:, 1:]
    seeded = perturbation_curve(engine, x, target, sal, "deletion", torch.zeros_like(x), 4, output="logit",
                                input_scores=base + 100, sample_seeds=[7])
    np.testing.assert_allclose(seeded, [[163, 60, 56, 48, 0]])  # the given input score fills point 0
    np.testing.assert_allclose(kernels.auc(dele), [(63 + 60) / 8 + (60 + 56) / 8 + (56 + 48) / 8 + 48 / 8])
    one = perturbation_curve(engine, x, target, sal, "deletion", torch.zeros_like(x), 1, output="logit")
    np.testing.assert_allclose(one, [[63, 0]])  # one step: the input, then every pixel deleted
    with pytest.raises(ValueError, match="^steps must be at least 1$"):
        perturbation_curve(engine, x, target, sal, "deletion", torch.zeros_like(x), 0)
    with pytest.raises(ValueError, match="^mode must be 'deletion' or 'insertion', got 'erase'$"):
        perturbation_curve(engine, x, target, sal, "erase", torch.zeros_like(x), 4)
    shape_error = r"^saliency \(1, 6\) does not match inputs \(1, 1, 1, 6\): expected \(N, \*spatial\)$"
    with pytest.raises(ValueError, match=shape_error):
        perturbation_curve(engine, x, target, sal[:, 0], "deletion", torch.zeros_like(x), 4)


CURVE_SUITE = """
name: curvy
seed: 0
samples: 6
datasets: [tiny]
models: [tiny-cnn]
methods: [input-times-one, random]
metrics: [{name: deletion-auc, params: {steps: 8, fill: mean}}, insertion-auc]
"""


def test_the_curve_figure_draws_the_tables_curves(tmp_path: Path, tiny_plugin) -> None:  # type: ignore[no-untyped-def]
    from xaibench.figures import charts as figures
    from xaibench.running.runner import RunOptions, Runner
    from xaibench.storage.store import Store
    from xaibench.suites.suite import load_suite

    path = tmp_path / "suite.yaml"
    path.write_text(CURVE_SUITE)
    harness = load_harness([("tiny", tiny_plugin)])
    with Store(tmp_path / "r.sqlite") as store:
        runner = Runner(harness, load_suite(path), store, RunOptions(progress=False))
        runner.run()
        ds, mo = runner.datasets[0], runner.models[0]
        g = runner.group_context(ds, mo)
        cells = {(c.method.entry.display, c.metric.entry.display): c for c in runner.plan()}
        for me in runner.methods:
            maps = runner.cached_maps(g, me)
            for mt in runner.metrics:
                curves = runner.metric_curves(g, me, mt, maps)
                assert curves.shape == (6, 1 + mt.params["steps"])
                table = store.scores(cells[(me.entry.display, mt.entry.display)].row.cell_key)
                np.testing.assert_allclose(kernels.auc(curves), [table[s] for s in g.samples.ids], rtol=1e-6)
        assert [p.name for p in figures.write_run_figures(runner, tmp_path / "lb")] == [
            "tiny--tiny-cnn--gallery.png", "tiny--tiny-cnn--curves.png"]
