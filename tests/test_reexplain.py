"""Re-explanations in full calls: a metric's k perturbed copies of the samples, stacked.

``MetricContext.explain(inputs=...)`` takes ``k`` copies of the cell's ``N`` samples stacked copy-major
(:func:`xaibench.running.explaining.copies`); :func:`xaibench.running.explaining.explain_samples` fills a batch-invariant
method's calls across copies, and gives a method declared ``batch_invariant=False`` one copy per call,
grouped as its maps' own calls were. The robustness scores through ``xaibench.score`` equal the
definition computed here draw by draw, one ``xaibench.explain`` call per draw.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

import xaibench
from xaibench.base.errors import CellError
from xaibench.running.explaining import copies, explain_samples
from xaibench.contract.specs import MethodSpec, Samples
from xaibench.scoring.stats import seed_from
from xaibench.authoring.testing import tiny_model
from xaibench_metrics.robustness import input_noise

N = 5


def _samples(n: int = N) -> Samples:
    return Samples(x=torch.rand(n, 1, 8, 8), y=torch.arange(n) % 3, ids=tuple(f"s{i}" for i in range(n)),
                   masks=torch.rand(n, 8, 8) > 0.5)


def test_copies_repeat_each_samples_id_label_mask_and_class_copy_after_copy() -> None:
    samples, target = _samples(), torch.tensor([2, 0, 1, 1, 0])
    moved = torch.rand(3 * N, 1, 8, 8)
    out, classes = copies(samples, target, moved, None)
    assert out.ids == samples.ids * 3
    assert torch.equal(out.x, moved)
    assert torch.equal(out.y, samples.y.repeat(3)) and torch.equal(out.masks, samples.masks.repeat(3, 1, 1))
    assert classes.tolist() == target.tolist() * 3
    _, given = copies(samples, target, moved, torch.arange(3 * N) % 3)  # one class per row
    assert given.tolist() == (torch.arange(3 * N) % 3).tolist()
    same, classes = copies(samples, target, None, None)
    assert same is samples and classes is target


@pytest.mark.parametrize("rows, classes", [(2 * N + 1, None), (2 * N, 3)])
def test_copies_refuse_a_row_or_class_count_that_is_not_whole_copies(rows: int, classes: int | None) -> None:
    targets = None if classes is None else torch.zeros(classes, dtype=torch.long)
    with pytest.raises(CellError, match="re-explaining"):
        copies(_samples(), torch.zeros(N, dtype=torch.long), torch.rand(rows, 1, 8, 8), targets)


def _recording(invariant: bool, calls: list[tuple[str, ...]]) -> MethodSpec:
    """A method whose map is its input scaled by the call's largest value: batch-dependent unless alone."""
    def explain(model, x, target, ctx):  # type: ignore[no-untyped-def]
        calls.append(ctx.sample_seeds)
        return x[:, 0] / x.amax()
    return MethodSpec(name="by-call-max", explain=explain, modalities=frozenset({"image"}), description="test",
                      batch_invariant=invariant)


@pytest.mark.parametrize("invariant, batch_size, expected", [
    (True, 64, [15]),                   # every copy in one call
    (True, 4, [4, 4, 4, 3]),            # calls of batch_size across copies
    (False, 64, [5, 5, 5]),             # one copy per call
    (False, 3, [3, 2, 3, 2, 3, 2]),     # each copy cut as the maps' own calls were (3 + 2)
])
def test_calls_fill_across_copies_only_for_a_batch_invariant_method(invariant: bool, batch_size: int,
                                                                    expected: list[int]) -> None:
    calls: list[tuple[str, ...]] = []
    spec = _recording(invariant, calls)
    samples = _samples()
    stacked, target = copies(samples, torch.zeros(N, dtype=torch.long), torch.rand(3 * N, 1, 8, 8), None)
    maps = explain_samples(spec, tiny_model("image"), stacked, target, {}, layer=None, batch_size=batch_size,
                           seed=0, data_mean=None, device=torch.device("cpu"), group=N)
    assert [len(c) for c in calls] == expected
    assert maps.shape == (3 * N, 8, 8)
    assert [s for c in calls for s in c] == [seed_from(0, sid) for sid in stacked.ids]  # each row keeps its seed
    if not invariant:  # each copy's maps are those of a call on that copy alone, as the maps' own calls
        for k in range(3):
            x = stacked.x[k * N : (k + 1) * N]
            for lo, hi in ((0, min(batch_size, N)), (min(batch_size, N), N)):
                if lo < hi:
                    np.testing.assert_allclose(maps[k * N + lo : k * N + hi], (x[lo:hi, 0] / x[lo:hi].amax()).numpy())


@pytest.mark.parametrize("metric, reduce", [("max-sensitivity", np.max), ("avg-sensitivity", np.mean)])
def test_sensitivity_through_the_api_equals_the_definition_draw_by_draw(metric: str, reduce) -> None:  # type: ignore[no-untyped-def]
    """Yeh et al. 2019, Def. 3.1, relative: each draw's map from its own ``xaibench.explain`` call, on the noise
    the documented rule draws (``input_noise`` on the metric's per-sample seeds, read back from the scores' seeds)."""
    torch.manual_seed(0)
    model = tiny_model("image")
    x = torch.rand(N, 1, 16, 16)
    targets = model(x).argmax(1)
    maps = xaibench.explain(model, x, targets, method="saliency")
    draws, scale = 3, 0.05
    got = xaibench.score(model, x, targets, maps, [metric], method="saliency", method_batch_size=64,
                         params={metric: {"draws": draws, "scale": scale}})
    from xaibench.running.execution import metric_seeds
    from xaibench.contract.plugins import load_harness

    spec = load_harness().metrics.get(metric)
    seeds = metric_seeds(0, spec, {**spec.defaults, "draws": draws, "scale": scale},
                         got.ids)["sample_seeds"]
    noise = input_noise(x, seeds, draws, "uniform", scale)
    distances = np.stack([np.linalg.norm((xaibench.explain(model, x + d, targets, method="saliency") - maps)
                                         .reshape(N, -1), axis=1) for d in noise])
    expected = reduce(distances, axis=0) / np.linalg.norm(maps.reshape(N, -1), axis=1)
    np.testing.assert_allclose(got.values[metric], expected, rtol=1e-5)


def test_copies_of_one_sample_and_two_copies_repeat_as_many_times() -> None:
    one = _samples(1)
    out, classes = copies(one, torch.tensor([2]), torch.rand(3, 1, 8, 8), None)
    assert out.ids == ("s0",) * 3 and classes.tolist() == [2, 2, 2]
    two, classes = copies(_samples(), torch.arange(N) % 3, torch.rand(2 * N, 1, 8, 8), None)
    assert two.ids == _samples().ids * 2 and classes.tolist() == (torch.arange(N) % 3).tolist() * 2


def test_copies_refuse_an_empty_cell_and_name_the_counts() -> None:
    empty = Samples(x=torch.rand(0, 1, 8, 8), y=torch.zeros(0, dtype=torch.long), ids=())
    with pytest.raises(CellError, match=r"^re-explaining needs k copies of the cell's 0 samples, stacked; got 0 inputs$"):
        copies(empty, torch.zeros(0, dtype=torch.long), None, None)
    with pytest.raises(CellError, match=rf"^re-explaining {2 * N} inputs needs {2 * N} or {N} target classes, got 3$"):
        copies(_samples(), torch.zeros(N, dtype=torch.long), torch.rand(2 * N, 1, 8, 8), torch.zeros(3, dtype=torch.long))


def test_a_single_sample_cell_gives_a_batch_dependent_method_one_copy_per_call() -> None:
    calls: list[tuple[str, ...]] = []
    stacked, target = copies(_samples(1), torch.zeros(1, dtype=torch.long), torch.rand(3, 1, 8, 8), None)
    explain_samples(_recording(False, calls), tiny_model("image"), stacked, target, {}, layer=None, batch_size=64,
                    seed=0, data_mean=None, device=torch.device("cpu"), group=1)
    assert [len(c) for c in calls] == [1, 1, 1]


@pytest.mark.parametrize("needs", [frozenset(), frozenset({"masks"})])
def test_masks_reach_only_a_method_that_needs_them_copy_by_copy(needs: frozenset[str]) -> None:
    seen: list[torch.Tensor | None] = []

    def explain(model, x, target, ctx):  # type: ignore[no-untyped-def]
        seen.append(ctx.masks)
        return x[:, 0]

    spec = MethodSpec(name="mask-reader", explain=explain, modalities=frozenset({"image"}), description="test",
                      needs=needs)
    samples = _samples()
    stacked, target = copies(samples, torch.zeros(N, dtype=torch.long), torch.rand(2 * N, 1, 8, 8), None)
    explain_samples(spec, tiny_model("image"), stacked, target, {}, layer=None, batch_size=64, seed=0,
                    data_mean=None, device=torch.device("cpu"), group=N)
    assert len(seen) == 1
    if needs:
        assert torch.equal(seen[0], samples.masks.repeat(2, 1, 1))
    else:
        assert seen[0] is None
