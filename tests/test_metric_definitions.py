"""One-line changes to a metric's definition fail here: expected values derived by hand.

Each test pins one part of a definition that an earlier test run let change silently:
the pointing game's tolerance scaled with the input size, ROAD's noise on the imputed
pixels only, the completeness error's baseline term, the explained class under
``target: predicted``, and min-max scaling for Average Drop (a constant or offset map
must not keep the whole image).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from xaibench import hookimpl, leaderboard
from xaibench.scoring.engine import Engine
from xaibench.scoring.maps import normalize
from xaibench.contract.plugins import load_harness
from xaibench.contract.specs import MethodSpec, MetricSpec
from xaibench.contract.metric_inputs import MetricContext
from xaibench.authoring.testing import score_metric


def _score(name: str, model: nn.Module, x: torch.Tensor, target: torch.Tensor, maps: torch.Tensor,
           masks: torch.Tensor | None = None, seed: int = 0, **params: object) -> np.ndarray:
    """The registered metric with its defaults (overridden by ``params``), as the runner calls it."""
    spec = load_harness().metrics.get(name)
    engine = Engine(model, "cpu", batch_size=8)
    ctx = MetricContext(engine=engine, base_logits=engine.logits(x), sample_seeds=tuple(range(seed, seed + len(x))))
    return np.asarray(score_metric(spec, ctx, x, target, maps, masks, **{**spec.defaults, **params}))


class Affine(nn.Module):
    """logit_1 = w . x + b, logit_0 = 0; with ``b != 0`` the logit at the zero baseline is ``b``, not 0."""

    def __init__(self, w: torch.Tensor, b: float) -> None:
        super().__init__()
        self.w = nn.Parameter(w.clone())
        self.b = nn.Parameter(torch.tensor(float(b)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = (x.flatten(1) * self.w.flatten()).sum(1) + self.b
        return torch.stack([torch.zeros_like(z), z], dim=1)


def _affine_case(seed: int, n: int, size: int, bias: float,
                 signed: bool) -> tuple[Affine, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(model, x (n, 1, size, size), targets (all class 1), the exact contributions w * x (n, size, size))``."""
    g = torch.Generator().manual_seed(seed)
    w = (torch.randn if signed else torch.rand)(1, size, size, generator=g)
    model = Affine(w, bias)
    x = torch.rand(n, 1, size, size, generator=g)
    return model, x, torch.ones(n, dtype=torch.long), (x * w)[:, 0]


# -- pointing game: 15 px at 224 px, scaled with the input's size ------------------------------------------

@pytest.mark.parametrize("size", [64, 112, 224])
def test_pointing_tolerance_scales_15_px_at_224_to_the_input_size(size: int) -> None:
    """At 64 px the tolerance is 15 * 64/224 = 4.29 px, at 112 px 7.5 px, at 224 px 15 px: a peak 4 (7, 15) px
    from the lesion hits, 5 (8, 16) px misses. Doubling or halving the tolerance, or not scaling it, flips one
    of them; at 224 px a tolerance of 16 px or a reference of 225 px flips the peak at 15 or 16 px."""
    tol = 15 * size / 224
    inside, outside = int(np.floor(tol)), int(np.floor(tol)) + 1  # distances (px) straight right of the lesion
    masks = torch.zeros(3, size, size, dtype=torch.bool)
    masks[:, 20:30, 10:20] = True  # lesion columns 10..19: distance d from column 19 + d
    maps = torch.zeros(3, size, size)
    maps[0, 25, 19 + inside] = 1.0
    maps[1, 25, 19 + outside] = 1.0
    maps[2, 25, 15] = 1.0  # inside the lesion
    x = torch.zeros(3, 1, size, size)
    got = _score("hit-rate", nn.Identity(), x, torch.zeros(3, dtype=torch.long), maps, masks)
    np.testing.assert_array_equal(got, [1.0, 0.0, 1.0])


def test_pointing_tolerance_scales_with_the_longest_side_of_a_non_square_input() -> None:
    """A 112 x 56 input (height the longest side): the tolerance is 15 * 112 / 224 = 7.5 px, not 15 * 56 / 224
    = 3.75 px (the width) nor 15 px: a peak 7 px right of the lesion hits, one 8 px right misses."""
    masks = torch.zeros(2, 112, 56, dtype=torch.bool)
    masks[:, 50:60, 10:20] = True  # lesion columns 10..19
    maps = torch.zeros(2, 112, 56)
    maps[0, 55, 19 + 7] = 1.0
    maps[1, 55, 19 + 8] = 1.0
    x = torch.zeros(2, 1, 112, 56)
    got = _score("hit-rate", nn.Identity(), x, torch.zeros(2, dtype=torch.long), maps, masks)
    np.testing.assert_array_equal(got, [1.0, 0.0])


def test_hit_rate_without_masks_stops_with_one_line() -> None:
    with pytest.raises(ValueError, match="^hit rate needs masks$"):
        _score("hit-rate", nn.Identity(), torch.zeros(1, 1, 8, 8), torch.zeros(1, dtype=torch.long), torch.zeros(1, 8, 8))


# -- ROAD: noise on the imputed pixels only -----------------------------------------------------------------

class Recorder(nn.Module):
    """A fixed two-class model that keeps every input it is given."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[torch.Tensor] = []
        self.head = nn.Linear(1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(x.detach().clone())
        return self.head(x.mean(dim=(1, 2, 3))[:, None])


def test_road_adds_its_noise_to_the_imputed_pixels_only_with_the_stated_deviation() -> None:
    """Kept pixels reach the model exactly unchanged; imputed ones are the noise-free linear imputation plus
    N(0, noise^2): over ~8,000 imputed values the sample deviation is within 5% of ``noise``, the mean near 0."""
    from xaibench_metrics.road import linear_impute, removal_masks

    noise, fractions = 0.2, (0.3, 0.6)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(4, 3, 24, 24, generator=g)
    maps = torch.rand(4, 24, 24, generator=g)
    model = Recorder().eval()
    _score("road-morf", model, x, torch.zeros(4, dtype=torch.long), maps, fractions=fractions, noise=noise)
    # the last 4 x 2 inputs the model saw are the perturbed ones, sample-major (kept pixels pin the order)
    perturbed = torch.cat(model.seen)[-4 * len(fractions):].reshape(4, len(fractions), 3, 24, 24)
    removed = removal_masks(maps, fractions, "morf")
    residuals = []
    for i in range(4):
        for k in range(len(fractions)):
            r = removed[i, k]
            keep = ~r
            torch.testing.assert_close(perturbed[i, k][:, keep], x[i][:, keep], rtol=0, atol=0)
            clean = torch.from_numpy(linear_impute(x[i].double().numpy(), r.numpy())).float()
            residuals.append((perturbed[i, k] - clean)[:, r].flatten())
    z = torch.cat(residuals).double()
    assert z.numel() > 5000
    assert abs(float(z.std()) / noise - 1) < 0.05 and abs(float(z.mean())) < 4 * noise / z.numel() ** 0.5


# -- completeness error: f(x) - f(baseline), with f(baseline) != 0 --------------------------------------------

def test_completeness_error_subtracts_the_output_at_the_baseline() -> None:
    """Affine model, zero baseline: f(x) - f(0) = w . x. The exact contributions w * x have error 0 and
    w * x / 2 has error 1/2, whatever the bias b = 3; without the baseline term both would depend on b."""
    model, x, target, exact = _affine_case(1, 5, 6, 3.0, signed=True)
    assert (model(torch.zeros(1, 1, 6, 6))[0, 1] == 3.0).item()  # the logit at the baseline is not 0
    np.testing.assert_allclose(_score("completeness-error", model, x, target, exact), 0.0, atol=1e-5)
    np.testing.assert_allclose(_score("completeness-error", model, x, target, exact / 2), 0.5, atol=1e-5)


# -- Average Drop: the map scaled min-max --------------------------------------------------------------------

def test_average_drop_scales_the_map_min_max_so_an_offset_keeps_nothing_extra() -> None:
    """Grad-CAM++'s explanation map x * L with L = (m - min m) / (max m - min m): an offset of 10 added to a
    map changes nothing; a constant positive map keeps nothing (L = 0), the worst drop, not the best."""
    g = torch.Generator().manual_seed(2)
    w = torch.rand(1, 5, 5, generator=g) + 0.5
    model = Affine(w, 0.0)
    x = torch.rand(4, 1, 5, 5, generator=g)
    target = torch.ones(4, dtype=torch.long)
    sal = torch.rand(4, 5, 5, generator=g)
    flat = sal.reshape(4, -1)
    low, high = flat.min(1, keepdim=True).values, flat.max(1, keepdim=True).values
    keep = ((flat - low) / (high - low)).reshape(4, 1, 5, 5)
    p, q = torch.sigmoid(model(x)[:, 1]), torch.sigmoid(model(x * keep)[:, 1])
    expected = (100 * (p - q).clamp(min=0) / p).detach().numpy()
    np.testing.assert_allclose(_score("dic", model, x, target, sal), expected, rtol=1e-5)
    np.testing.assert_allclose(_score("dic", model, x, target, sal + 10.0), expected, rtol=1e-4)
    constant = _score("dic", model, x, target, torch.full((4, 5, 5), 0.7))
    q0 = torch.sigmoid(model(torch.zeros_like(x))[:, 1])
    np.testing.assert_allclose(constant, (100 * (p - q0).clamp(min=0) / p).detach().numpy(), rtol=1e-5)
    assert (constant > expected).all()


def test_normalize_min_max_and_max_only() -> None:
    m = torch.tensor([[[-1.0, 2.0], [3.0, 5.0]]])
    np.testing.assert_allclose(normalize(m, "positive", subtract_min=True)[0], [[0.0, 0.4], [0.6, 1.0]])
    np.testing.assert_allclose(normalize(m, "positive")[0], [[0.0, 0.4], [0.6, 1.0]])
    np.testing.assert_allclose(normalize(m + 5, "positive", subtract_min=True)[0], [[0.0, 0.5], [2 / 3, 1.0]])
    np.testing.assert_allclose(normalize(m + 5, "positive")[0], [[0.4, 0.7], [0.8, 1.0]])
    np.testing.assert_allclose(normalize(m, "abs", subtract_min=True)[0], [[0.0, 0.25], [0.5, 1.0]])
    np.testing.assert_allclose(normalize(torch.full((1, 2, 2), 3.0), "positive", subtract_min=True)[0], 0.0)
    np.testing.assert_allclose(normalize(torch.full((1, 2, 2), 3.0), "positive")[0], 1.0)
    np.testing.assert_allclose(normalize(m, "raw")[0], [[0.0, 0.5], [2 / 3, 1.0]])


# -- target: predicted explains and scores the predicted class -----------------------------------------------

class Contrary(nn.Module):
    """Always predicts class 0 (logits [2, 0] plus a vanishing input term), whatever the label."""

    def __init__(self, num_classes: int, in_channels: int, modality: str) -> None:
        super().__init__()
        self.head = nn.Linear(1, 2)
        with torch.no_grad():
            self.head.weight.zero_()
            self.head.bias.copy_(torch.tensor([2.0, 0.0]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(1e-3 * x.mean(dim=(1, 2, 3))[:, None])


class TargetProbe:
    """A model that contradicts the labels, a method that writes the class it explains into its map, and
    metrics that read back the explained class (from the map) and the scored class (the targets)."""

    @hookimpl
    def xaibench_register_models(self, register):  # type: ignore[no-untyped-def]
        from xaibench.contract.specs import ModelSpec, TrainRecipe

        register(ModelSpec(name="contrary", build=Contrary, modalities=frozenset({"image"}),
                           target_layer=lambda m: m.head, description="predicts class 0",
                           recipe=TrainRecipe(epochs=1, batch_size=16, lr=0.0)))

    @hookimpl
    def xaibench_register_methods(self, register):  # type: ignore[no-untyped-def]
        def echo(model, x, target, ctx):  # type: ignore[no-untyped-def]
            ramp = torch.linspace(0, 1, x.shape[-1]).expand(x.shape[0], x.shape[-2], x.shape[-1]).clone()
            return ramp + 10.0 * target[:, None, None].float()  # map[.., 0, 0] = 10 * explained class

        register(MethodSpec(name="echo-target", explain=echo, modalities=frozenset({"image"}),
                            needs_gradients=False, description="writes the explained class into the map"))

    @hookimpl
    def xaibench_register_metrics(self, register):  # type: ignore[no-untyped-def]
        register(MetricSpec(name="explained-class", score=lambda maps: (maps[:, 0, 0] / 10).round().numpy(),
                            category="complexity", higher_is_better=True, description="the class the map explains"))
        register(MetricSpec(name="scored-class", score=lambda maps, targets: targets.double().cpu().numpy(),
                            needs=frozenset({"maps", "targets"}), category="complexity", higher_is_better=True,
                            description="the class the metric scores"))


@pytest.mark.parametrize(("target", "expected"), [("predicted", 0.0), ("label", 0.5)])
def test_target_predicted_explains_and_scores_the_predicted_class_not_the_label(
        tmp_path: Path, tiny_plugin, target: str, expected: float) -> None:  # type: ignore[no-untyped-def]
    """The model predicts class 0 on every sample; the labels alternate 0/1 (tiny data): under
    ``target: predicted`` both the explained and the scored class are 0 on every sample, under
    ``target: label`` they are the label (mean 1/2)."""
    from xaibench.running.runner import Runner, RunOptions
    from xaibench.storage.store import Store
    from xaibench.suites.suite import load_suite

    suite = tmp_path / "s.yaml"
    suite.write_text(f"name: tgt\nseed: 0\nsamples: 8\ntarget: {target}\ndatasets: [tiny]\nmodels: [contrary]\n"
                     "methods: [echo-target]\nmetrics: [explained-class, scored-class]\n")
    harness = load_harness([("tiny", tiny_plugin), ("probe", TargetProbe())])
    with Store(tmp_path / "r.sqlite") as store:
        summary = Runner(harness, load_suite(suite), store, RunOptions(progress=False, home=tmp_path / "home")).run()
        assert not summary.failed, summary.failed
        means = {r.metric: r.mean for r in leaderboard.records(store, "tgt")}
    assert means == {"explained-class": expected, "scored-class": expected}


# -- a saturated softmax: faithfulness correlation reads the logit ---------------------------------------------

def test_faithfulness_correlation_reads_the_logit_where_the_float32_softmax_saturates() -> None:
    """logit_1 = w . x + 40: p_1 = sigmoid(40 + ...) is exactly 1.0 in float32 whatever 5% of the pixels do,
    so on probabilities every drop is 0 and the correlation is undefined on every sample; on the logit (the
    default) the exact contributions w * x correlate perfectly (1 by hand: the drop is their sum)."""
    model, x, target, exact = _affine_case(5, 3, 8, 40.0, signed=False)
    assert (torch.softmax(model(x), 1)[:, 1] == 1.0).all()
    np.testing.assert_allclose(_score("faithfulness-correlation", model, x, target, exact), 1.0, atol=1e-6)
    assert np.isnan(_score("faithfulness-correlation", model, x, target, exact, output="prob")).all()


# -- the leaderboard: effective parameters, not applicable, undefined with its reason ------------------------

class Applicability:
    """An additive method (gradient x input) next to the tiny plugin's non-additive one, and a metric that is
    undefined on every sample with its declared reason."""

    @hookimpl
    def xaibench_register_methods(self, register):  # type: ignore[no-untyped-def]
        def gradient_times_input(model, x, target, ctx):  # type: ignore[no-untyped-def]
            x = x.detach().clone().requires_grad_(True)
            model(x).gather(1, target[:, None]).sum().backward()
            return (x.grad * x).sum(1).detach()

        register(MethodSpec(name="grad-x-input", explain=gradient_times_input, modalities=frozenset({"image"}),
                            description="gradient x input", additive=True))

    @hookimpl
    def xaibench_register_metrics(self, register):  # type: ignore[no-untyped-def]
        register(MetricSpec(name="never-defined", score=lambda maps: np.full(len(maps), np.nan),
                            category="complexity", higher_is_better=True, description="NaN on every sample",
                            undefined="the probe is never defined"))


def test_leaderboard_shows_parameters_not_applicable_cells_and_why_a_cell_is_undefined(
        tmp_path: Path, tiny_plugin) -> None:  # type: ignore[no-untyped-def]
    from xaibench.leaderboard.markdown import render
    from xaibench.running.runner import Runner, RunOptions
    from xaibench.storage.store import Store
    from xaibench.suites.suite import load_suite

    suite = tmp_path / "s.yaml"
    suite.write_text("name: app\nseed: 0\nsamples: 4\ndatasets: [tiny]\nmodels: [tiny-cnn]\n"
                     "methods: [input-times-one, grad-x-input]\n"
                     "metrics: [completeness-error, {name: sensitivity-n, params: {patch: 4}}, never-defined,\n"
                     "          {name: mprt-spearman, params: {steps: 1}}]\n")
    harness = load_harness([("tiny", tiny_plugin), ("app", Applicability())])
    with Store(tmp_path / "r.sqlite") as store:
        summary = Runner(harness, load_suite(suite), store, RunOptions(progress=False, home=tmp_path / "home")).run()
        assert not summary.failed, summary.failed
        recs = {(r.method, r.metric): r for r in leaderboard.records(store, "app")}
        md = render(store, "app")
    for metric in ("completeness-error", "sensitivity-n"):
        assert recs[("input-times-one", metric)].status == "skipped"
        assert recs[("input-times-one", metric)].detail.startswith("not applicable")
        assert recs[("grad-x-input", metric)].status == "ok" and recs[("grad-x-input", metric)].n > 0
    assert "not applicable: metric 'completeness-error'" in md
    row = next(line for line in md.splitlines() if line.startswith("|") and "input-times-one" in line)
    assert row.count("n/a") == 2
    assert "grad-x-input / never-defined undefined on every sample: the probe is never defined" in md
    metrics_table = md.split("## Metrics", 1)[1]
    metric_row = next(line for line in metrics_table.splitlines() if line.startswith("| sensitivity-n "))
    assert '"patch": 4' in metric_row and '"n": 8' in metric_row and '"sets": 32' in metric_row
    mprt_row = next(line for line in metrics_table.splitlines() if line.startswith("| mprt-spearman "))
    assert "MPRT, fully randomized model only (steps: 1, not a cascade)" in mprt_row and '"steps": 1' in mprt_row
    assert "averaged over" not in mprt_row  # the generic cascade description is not shown for one stage


def test_mprt_description_names_the_randomization_its_steps_give() -> None:
    describe = load_harness().metrics.get("mprt-ssim").describe
    assert describe is not None
    one, three = describe({"steps": 1}), describe({"steps": 3})
    assert one.startswith("MPRT, fully randomized model only (steps: 1, not a cascade): absolute SSIM")
    assert three.startswith("MPRT, cascade of 3 stages spread over the layers") and "averaged over the stages" in three
