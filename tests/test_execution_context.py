"""What the runner shares per dataset x model (``Execution.group_context``) and gives each cell's metric
(``Execution.metric_context``), pinned with hand-derived values on a model whose output is known.

The explained class is the model's argmax under ``target: predicted`` and the label under ``target: label``;
``data_mean`` is the training inputs' per-channel mean; a user's batch size wins over the estimate. Seeds
are common random numbers: by suite seed, dataset x model, metric (with its parameters) and sample, never by
method. ``explain`` re-runs the cell's method for other inputs, classes or models; ``variant`` returns the
declared variant of that name (else one line naming the declared ones); ``model()`` is a copy the metric may
randomize; ``shared`` computes a key once per method.
"""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from xaibench import hookimpl
from xaibench.base.errors import CellError
from xaibench.contract.plugins import load_harness
from xaibench.running.runner import Runner, RunOptions
from xaibench.contract.specs import (
    DataBundle,
    DatasetSpec,
    MethodSpec,
    MetricSpec,
    ModelSpec,
    ModelVariant,
    Samples,
    TrainRecipe,
)
from xaibench.storage.store import Store
from xaibench.suites.suite import load_suite

#: Test samples: every pixel of sample i is SIGNS[i] (the model predicts class 0 iff it is positive) and the
#: labels are LABELS: predicted classes [0, 1, 0, 1, 0, 1] against labels [1, 1, 0, 0, 1, 0].
SIGNS = [1.0, -1.0, 2.0, -2.0, 3.0, -3.0]
LABELS = [1, 1, 0, 0, 1, 0]
PREDICTED = [0, 1, 0, 1, 0, 1]


def _load(request) -> DataBundle:  # type: ignore[no-untyped-def]
    # training inputs: channel c of sample i is c + 0.5 * (-1)^i, so the per-channel mean is exactly [0, 1, 2]
    i = torch.arange(8, dtype=torch.float32)
    train_x = torch.arange(3, dtype=torch.float32)[None, :, None, None] + 0.5 * (-1.0) ** i[:, None, None, None]
    train = Samples(x=train_x.expand(8, 3, 4, 4).clone(), y=torch.arange(8) % 2, ids=tuple(f"tr-{k}" for k in range(8)))
    test = Samples(x=torch.tensor(SIGNS)[:, None, None, None].expand(6, 3, 4, 4).clone(), y=torch.tensor(LABELS),
                   ids=tuple(f"te-{k}" for k in range(6)))
    return DataBundle(train=train, val=train, test=test, class_names=("a", "b"), modality="image")


class SignModel(nn.Module):
    """Logits ``[m, -m] + bias`` with ``m`` the input's mean; the bias is 0 (variants set it)."""

    def __init__(self, num_classes: int, in_channels: int, modality: str) -> None:
        super().__init__()
        self.head = nn.Linear(1, 2)
        with torch.no_grad():
            self.head.weight.copy_(torch.tensor([[1.0], [-1.0]]))
            self.head.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(x.mean(dim=(1, 2, 3))[:, None])


def _bias_fit(value: float):  # type: ignore[no-untyped-def]
    def fit(model, bundle, recipe, seed, device) -> None:  # type: ignore[no-untyped-def]
        with torch.no_grad():
            model.head.bias.fill_(value)
    return fit


def _echo(model, x, target, ctx):  # type: ignore[no-untyped-def]
    """Map = first channel + 10 x the explained class + 100 x the model's first bias: reads all three back."""
    return x[:, 0] + 10.0 * target[:, None, None].float() + 100.0 * model.head.bias[0].detach()


class Probe:
    @hookimpl
    def xaibench_register_datasets(self, register):  # type: ignore[no-untyped-def]
        register(DatasetSpec(name="signs", load=_load, modality="image", has_masks=False, description="signs"))

    @hookimpl
    def xaibench_register_models(self, register):  # type: ignore[no-untyped-def]
        register(ModelSpec(name="sign-model", build=SignModel, modalities=frozenset({"image"}),
                           target_layer=lambda m: m.head, description="mean sign",
                           recipe=TrainRecipe(epochs=1, batch_size=8, lr=0.0)))

    @hookimpl
    def xaibench_register_methods(self, register):  # type: ignore[no-untyped-def]
        for name in ("echo", "echo-twin"):
            register(MethodSpec(name=name, explain=_echo, modalities=frozenset({"image"}), needs_gradients=False,
                                description="writes its inputs back"))

    @hookimpl
    def xaibench_register_metrics(self, register):  # type: ignore[no-untyped-def]
        variants = (ModelVariant("flat", _bias_fit(1.0)), ModelVariant("raised", _bias_fit(2.0)))
        for name, declared in (("probe-a", variants), ("probe-b", ())):
            register(MetricSpec(name=name, score=lambda maps, k=1: maps.mean(dim=(1, 2)).numpy(),
                                category="complexity", higher_is_better=True, description="probe",
                                defaults={"k": 1}, variants=declared))


def _runner(tmp_path: Path, target: str = "predicted", seed: int = 0, batch_size: int | None = None,
            metrics: str = "[probe-a, probe-b]") -> Runner:
    suite = tmp_path / f"s{seed}.yaml"
    suite.write_text(f"name: ctx\nseed: {seed}\nsamples: 6\ntarget: {target}\ndatasets: [signs]\n"
                     f"models: [sign-model]\nmethods: [echo, echo-twin]\nmetrics: {metrics}\n")
    store = Store(tmp_path / f"r{seed}.sqlite")
    return Runner(load_harness([("probe", Probe())]), load_suite(suite), store,
                  RunOptions(progress=False, home=tmp_path / "home", batch_size=batch_size))


def _group(runner: Runner, samples: Samples | None = None):  # type: ignore[no-untyped-def]
    ds, mo = runner.datasets[0], runner.models[0]
    return runner.execution.group_context(ds, mo, runner.build_model(ds, mo), samples)


def _contexts(runner: Runner, g, memo=None):  # type: ignore[no-untyped-def]
    """(method, metric display) -> MetricContext of that cell on group ``g``."""
    return {(c.method.entry.display, c.metric.entry.display): runner.execution.metric_context(
        g, c, {} if memo is None else memo) for c in runner.plan()}


# -- group_context -----------------------------------------------------------------------------------------

@pytest.mark.parametrize(("target", "expected"), [("predicted", PREDICTED), ("label", LABELS)])
def test_the_explained_class_is_the_models_argmax_or_the_label(tmp_path: Path, target: str, expected) -> None:  # type: ignore[no-untyped-def]
    g = _group(_runner(tmp_path, target))
    assert g.samples.ids == tuple(f"te-{k}" for k in range(6))
    assert g.target.tolist() == expected
    torch.testing.assert_close(g.base_logits, torch.tensor([[s, -s] for s in SIGNS]))


def test_the_data_mean_is_the_per_channel_mean_of_the_training_inputs(tmp_path: Path) -> None:
    torch.testing.assert_close(_group(_runner(tmp_path)).data_mean, torch.tensor([0.0, 1.0, 2.0]))


def test_a_users_batch_size_wins_and_the_default_is_the_fixed_cpu_batch(tmp_path: Path) -> None:
    """The model's activations for one 3x4x4 input are a few bytes: the 1 GiB budget holds far more than 16 images,
    so the engine takes the fixed CPU batch, 16, and times nothing (a timed choice differs between machines)."""
    assert _group(_runner(tmp_path, batch_size=3)).engine.batch_size == 3
    assert _group(_runner(tmp_path)).engine.batch_size == 16
    assert not (tmp_path / "home" / "throughput").exists()


def test_given_samples_replace_the_evaluated_ones(tmp_path: Path) -> None:
    runner = _runner(tmp_path)
    subset = runner.evaluated_samples(runner.datasets[0]).subset(slice(2, 4))
    g = _group(runner, subset)
    assert g.samples.ids == ("te-2", "te-3") and g.target.tolist() == PREDICTED[2:4]


# -- metric_context: common random numbers ------------------------------------------------------------------

def test_seeds_depend_on_metric_and_sample_but_not_on_method(tmp_path: Path) -> None:
    runner = _runner(tmp_path)
    g = _group(runner)
    ctx = _contexts(runner, g)
    a, twin, b = ctx[("echo", "probe-a")], ctx[("echo-twin", "probe-a")], ctx[("echo", "probe-b")]
    assert (a.sample_seeds, a.model_seed) == (twin.sample_seeds, twin.model_seed)
    assert len(set(a.sample_seeds)) == 6  # one seed per sample
    assert not set(a.sample_seeds) & set(b.sample_seeds)  # another metric, other draws
    assert a.model_seed == b.model_seed  # randomized models: the same for every metric
    # a sample's seed is its own, whatever else is in the batch and wherever it stands in it
    sub = _contexts(runner, _group(runner, g.samples.subset(slice(2, 4))))[("echo", "probe-a")]
    assert sub.sample_seeds == a.sample_seeds[2:4] and sub.model_seed == a.model_seed
    assert not hasattr(a, "seed")  # no batch-wide seed: nothing can draw by position


def test_seeds_depend_on_the_suite_seed_and_on_the_metrics_parameters(tmp_path: Path) -> None:
    base = _contexts(r := _runner(tmp_path), _group(r))[("echo", "probe-a")]
    other = _contexts(r := _runner(tmp_path, seed=1), _group(r))[("echo", "probe-a")]
    assert base.model_seed != other.model_seed
    assert not set(base.sample_seeds) & set(other.sample_seeds)
    k2 = _contexts(r := _runner(tmp_path, metrics="[{name: probe-a, params: {k: 2}}]"), _group(r))[("echo", "probe-a")]
    assert not set(k2.sample_seeds) & set(base.sample_seeds) and k2.model_seed == base.model_seed


# -- metric_context: re-explaining, variants, model copies, the memo ----------------------------------------

def test_explain_reruns_the_method_for_other_inputs_classes_and_models(tmp_path: Path) -> None:
    runner = _runner(tmp_path)
    g = _group(runner)
    ctx = _contexts(runner, g)[("echo", "probe-a")]
    signs = torch.tensor(SIGNS)[:, None, None].expand(6, 4, 4)
    predicted = torch.tensor(PREDICTED, dtype=torch.float32)[:, None, None]
    torch.testing.assert_close(ctx.explain(), signs + 10 * predicted)
    torch.testing.assert_close(ctx.explain(inputs=g.samples.x + 0.5), signs + 0.5 + 10 * predicted)
    torch.testing.assert_close(ctx.explain(targets=torch.ones(6, dtype=torch.long)), signs + 10.0)
    other = SignModel(2, 3, "image")
    with torch.no_grad():
        other.head.bias.fill_(0.25)
    torch.testing.assert_close(ctx.explain(model=other), signs + 10 * predicted + 25.0)


def test_variant_is_the_declared_variant_of_that_name(tmp_path: Path) -> None:
    runner = _runner(tmp_path)
    ctx = _contexts(runner, _group(runner))
    for name, bias in (("raised", 2.0), ("flat", 1.0)):
        torch.testing.assert_close(ctx[("echo", "probe-a")].variant(name).head.bias, torch.tensor([bias, bias]))


def test_an_undeclared_variant_is_one_line_naming_the_declared_ones(tmp_path: Path) -> None:
    runner = _runner(tmp_path)
    ctx = _contexts(runner, _group(runner))
    with pytest.raises(CellError, match=r"^metric 'probe-a' asked for model variant 'steep', which it does not "
                                        r"declare \(MetricSpec\.variants: flat, raised\)$"):
        ctx[("echo", "probe-a")].variant("steep")
    with pytest.raises(CellError, match=r"^metric 'probe-b' asked for model variant 'flat', which it does not "
                                        r"declare \(MetricSpec\.variants: none\)$"):
        ctx[("echo", "probe-b")].variant("flat")


def test_model_is_a_copy_a_metric_may_randomize_in_place(tmp_path: Path) -> None:
    runner = _runner(tmp_path)
    g = _group(runner)
    copy = _contexts(runner, g)[("echo", "probe-a")].model()
    with torch.no_grad():
        copy.head.weight.fill_(7.0)  # what MPRT's reset_parameters does to the copy
    torch.testing.assert_close(g.model.head.weight, torch.tensor([[1.0], [-1.0]]))
    torch.testing.assert_close(copy(g.samples.x[:1]), torch.tensor([[7.0, 7.0]]))


def test_shared_computes_a_key_once_per_method(tmp_path: Path) -> None:
    runner = _runner(tmp_path)
    memo: dict = {}
    ctx = _contexts(runner, _group(runner), memo)
    calls: list[int] = []

    def compute() -> int:
        calls.append(1)
        return 40 + len(calls)

    assert ctx[("echo", "probe-a")].shared("k", compute) == 41
    assert ctx[("echo", "probe-b")].shared("k", compute) == 41 and len(calls) == 1
    assert ctx[("echo", "probe-a")].shared("other", compute) == 42
