"""Model-parameter randomization (Adebayo et al. 2018): maps that ignore the weights fail, gradients pass."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn
from xaibench_metrics.randomization import cascade_stages, randomizable_layers, similarity

from xaibench.scoring.engine import Engine
from xaibench.contract.metric_inputs import MetricContext
from xaibench.contract.plugins import load_harness
from xaibench.authoring.testing import score_metric


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1), nn.ReLU(),
                         nn.Flatten(), nn.Linear(4 * 12 * 12, 2)).eval()


def _gradient(model: nn.Module, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    x = x.clone().requires_grad_(True)
    model(x).gather(1, target[:, None]).sum().backward()
    return x.grad[:, 0].detach()


def _ctx(model: nn.Module, x: torch.Tensor, target: torch.Tensor, method, seen: list) -> MetricContext:  # type: ignore[no-untyped-def]
    def explain(m: nn.Module) -> torch.Tensor:
        seen.append(m)
        return method(m, x, target)

    engine = Engine(model, "cpu", batch_size=8)
    return MetricContext(engine=engine, base_logits=engine.logits(x),
                         model=lambda: copy.deepcopy(model), explain=explain)


@pytest.mark.parametrize("name", ["mprt-spearman", "mprt-ssim"])
def test_a_map_that_ignores_the_model_fails_and_the_gradient_passes(name: str) -> None:
    model = _model()
    x = torch.rand(4, 1, 12, 12, generator=torch.Generator().manual_seed(1))
    target = torch.tensor([0, 1, 0, 1])
    spec = load_harness().metrics.get(name)
    assert spec.category == "randomization" and not spec.higher_is_better

    def input_only(m: nn.Module, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:  # an "edge detector"
        return x[:, 0] * 2.0

    before = {k: v.clone() for k, v in model.state_dict().items()}
    seen: list = []
    frozen = input_only(model, x, target)
    ignoring = score_metric(spec, _ctx(model, x, target, input_only, seen), x, target, frozen, **spec.defaults)
    np.testing.assert_allclose(ignoring, 1.0, atol=1e-9)
    assert len(seen) == spec.defaults["steps"]

    grads = score_metric(spec, _ctx(model, x, target, _gradient, []), x, target, _gradient(model, x, target),
                       **spec.defaults)
    assert (grads < 0.9).all()
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # only the copy is randomized


def test_cascade_runs_top_down_and_ends_fully_randomized() -> None:
    model = _model()
    assert randomizable_layers(model) == ["5", "2", "0"]
    assert cascade_stages(3, 3) == [1, 2, 3]
    assert cascade_stages(10, 3) == [4, 7, 10]
    assert cascade_stages(2, 5) == [1, 2]


def test_similarity_rules_for_constant_maps() -> None:
    """A randomized CAM that ReLU zeroed has no ranking: undefined (NaN), never the best score 0."""
    a = np.random.default_rng(0).random((2, 8, 8))
    b = a.copy()
    b[1] = 0.0  # a randomized CAM that ReLU zeroed
    s = similarity(a, b, "spearman")
    assert s[0] == pytest.approx(1.0) and np.isnan(s[1])
    assert np.isnan(similarity(np.zeros((1, 8, 8)), a[:1], "ssim")[0])
    assert np.isfinite(similarity(a[:1], b[1:], "ssim")[0])  # SSIM is defined against a constant map


def test_an_inverted_map_is_as_similar_as_the_map_itself() -> None:
    """|rho|: an anti-correlated map (the same structure, inverted) must not score better than an independent one."""
    a = np.random.default_rng(1).random((1, 8, 8))
    assert similarity(a, 1.0 - a, "spearman")[0] == pytest.approx(1.0)
    assert similarity(a, 1.0 - a, "ssim")[0] == pytest.approx(abs(
        __import__("skimage.metrics", fromlist=["x"]).structural_similarity(a[0], 1.0 - a[0], data_range=1.0)))


def test_mprt_averages_the_absolute_similarity_over_every_stage_of_the_cascade() -> None:
    """Stage maps with hand-known Spearman: the score is their mean of |rho|, not the last stage's, not signed."""
    from scipy.stats import spearmanr

    model = _model()  # 3 randomizable layers: steps=3 gives three stages
    x = torch.rand(1, 1, 12, 12, generator=torch.Generator().manual_seed(2))
    reference = torch.rand(1, 12, 12, generator=torch.Generator().manual_seed(3))
    other = torch.rand(1, 12, 12, generator=torch.Generator().manual_seed(4))
    stage_maps = [reference.clone(), 1.0 - reference, other]  # rho = 1, -1, r
    r = spearmanr(reference.ravel(), other.ravel()).statistic
    assert 0.02 < abs(r) < 0.5
    seen: list = []
    ctx = _ctx(model, x, torch.tensor([0]), lambda m, x, t: stage_maps[len(seen) - 1], seen)
    spec = load_harness().metrics.get("mprt-spearman")
    got = score_metric(spec, ctx, x, torch.tensor([0]), reference, **{**spec.defaults, "steps": 3})
    assert len(seen) == 3
    assert got[0] == pytest.approx((1.0 + 1.0 + abs(r)) / 3, abs=1e-12)


def test_data_randomization_separates_model_dependent_maps_from_input_maps(tmp_path, tiny_plugin) -> None:  # type: ignore[no-untyped-def]
    """A map that is the input itself survives label permutation (similarity 1); gradients do not."""
    from xaibench import leaderboard
    from xaibench.contract.plugins import load_harness
    from xaibench.running.runner import Runner, RunOptions
    from xaibench.storage.store import Store
    from xaibench.suites.suite import load_suite

    suite = tmp_path / "s.yaml"
    suite.write_text("name: drt\nseed: 0\nsamples: 8\ndatasets: [tiny]\nmodels: [tiny-cnn]\n"
                     "methods: [input-times-one, saliency]\nmetrics: [data-randomization]\n")
    with Store(tmp_path / "r.sqlite") as store:
        summary = Runner(load_harness([("tiny", tiny_plugin)]), load_suite(suite), store,
                         RunOptions(progress=False, home=tmp_path / "home")).run()
        assert not summary.failed, summary.failed
        scores = {r.method: r.mean for r in leaderboard.records(store, "drt")}
    assert scores["input-times-one"] == pytest.approx(1.0)
    assert scores["saliency"] < 0.9
    assert len(list((tmp_path / "home" / "models").glob("*.pt"))) == 2  # the model and its label-randomized twin


# -- definitions pinned one line at a time (mutation testing, docs/mutation.md) --------------------------------

class _Scale(nn.Module):
    """Own parameters but no ``reset_parameters``: nothing to re-initialise it with, so never randomized."""

    def __init__(self) -> None:
        super().__init__()
        self.gain = nn.Parameter(torch.ones(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gain


class _Block(nn.Module):
    """A ``reset_parameters`` but no parameters of its own (its child has them): only the child is a layer."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(4, 4)

    def reset_parameters(self) -> None:
        self.lin.reset_parameters()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin(x)


def test_randomizable_layers_have_their_own_parameters_and_a_reset_parameters() -> None:
    model = nn.Sequential(nn.Linear(4, 4), _Scale(), _Block(), nn.ReLU(), nn.Linear(4, 2))
    assert randomizable_layers(model) == ["4", "2.lin", "0"]


def test_one_step_is_the_fully_randomized_model_and_fewer_than_one_is_refused() -> None:
    assert cascade_stages(3, 1) == [3]
    assert cascade_stages(5, 2) == [3, 5]  # ceil(5 * 1 / 2), ceil(5 * 2 / 2)
    with pytest.raises(ValueError, match=r"^steps must be at least 1$"):
        cascade_stages(3, 0)


def test_each_stage_randomizes_the_next_top_layers_cumulatively_and_keeps_the_earlier_draws() -> None:
    """Stage k has exactly the top ``cascade_stages[k]`` layers re-initialised (5; 5, 2; 5, 2, 0), and a layer
    randomized at one stage keeps its weights at the later ones (a cascade, not fresh draws)."""
    model = _model()
    trained = {k: v.clone() for k, v in model.state_dict().items()}
    snapshots: list[dict[str, torch.Tensor]] = []

    def record(m: nn.Module, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        snapshots.append({k: v.clone() for k, v in m.state_dict().items()})
        return x[:, 0]

    x = torch.rand(2, 1, 12, 12, generator=torch.Generator().manual_seed(5))
    spec = load_harness().metrics.get("mprt-spearman")
    score_metric(spec, _ctx(model, x, torch.tensor([0, 1]), record, []), x, torch.tensor([0, 1]), x[:, 0] + 0.0,
                 **{**spec.defaults, "steps": 3})
    changed = [{k.split(".")[0] for k, v in snap.items() if not torch.equal(v, trained[k])} for snap in snapshots]
    assert changed == [{"5"}, {"5", "2"}, {"5", "2", "0"}]
    for later in snapshots[1:]:
        assert torch.equal(later["5.weight"], snapshots[0]["5.weight"])
    assert torch.equal(snapshots[2]["2.weight"], snapshots[1]["2.weight"])


def test_similarity_skips_only_the_samples_whose_reference_map_is_constant() -> None:
    """A constant reference map is NaN for that sample alone: the samples after it are still scored."""
    rng = np.random.default_rng(2)
    a = rng.random((3, 8, 8))
    a[0] = 0.5
    for how in ("spearman", "ssim"):
        s = similarity(a, a.copy(), how)
        assert np.isnan(s[0]) and s[1:] == pytest.approx([1.0, 1.0])


def test_a_constant_randomized_map_is_nan_by_the_rule_without_a_scipy_warning() -> None:
    import warnings

    a = np.random.default_rng(3).random((1, 8, 8))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # scipy's ConstantInputWarning would reach every user's console
        assert np.isnan(similarity(a, np.zeros_like(a), "spearman")[0])


def test_an_unknown_similarity_is_one_line_naming_the_choices() -> None:
    harness = load_harness()
    x = torch.rand(1, 1, 12, 12)
    message = r"^similarity_measure must be one of \('spearman', 'ssim'\), got 'pearson'$"
    for name in ("mprt-spearman", "data-randomization"):
        spec = harness.metrics.get(name)
        with pytest.raises(ValueError, match=message):
            score_metric(spec, _ctx(_model(), x, torch.tensor([0]), _gradient, []), x, torch.tensor([0]), x[:, 0],
                         **{**spec.defaults, "similarity_measure": "pearson"})
    with pytest.raises(ValueError, match=r"^similarity must be one of \('spearman', 'ssim'\), got 'pearson'$"):
        similarity(np.random.default_rng(0).random((1, 4, 4)), np.zeros((1, 4, 4)), "pearson")


def test_a_model_without_resettable_layers_is_one_line() -> None:
    model = nn.Sequential(_Scale(), nn.Flatten(), nn.ReLU()).eval()
    x = torch.rand(1, 1, 4, 4)
    spec = load_harness().metrics.get("mprt-spearman")
    with pytest.raises(ValueError, match=r"^the model has no layers with reset_parameters\(\) to randomize$"):
        score_metric(spec, _ctx(model, x, torch.tensor([0]), lambda m, x, t: x[:, 0], []), x, torch.tensor([0]),
                     x[:, 0], **spec.defaults)


def test_data_randomization_fits_the_permuted_labels_with_no_early_stop_on_512_permuted_training_samples(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Adebayo et al. Sec. 3.2 as documented: the training labels permuted by the seed, every epoch of the recipe
    (patience 0: no early stop), the kept epoch the best on the first 512 permuted training samples."""
    from xaibench_metrics import randomization

    from xaibench.contract.specs import DataBundle, Samples, TrainRecipe

    calls: list = []
    monkeypatch.setattr(randomization, "train", lambda *args: calls.append(args))
    x = torch.arange(600, dtype=torch.float32)[:, None, None, None]
    train = Samples(x=x, y=torch.arange(600) % 5, ids=tuple(str(i) for i in range(600)))
    bundle = DataBundle(train=train, val=train, test=train, class_names=tuple("abcde"), modality="image")
    recipe = TrainRecipe(epochs=4, batch_size=8, lr=0.1, patience=3)
    randomization.fit_on_permuted_labels(nn.Linear(1, 5), bundle, recipe, 11, torch.device("cpu"))
    (_, fitted, val, used, seed, _), = calls
    perm = torch.randperm(600, generator=torch.Generator().manual_seed(11))
    assert torch.equal(fitted.x, x) and torch.equal(fitted.y, train.y[perm])  # inputs kept, labels permuted
    assert torch.equal(val.x, x[:512]) and torch.equal(val.y, train.y[perm][:512])
    assert used.patience == 0 and used.epochs == 4 and seed == 11
