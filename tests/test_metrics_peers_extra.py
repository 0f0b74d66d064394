"""The metrics of issue 35 against Quantus 0.6 (and hand values) on the same inputs, through the runner's seam.

Each registered metric is called with :func:`xaibench.authoring.testing.score_metric` (only its declared needs
reach it) and compared with the Quantus class on the same model, inputs, maps and masks. Quantus's
``normalise``/``abs`` preprocessing is switched off where our definition has none, or matched where it
has one; its ``black`` baseline (the sample's minimum) is replaced by the constant 0 our ``zero`` fill uses.
Where Quantus deviates from the paper the test shows both values.
"""
from __future__ import annotations

import copy
import warnings

import numpy as np
import pytest
import torch
from torch import nn

from xaibench.scoring.engine import Engine
from xaibench.contract.metric_inputs import MetricContext
from xaibench.contract.plugins import load_harness
from xaibench.authoring.testing import score_metric

quantus = pytest.importorskip("quantus", reason="quantus (test extra) is not installed")

N, H, W = 6, 8, 8
P = H * W
HARNESS = load_harness()


@pytest.fixture(autouse=True)
def _quiet() -> None:
    warnings.filterwarnings("ignore")


def _data(seed: int = 0, n: int = N):  # type: ignore[no-untyped-def]
    """Tie-free maps (signed), never-empty masks of varied size, a small random CNN, targets 0..2."""
    rng = np.random.default_rng(seed)
    x = rng.random((n, 1, H, W)).astype(np.float32)
    a = rng.normal(size=(n, 1, H, W)).astype(np.float32)
    s = np.zeros((n, 1, H, W), dtype=bool)
    for i in range(n):
        r, c = rng.integers(0, 4, 2)
        s[i, 0, r: r + 2 + i % 3, c: c + 3] = True
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * H * W, 3)).eval()
    return model, x, np.arange(n) % 3, a, s


def _registered(name: str, model: nn.Module, x: np.ndarray, y: np.ndarray, a: np.ndarray,
                s: np.ndarray | None = None, **params: object) -> np.ndarray:
    """The registered metric ``name`` with its defaults (``params`` override them), maps ``(N, H, W)``."""
    spec = HARNESS.metrics.get(name)
    xt = torch.from_numpy(x)
    engine = None if model is None else Engine(model, "cpu", batch_size=16)
    logits = torch.zeros(len(x), 3) if engine is None else engine.logits(xt)
    ctx = MetricContext(engine=engine, base_logits=logits, sample_seeds=tuple(range(len(x))))
    masks = None if s is None else torch.from_numpy(s[:, 0])
    return np.asarray(score_metric(spec, ctx, xt, torch.from_numpy(y), torch.from_numpy(a[:, 0]), masks,
                                   **{**spec.defaults, **params}), dtype=np.float64)


def _quantus(metric, model, x, y, a, s=None, **kw) -> np.ndarray:  # type: ignore[no-untyped-def]
    return np.asarray(metric(model=model, x_batch=x, y_batch=y, a_batch=a, s_batch=s, device="cpu", **kw),
                      dtype=np.float64)


def test_faithfulness_estimate() -> None:
    model, x, y, a, _ = _data()
    ours = _registered("faithfulness-estimate", model, x, y, a, steps=16)
    theirs = _quantus(quantus.FaithfulnessEstimate(features_in_step=P // 16, perturb_baseline=0.0, normalise=False,
                                                   abs=False, disable_warnings=True), model, x, y, a)
    np.testing.assert_allclose(ours, theirs, atol=1e-6)
    assert np.isfinite(ours).all()


def test_monotonicity_arya() -> None:
    """Quantus 0.6's Monotonicity writes the *baseline* into the all-baseline canvas at each step (its default
    perturb_func), so the input is never put back, the curve is flat and every map scores 1 (pinned below). With a
    perturb_func that puts the input's values back at the indices, Quantus's loop gives our scores."""
    model, x, y, a, _ = _data()
    flat = x.reshape(N, -1)

    def restore(arr: np.ndarray, indices: np.ndarray, **_: object) -> np.ndarray:
        out = arr.copy()
        rows = np.arange(len(arr))[:, None]
        out[rows, indices] = flat[rows, indices]
        return out

    ours = _registered("monotonicity-arya", model, x, y, a, steps=4)
    theirs = _quantus(quantus.Monotonicity(features_in_step=P // 4, perturb_baseline=0.0, perturb_func=restore,
                                           normalise=False, abs=False, disable_warnings=True), model, x, y, a)
    np.testing.assert_array_equal(ours, theirs)
    assert 0 < ours.sum() < N  # both outcomes occur
    as_shipped = _quantus(quantus.Monotonicity(features_in_step=P // 4, perturb_baseline=0.0, normalise=False,
                                               abs=False, disable_warnings=True), model, x, y, a)
    np.testing.assert_array_equal(as_shipped, 1.0)


def test_monotonicity_arya_by_hand() -> None:
    """A linear model p_c = sigmoid(w.x) from an all-zero fill: restoring a pixel of weight w_i changes the logit by
    w_i. The map restores pixels in the order 1, 3, 0, 2 (least relevant first). All weights positive: every step
    raises p_c (1). Pixel 2, restored last, with a negative weight: the last step lowers p_c (0)."""
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 2, bias=False))
    with torch.no_grad():
        model[1].weight.copy_(torch.tensor([[1.0, 2.0, 3.0, 4.0], [0.0, 0.0, 0.0, 0.0]]))
    x = np.ones((1, 1, 2, 2), np.float32)
    y = np.zeros(1, dtype=np.int64)
    any_map = np.array([[[[0.3, 0.1], [0.4, 0.2]]]], np.float32)
    assert _registered("monotonicity-arya", model, x, y, any_map, steps=4).tolist() == [1.0]
    with torch.no_grad():
        model[1].weight[0, 2] = -3.0
    assert _registered("monotonicity-arya", model, x, y, any_map, steps=4).tolist() == [0.0]
    with torch.no_grad():  # pixel 3, restored second, lowers p_c: a fall from the first point to the second
        model[1].weight.copy_(torch.tensor([[1.0, 2.0, 3.0, -4.0], [0.0, 0.0, 0.0, 0.0]]))
    assert _registered("monotonicity-arya", model, x, y, any_map, steps=4).tolist() == [0.0]
    with torch.no_grad():  # pixel 0 has weight 0: p_c stays level there, which is not a fall
        model[1].weight.copy_(torch.tensor([[0.0, 2.0, 3.0, 4.0], [0.0, 0.0, 0.0, 0.0]]))
    assert _registered("monotonicity-arya", model, x, y, any_map, steps=4).tolist() == [1.0]
    assert _registered("monotonicity-arya", model, x, y, any_map, steps=1).tolist() == [1.0]  # one point


def test_monotonicity_correlation() -> None:
    """The same uniform replacement values on both sides: Quantus's perturb_func is fed our draws in its call order
    (groups in ascending order of |a|, then draws, the whole batch per call)."""
    from xaibench_metrics.monotonicity import replacement_values

    model, x, y, a, _ = _data()
    steps, draws = 8, 3
    values = replacement_values(tuple(range(N)), steps, draws, 0.0, 1.0).numpy()
    calls = iter(range(steps * draws))

    def perturb(arr: np.ndarray, indices: np.ndarray, **_: object) -> np.ndarray:
        k = next(calls)
        out = arr.copy()
        out[np.arange(len(arr))[:, None], indices] = values[:, k // draws, k % draws][:, None]
        return out

    ours = _registered("monotonicity-correlation", model, x, y, a, steps=steps, draws=draws)
    theirs = _quantus(quantus.MonotonicityCorrelation(nr_samples=draws, features_in_step=P // steps,
                                                      perturb_func=perturb, normalise=False, abs=True,
                                                      disable_warnings=True), model, x, y, a)
    np.testing.assert_allclose(ours, theirs, atol=1e-6)


@pytest.mark.parametrize("order", ["morf", "lerf"])
def test_region_perturbation(order: str) -> None:
    """Quantus returns the curve f(x) - f(x^(k)), k = 1..L; the AOPC is its sum over L + 1 (the k = 0 term is 0)."""
    model, x, y, a, _ = _data()
    ours = _registered(f"region-perturbation-{order}", model, x, y, a, patch=2)
    curve = _quantus(quantus.RegionPerturbation(patch_size=2, order=order, regions_evaluation=16,
                                                perturb_baseline=0.0, normalise=False, abs=False,
                                                disable_warnings=True), model, x, y, a)
    np.testing.assert_allclose(ours, curve.sum(1) / (curve.shape[1] + 1), atol=1e-6)
    assert curve.shape == (N, 16)


def test_selectivity() -> None:
    """Quantus returns p_c after each removal; ours prepends p_c(x) and integrates on [0, 1]."""
    model, x, y, a, _ = _data()
    ours = _registered("selectivity", model, x, y, a, patch=4)
    curve = _quantus(quantus.Selectivity(patch_size=4, perturb_baseline=0.0, normalise=False, abs=False,
                                         disable_warnings=True), model, x, y, a)
    p_x = torch.softmax(model(torch.from_numpy(x)), 1)[np.arange(N), y].detach().numpy()
    full = np.concatenate([p_x[:, None], curve], 1)
    np.testing.assert_allclose(ours, np.trapezoid(full, dx=1 / curve.shape[1], axis=1), atol=1e-6)


def test_sufficiency() -> None:
    model, x, y, a, _ = _data(n=12)
    a[6:] = a[:6] + 0.01  # near-duplicates: every sample has a close neighbour
    ours = _registered("sufficiency", model, x, y, a)
    theirs = _quantus(quantus.Sufficiency(threshold=0.6, disable_warnings=True), model, x, y, a)
    defined = np.isfinite(ours)
    np.testing.assert_allclose(ours[defined], theirs[defined], atol=1e-12)
    np.testing.assert_array_equal(theirs[~defined], 0.0)  # Quantus: 0 where no neighbour; ours: NaN


def test_effective_complexity() -> None:
    _, x, y, a, _ = _data()
    a[0, 0, :4] = 0.0  # 32 exact zeros
    ours = _registered("effective-complexity", None, x, y, a)  # type: ignore[arg-type]
    theirs = _quantus(quantus.EffectiveComplexity(eps=1e-5, disable_warnings=True), None, x, y, a)
    np.testing.assert_allclose(ours * P, theirs)
    assert ours[0] == 0.5
    zero = np.zeros_like(a[:1])
    assert np.isnan(_registered("effective-complexity", None, x[:1], y[:1], zero))  # type: ignore[arg-type]
    with pytest.raises(AssertionError, match="all equal to zero"):  # Quantus refuses it before scoring
        _quantus(quantus.EffectiveComplexity(disable_warnings=True), None, x[:1], y[:1], zero)


def _classes_from_the_first_pixel(x: np.ndarray) -> nn.Module:
    """A linear model on ``(N, 1, H, W)`` whose class is 1 where the first pixel is positive, else 0."""
    model = nn.Sequential(nn.Flatten(), nn.Linear(x[0].size, 2, bias=False)).eval()
    with torch.no_grad():
        model[1].weight.zero_()
        model[1].weight[:, 0] = torch.tensor([-1.0, 1.0])
    return model


def test_sufficiency_scales_per_map_or_per_batch() -> None:
    """Issue 42's minimal case, 4x4 maps ``[b, 5b, 5b + e, o, o + e]`` with predictions (0, 1, 1, 0, 0): ``b`` the
    left half 1 and the right 0.1, ``o`` five times the mirror image, ``e`` a ramp of 0.01 * k / 16. By hand, each
    map scaled by its own largest: ``b`` and ``5b`` are the same map, so sample 0's neighbours are 1 and 2 (other
    predictions: 0), 1's are 0 and 2 (one of two agrees: 0.5), 3 and 4 agree (1). Scaled by the batch's largest,
    ``b`` is five times smaller than ``5b`` and has no neighbour (Quantus: 0), 1-2 and 3-4 are pairs (1)."""
    pred = np.array([0, 1, 1, 0, 0])
    x = np.zeros((5, 1, 4, 4), np.float32)
    x[:, 0, 0, 0] = np.where(pred == 1, 1.0, -1.0)
    model = _classes_from_the_first_pixel(x)
    left = np.zeros((4, 4))
    left[:, :2] = 1.0
    b, o, e = left + 0.1 * (1 - left), 5 * ((1 - left) + 0.1 * left), 0.01 * np.arange(1, 17).reshape(4, 4) / 16
    a = np.stack([b, 5 * b, 5 * b + e, o, o + e])[:, None].astype(np.float32)
    assert model(torch.from_numpy(x)).argmax(1).tolist() == pred.tolist()
    np.testing.assert_array_equal(_registered("sufficiency", model, x, pred, a), [0, 0.5, 0.5, 1, 1])
    theirs = _quantus(quantus.Sufficiency(threshold=0.6, disable_warnings=True), model, x, pred, a)
    np.testing.assert_array_equal(theirs, [0, 1, 1, 1, 1])
    # Quantus's scaling, exactly; sample 0 has no neighbour: NaN here, 0 in Quantus (test_sufficiency)
    np.testing.assert_array_equal(_registered("sufficiency", model, x, pred, a, normalise="batch"),
                                  [np.nan, 1, 1, 1, 1])
    with pytest.raises(ValueError, match="^normalise must be one of sample, batch, got 'map'$"):
        _registered("sufficiency", model, x, pred, a, normalise="map")
    # a sixth sample, predicted 1, whose map is all zero: it stays zero (no division by its largest, 0). Per map it is
    # far from every scaled map (NaN: no neighbour) and the others keep their scores; per batch it is the neighbour of
    # the small ``b`` (two disagreeing pairs: 0 and 0), as in Quantus
    pred6 = np.append(pred, 1)
    x6 = np.concatenate([x, x[1:2]])
    a6 = np.concatenate([a, np.zeros_like(a[:1])])
    np.testing.assert_array_equal(_registered("sufficiency", model, x6, pred6, a6), [0, 0.5, 0.5, 1, 1, np.nan])
    theirs = _quantus(quantus.Sufficiency(threshold=0.6, disable_warnings=True), model, x6, pred6, a6)
    np.testing.assert_array_equal(theirs, [0, 1, 1, 1, 1, 0])
    np.testing.assert_array_equal(_registered("sufficiency", model, x6, pred6, a6, normalise="batch"), theirs)


def test_effective_complexity_scales_per_map_or_per_batch() -> None:
    """Issue 42's minimal case: 4x4 maps U(0.5, 1.5) and 1e-6 U(0.5, 1.5). By hand, each map scaled by its own
    largest: every pixel is above 1e-5 of it (16 and 16 of 16). Scaled by the batch's largest (about 1.5), the small
    map's pixels are about 1e-6, below eps (Quantus: 16 and 0)."""
    rng = np.random.default_rng(0)
    big = rng.uniform(0.5, 1.5, (4, 4))
    a = np.stack([big, 1e-6 * rng.uniform(0.5, 1.5, (4, 4))])[:, None].astype(np.float32)
    x, y = np.zeros((2, 1, 4, 4), np.float32), np.zeros(2, dtype=int)
    ours = _registered("effective-complexity", None, x, y, a)  # type: ignore[arg-type]
    np.testing.assert_array_equal(ours * 16, [16, 16])
    theirs = _quantus(quantus.EffectiveComplexity(eps=1e-5, disable_warnings=True), None, x, y, a)
    np.testing.assert_array_equal(theirs, [16, 0])
    batch = _registered("effective-complexity", None, x, y, a, normalise="batch")  # type: ignore[arg-type]
    np.testing.assert_array_equal(batch * 16, theirs)
    # per map, a sample's count does not depend on its batch-mates; per batch it does
    alone = _registered("effective-complexity", None, x[1:], y[1:], a[1:], normalise="batch")  # type: ignore[arg-type]
    np.testing.assert_array_equal(alone * 16, [16])


def test_non_sensitivity_scales_per_map_or_per_batch() -> None:
    """The linear model that reads the left half (test_non_sensitivity), its weights as the map of sample 0 and
    1e-6 times them as sample 1's: each map scaled by its own largest, both find the zero-weight right half
    insensitive and irrelevant (0 disagreements); scaled by the batch's largest, every pixel of the small map is
    under eps, so its 32 sensitive left pixels disagree (32 / 64), as Quantus counts."""
    model = nn.Sequential(nn.Flatten(), nn.Linear(P, 3)).eval()
    with torch.no_grad():
        model[1].weight.mul_(torch.tensor([1.0] * (W // 2) + [0.0] * (W // 2)).repeat(H))
    _, x, y, _, _ = _data(n=2)
    x += 0.5
    weights = np.abs(model[1].weight[0].detach().numpy()).reshape(1, H, W) + 0.1 * (np.arange(W) < W // 2)
    a = np.stack([weights, 1e-6 * weights]).astype(np.float32)
    ours = _registered("non-sensitivity", model, x, y, a, patch=1)
    np.testing.assert_array_equal(ours, [0, 0])
    theirs = _quantus(quantus.NonSensitivity(features_in_step=1, perturb_baseline=0.0, eps=1e-5,
                                             disable_warnings=True), model, x, y, a)
    np.testing.assert_array_equal(theirs, [0, 32])
    np.testing.assert_array_equal(_registered("non-sensitivity", model, x, y, a, patch=1, normalise="batch") * P,
                                  theirs)


def test_top_k_intersection() -> None:
    model, x, y, a, s = _data()
    a = np.abs(a)
    ours = _registered("top-k-intersection", model, x, y, a, s)
    k = round(0.1 * P)
    theirs = _quantus(quantus.TopKIntersection(k=k, disable_warnings=True), model, x, y, a, s)
    np.testing.assert_allclose(ours, theirs, atol=1e-12)
    assert 0 < ours.sum()


def test_auc() -> None:
    model, x, y, a, s = _data()
    ours = _registered("auc", model, x, y, a, s)
    theirs = _quantus(quantus.AUC(disable_warnings=True), model, x, y, a, s)
    np.testing.assert_allclose(ours, theirs, atol=1e-12)
    # by hand: a map equal to the mask ranks every mask pixel first (1); its negation last (0); a constant 0.5
    oracle = s.astype(np.float32)
    np.testing.assert_array_equal(_registered("auc", model, x, y, oracle, s), 1.0)
    np.testing.assert_array_equal(_registered("auc", model, x, y, -oracle, s), 0.0)
    np.testing.assert_array_equal(_registered("auc", model, x, y, np.ones_like(oracle), s), 0.5)
    full = np.ones_like(s)
    assert np.isnan(_registered("auc", model, x, y, a, full)).all()


def test_mst_c_by_hand() -> None:
    """A 10x10 map with a 5x5 block of ones (25% of the pixels, so the 80th percentile is 1): 25 salient points on a
    unit grid, hull area 4 x 4 = 16, MST 24 unit edges: (1/4) (25/24) 100 sqrt(200)."""
    a = np.zeros((1, 1, 10, 10), np.float32)
    a[0, 0, 2:7, 3:8] = 1.0
    x = np.zeros_like(a)
    ours = _registered("mst-c", None, x, np.zeros(1, np.int64), a)  # type: ignore[arg-type]
    np.testing.assert_allclose(ours, [0.25 * 25 / 24 * 100 * np.sqrt(200)], rtol=1e-12)


def test_mst_c_matches_the_reference_construction() -> None:
    """Quantus 0.6 has no MST-C: PR #377's MSTC re-derived in the test with its own calls (a sklearn k-NN graph
    made symmetric with max, scipy's MST and ConvexHull), on random maps."""
    from scipy.sparse.csgraph import minimum_spanning_tree
    from scipy.spatial import ConvexHull
    from sklearn.neighbors import kneighbors_graph

    _, x, y, a, _ = _data()
    ours = _registered("mst-c", None, x, y, a, threshold=70.0, k=5)  # type: ignore[arg-type]
    for i in range(N):
        m = np.abs(a[i, 0].astype(np.float64))
        pts = np.argwhere(m >= np.percentile(m, 70.0)).astype(np.float64)
        g = kneighbors_graph(pts, n_neighbors=5, mode="distance")
        mst = minimum_spanning_tree(g.maximum(g.T)).sum()
        want = (1 / np.sqrt(ConvexHull(pts).volume)) * (len(pts) / mst) * np.hypot(H, W) * 100
        np.testing.assert_allclose(ours[i], want, rtol=1e-12)
    assert np.isnan(_registered("mst-c", None, x[:1], y[:1], np.zeros_like(a[:1])))  # type: ignore[arg-type]


def test_parameters_outside_the_definition_stop() -> None:
    model, x, y, a, _ = _data()
    with pytest.raises(ValueError, match="^steps must be between 1 and the 64 pixels of the input, got 65$"):
        _registered("faithfulness-estimate", model, x, y, a, steps=65)
    with pytest.raises(ValueError, match="^steps must be between 1 and the 64 pixels of the input, got 0$"):
        _registered("monotonicity-arya", model, x, y, a, steps=0)
    with pytest.raises(ValueError, match="^steps must be between 1 and the 16 patches of 2 px, got 17$"):
        _registered("region-perturbation-morf", model, x, y, a, patch=2, steps=17)
    from xaibench_metrics.monotonicity import replacement_values

    message = "^monotonicity-correlation needs draws >= 1 and low < high, got {}, \\[{}, {}\\]$"
    for draws, low, high in ((0, 0.0, 1.0), (2, 1.0, 1.0)):
        with pytest.raises(ValueError, match=message.format(draws, low, high)):
            replacement_values((0,), 4, draws, low, high)
    one = replacement_values((0, 1), 4, 1, 2.0, 2.5)  # one draw, a narrow range: allowed, values inside it
    assert one.shape == (2, 4, 1) and ((one >= 2.0) & (one <= 2.5)).all()
    with pytest.raises(ValueError, match="order must be one of"):
        _registered("region-perturbation-morf", model, x, y, a, order="random")




def _gradient(model: nn.Module, inputs: np.ndarray, targets: np.ndarray, times_input: bool = False,
              **_: object) -> np.ndarray:
    """A deterministic explain_func for both sides: the target logit's gradient (times the input), (N, 1, H, W)."""
    x = torch.as_tensor(np.asarray(inputs, dtype=np.float32)).requires_grad_(True)
    with torch.enable_grad():
        model(x).gather(1, torch.as_tensor(np.asarray(targets)).long()[:, None]).sum().backward()
    g = x.grad * x if times_input else x.grad  # type: ignore[operator]
    return g.sum(1, keepdim=True).detach().numpy()


def _with_explain(name: str, model: nn.Module, x: np.ndarray, y: np.ndarray, times_input: bool = False,
                  **params: object) -> np.ndarray:
    """The registered metric with the cell's method re-run as the runner offers it (``ctx.explain``)."""
    def explain(model: nn.Module | None = None, inputs: torch.Tensor | None = None,
                targets: torch.Tensor | None = None) -> torch.Tensor:
        chosen = base if model is None else model
        xs = xt if inputs is None else inputs
        ts = yt if targets is None else targets
        ts = ts.repeat(len(xs) // len(ts))  # k stacked copies of the samples: their classes, copy after copy
        return torch.from_numpy(_gradient(chosen, xs.numpy(), ts.numpy(), times_input))[:, 0]

    base, xt, yt = model, torch.from_numpy(x), torch.from_numpy(y)
    spec = HARNESS.metrics.get(name)
    engine = Engine(model, "cpu", batch_size=16)
    ctx = MetricContext(engine=engine, base_logits=engine.logits(xt), sample_seeds=tuple(range(len(x))),
                        model=lambda: copy.deepcopy(model), explain=explain)
    return np.asarray(score_metric(spec, ctx, xt, yt, explain(), **{**spec.defaults, **params}), dtype=np.float64)


def test_non_sensitivity() -> None:
    """A linear model that reads only the left half: the right half's pixels are insensitive. The map is the
    model's weights with two left pixels zeroed and two right pixels set: 4 disagreements of 64 on every sample."""
    model = nn.Sequential(nn.Flatten(), nn.Linear(P, 3)).eval()
    with torch.no_grad():
        model[1].weight.mul_(torch.tensor([1.0] * (W // 2) + [0.0] * (W // 2)).repeat(H))
    _, x, y, _, _ = _data()
    x += 0.5  # every pixel moves p_c when zeroed
    a = np.broadcast_to(np.abs(model[1].weight[0].detach().numpy()).reshape(1, 1, H, W), (N, 1, H, W)).copy()
    a[:, 0, 0, 0] = a[:, 0, 1, 0] = 0.0
    a[:, 0, 0, W - 1] = a[:, 0, 1, W - 1] = 0.5
    ours = _registered("non-sensitivity", model, x, y, a, patch=1)
    theirs = _quantus(quantus.NonSensitivity(features_in_step=1, perturb_baseline=0.0, eps=1e-5,
                                             disable_warnings=True), model, x, y, a)
    np.testing.assert_allclose(ours * P, theirs)
    np.testing.assert_allclose(ours, 4 / P)
    with pytest.raises(ValueError):  # Quantus 0.6 with groups of features: per-step vs per-pixel arrays
        _quantus(quantus.NonSensitivity(features_in_step=2, perturb_baseline=0.0, disable_warnings=True),
                 model, x, y, a)
    # 2x2 patches: the zeroed left pixels share a patch with relevant ones (no disagreement left there); the two
    # right pixels set to 0.5 make their insensitive patch relevant: 1 disagreement of 16 patches
    np.testing.assert_allclose(_registered("non-sensitivity", model, x, y, a, patch=2), 1 / 16)


@pytest.mark.parametrize("padding", [0, 1])
def test_input_invariance(padding: int) -> None:
    """Kindermans et al. 2019, Sec. 2: the shifted network computes f'(x + c) = f(x) exactly (checked on the logits),
    so the gradient is invariant (1) and gradient x input is not (0), with or without zero padding (with it a bias
    cannot absorb the shift at the borders; the offset does)."""
    from xaibench_metrics.axiomatic import absorb_shift

    torch.manual_seed(0)
    side = H + 2 * padding - 2
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=padding), nn.ReLU(), nn.Flatten(),
                          nn.Linear(4 * side * side, 3)).eval()
    _, x, y, _, _ = _data()
    xt = torch.from_numpy(x)
    shifted = copy.deepcopy(model)
    remove = absorb_shift(shifted, xt[:1], -1.0)
    torch.testing.assert_close(shifted(xt - 1.0), model(xt), atol=1e-5, rtol=0)
    remove()
    torch.testing.assert_close(shifted(xt), model(xt))  # the hook is gone
    np.testing.assert_array_equal(_with_explain("input-invariance", model, x, y), 1.0)
    np.testing.assert_array_equal(_with_explain("input-invariance", model, x, y, times_input=True), 0.0)


def test_quantus_input_invariance_leaves_the_first_input_value_unshifted() -> None:
    """Quantus 0.6's InputInvariance shifts every input value but the first of each sample (its indices skip index 0),
    so its shifted model does not compute f(x) on what it is given, and the gradient, invariant by Kindermans et al.'s
    argument (ours: 1 on every sample), fails on some samples."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * (H - 2) * (W - 2), 3)).eval()
    _, x, y, _, _ = _data()
    seen: list[np.ndarray] = []

    def spy(model: nn.Module, inputs: np.ndarray, targets: np.ndarray, **kw: object) -> np.ndarray:
        seen.append(np.asarray(inputs))
        return _gradient(model, inputs, targets)

    a = _gradient(model, x, y)
    theirs = _quantus(quantus.InputInvariance(input_shift=-1, disable_warnings=True), model, x, y, a,
                      explain_func=spy)
    given = seen[-1].reshape(N, -1)
    np.testing.assert_allclose(given[:, 1:], x.reshape(N, -1)[:, 1:] - 1, atol=1e-6)
    np.testing.assert_allclose(given[:, 0], x.reshape(N, -1)[:, 0])  # not shifted
    assert (theirs == 0).any()
    np.testing.assert_array_equal(_with_explain("input-invariance", model, x, y), 1.0)


def test_input_invariance_needs_a_linear_first_layer() -> None:
    model = nn.Sequential(nn.ReLU(), nn.Flatten(), nn.Linear(P, 3)).eval()
    _, x, y, _, _ = _data()
    with pytest.raises(ValueError, match="input is read by ReLU"):
        _with_explain("input-invariance", model, x, y)


def test_continuity() -> None:
    """Quantus translates by -W + k dx (dx = (2W + 1) // nr_steps): with nr_steps 4 on W = 8, shifts -4, 0, 4, 8; the
    zero shift adds a ratio 0, so the maximum over the nonzero shifts is Quantus's. Quantus fills with ``black`` (the
    sample's minimum) whatever its perturb_baseline: inputs with minimum 0 make that our zero fill."""
    model, x, y, _, _ = _data()
    x[:, 0, 0, 0] = 0.0
    ours = _with_explain("continuity", model, x, y, shifts=(-4, 4, 8), normalise="none")
    theirs = _quantus(quantus.Continuity(nr_steps=4, normalise=False, disable_warnings=True), model, x, y,
                      _gradient(model, x, y), explain_func=_gradient)
    np.testing.assert_allclose(ours, theirs, rtol=1e-5)
    # Quantus scales by the batch's largest value: a sample's score moves when the others change; ours does not
    alone = _quantus(quantus.Continuity(nr_steps=4, disable_warnings=True), model, x[:2], y[:2],
                     _gradient(model, x[:2], y[:2]), explain_func=_gradient)
    batch = _quantus(quantus.Continuity(nr_steps=4, disable_warnings=True), model, x, y, _gradient(model, x, y),
                     explain_func=_gradient)
    assert not np.allclose(alone, batch[:2])
    scaled = _with_explain("continuity", model, x, y, shifts=(-4, 4, 8))
    np.testing.assert_allclose(_with_explain("continuity", model, x[:2], y[:2], shifts=(-4, 4, 8)), scaled[:2])
    # Quantus's convention as a parameter: equal to it, in the batch and alone
    np.testing.assert_allclose(_with_explain("continuity", model, x, y, shifts=(-4, 4, 8), normalise="batch"), batch,
                               rtol=1e-5)
    np.testing.assert_allclose(_with_explain("continuity", model, x[:2], y[:2], shifts=(-4, 4, 8), normalise="batch"),
                               alone, rtol=1e-5)
    with pytest.raises(ValueError, match="^normalise must be one of sample, batch, none, got True$"):
        _with_explain("continuity", model, x, y, normalise=True)
    with pytest.raises(ValueError, match="non-zero translations"):
        _with_explain("continuity", model, x, y, shifts=(0, 1))


def test_continuity_by_hand() -> None:
    """The identity map R(x) = x (unscaled) translated by 1 px: ||R(x) - R(x')||_1 / ||x - x'||_2 = ||d||_1 / ||d||_2."""
    from xaibench_metrics.continuity import continuity, translate

    x = torch.rand(2, 1, 4, 5)
    moved = translate(x, 1, torch.zeros_like(x))
    assert torch.equal(moved[..., 1:], x[..., :-1]) and (moved[..., 0] == 0).all()
    d = (x - moved).flatten(1).double()
    ours = continuity(x, x[:, 0], lambda inputs: inputs[:, 0], shifts=(1,), normalise="none", abs=False)
    np.testing.assert_allclose(ours, (d.abs().sum(1) / d.norm(dim=1)).numpy(), rtol=1e-12)


def test_focus() -> None:
    """Our mosaics and their maps given to Quantus's Focus with the tiles' classes: the same shares."""
    from xaibench_metrics.focus import mosaics

    model, x, y, _, _ = _data(n=12)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    ours = _with_explain("focus", model, x, y)
    mosaic, own = mosaics(xt, yt, tuple(range(12)))
    maps = _gradient(model, mosaic.numpy(), y)
    theirs = _quantus(quantus.Focus(disable_warnings=True, normalise=False, abs=False), model, mosaic.numpy(), y,
                      maps, custom_batch=[tuple(int(v) for v in row) for row in own])
    np.testing.assert_allclose(ours, theirs, atol=1e-6)
    assert (own.sum(1) == 2).all() and np.isfinite(ours).all()


def test_focus_by_hand() -> None:
    """A map equal to the mosaic's own-class indicator scores 1, its complement 0; a constant map 1/2; a sample
    whose class no other sample has: NaN."""
    from xaibench_metrics.focus import focus, mosaics, tile_masks

    x = torch.rand(5, 1, 6, 6)
    y = torch.tensor([0, 0, 1, 2, 3])
    _, own = mosaics(x, y, (0, 1, 2, 3, 4))
    inside = tile_masks(own, 6, 6).float()
    seeds = (0, 1, 2, 3, 4)
    got = focus(x, y, lambda inputs, targets: inside, seeds)
    np.testing.assert_array_equal(got[:2], 1.0)
    assert np.isnan(got[2:]).all()
    np.testing.assert_array_equal(focus(x, y, lambda inputs, targets: 1 - inside, seeds)[:2], 0.0)
    np.testing.assert_array_equal(focus(x, y, lambda inputs, targets: torch.ones(5, 6, 6), seeds)[:2], 0.5)


def test_arcc(monkeypatch: pytest.MonkeyPatch) -> None:
    """pytorch-grad-cam's ARCC (PR #595) on GradCAM maps of a small CNN, softmax targets (its ROAD range assumes
    probabilities), imputation noise 0 on both sides (its imputer draws from torch's global generator).

    Equal where the map has fewer exact zeros than the smallest removal (13 of 64 pixels): pytorch-grad-cam removes
    every pixel at or above a percentile, so a tie across the cut removes more than the fraction; ROAD (and ours)
    removes exactly round(f P) pixels, ties in index order. The ROAD paper removes a fraction of the pixels: we follow it."""
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.metrics import road as gradcam_road
    from pytorch_grad_cam.metrics.arcc import ARCC
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget

    defaults = gradcam_road.NoisyLinearImputer.__init__.__defaults__
    monkeypatch.setattr(gradcam_road.NoisyLinearImputer.__init__, "__defaults__", (0.0, *defaults[1:]))
    model, x, y, _, _ = _data(n=12)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    targets = [ClassifierOutputSoftmaxTarget(int(c)) for c in y]
    with GradCAM(model=model, target_layers=[model[0]]) as cam:
        def explain(model: nn.Module | None = None, inputs: torch.Tensor | None = None,
                    targets: torch.Tensor | None = None) -> torch.Tensor:
            return torch.from_numpy(cam(input_tensor=xt if inputs is None else inputs, targets=softmax_targets))

        softmax_targets = targets
        cams = cam(input_tensor=xt, targets=targets)
        theirs = ARCC(base_method=cam, road_percentiles=[20, 40, 60, 80])(xt, cams, targets, model)
        spec = HARNESS.metrics.get("arcc")
        engine = Engine(model, "cpu", batch_size=16)
        ctx = MetricContext(engine=engine, base_logits=engine.logits(xt), sample_seeds=tuple(range(len(xt))),
                            explain=explain)
        ours = np.asarray(score_metric(spec, ctx, xt, yt, torch.from_numpy(cams), **{**spec.defaults, "noise": 0.0}))
    untied = (cams == 0).reshape(len(cams), -1).sum(1) < 13
    np.testing.assert_allclose(ours[untied], theirs[untied], atol=1e-6)
    assert untied.sum() >= 3 and (ours[untied] > 0).any()


def test_arcc_components_by_hand() -> None:
    """A map that the method reproduces on the masked input (coherency 1), lighting a quarter of the image
    (complexity 1/4) and a model whose p_c ROAD cannot move (R = 0): the harmonic mean is 0; a constant map: NaN."""
    from xaibench_metrics.arcc import arcc

    x = torch.rand(2, 1, 8, 8)
    maps = torch.zeros(2, 8, 8)
    maps[:, :4, :4] = 1.0
    constant_model = nn.Sequential(nn.Flatten(), nn.Linear(64, 2))
    with torch.no_grad():
        constant_model[1].weight.zero_()
    engine = Engine(constant_model.eval(), "cpu")
    got = arcc(x, torch.zeros(2, dtype=torch.long), maps, engine, (0, 1), lambda inputs: maps)
    np.testing.assert_array_equal(got, 0.0)
    assert np.isnan(arcc(x, torch.zeros(2, dtype=torch.long), torch.ones(2, 8, 8), engine, (0, 1),
                         lambda inputs: maps)).all()
