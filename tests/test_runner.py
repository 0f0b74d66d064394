"""The runner on a tiny in-process plugin: caching, resumption, fault isolation, skips."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TINY_SUITE

from xaibench import hookimpl, leaderboard

from xaibench.models import provision as models
from xaibench.storage.cache import load_checkpoint
from xaibench.contract.plugins import load_harness
from xaibench.running.runner import Runner, RunOptions
from xaibench.contract.specs import MethodSpec, MetricSpec
from xaibench.storage.store import Store
from xaibench.suites.suite import load_suite


class Faulty:
    """Methods and a metric that misbehave in each way a plugin can."""

    @hookimpl
    def xaibench_register_methods(self, register):  # type: ignore[no-untyped-def]
        def raises(model, x, target, ctx):  # type: ignore[no-untyped-def]
            raise RuntimeError("method exploded")

        def nan(model, x, target, ctx):  # type: ignore[no-untyped-def]
            return torch.full(x.shape[:1] + x.shape[2:], float("nan"))

        def wrong_shape(model, x, target, ctx):  # type: ignore[no-untyped-def]
            return torch.zeros(x.shape[0], 3)

        def mutates(model, x, target, ctx):  # type: ignore[no-untyped-def]
            next(model.parameters()).data.add_(1.0)
            return x[:, 0]

        for name, fn in (("raises", raises), ("nan", nan), ("wrong-shape", wrong_shape), ("mutates", mutates)):
            register(MethodSpec(name=name, explain=fn, modalities=frozenset({"image"}), description=name))

    @hookimpl
    def xaibench_register_metrics(self, register):  # type: ignore[no-untyped-def]
        register(MetricSpec(name="too-few-scores", score=lambda maps: np.zeros(1), category="complexity",
                            higher_is_better=True, description="returns one score for the batch"))


def _run(tmp_path: Path, text: str, *plugins: tuple[str, object], **opts: object):  # type: ignore[no-untyped-def]
    path = tmp_path / "suite.yaml"
    path.write_text(text)
    harness = load_harness(plugins)
    store = Store(tmp_path / "r.sqlite")
    runner = Runner(harness, load_suite(path), store, RunOptions(progress=False, **opts))  # type: ignore[arg-type]
    return runner.run(), store


def test_tiny_suite_runs_and_oracle_and_chance_score_as_expected(tmp_path: Path, tiny_plugin) -> None:  # type: ignore[no-untyped-def]
    summary, store = _run(tmp_path, TINY_SUITE, ("tiny", tiny_plugin))
    assert summary.computed == 9 and summary.models_trained == 1 and not summary.failed
    recs = {(r.method, r.metric): r for r in leaderboard.records(store, "tiny")}
    assert recs[("oracle", "hit-rate")].mean == 1.0
    assert recs[("input-times-one", "hit-rate")].mean == 1.0  # the bright square is the mask
    assert 0.0 <= recs[("random", "hit-rate")].mean < 1.0
    acc = store.model_evaluation(store.plan("tiny")[0].model_key)["accuracy"]
    assert acc >= 0.9, "the tiny model must learn the left/right rule"


def test_second_run_recomputes_nothing_and_renders_identically(tmp_path: Path, tiny_plugin) -> None:  # type: ignore[no-untyped-def]
    _, store = _run(tmp_path, TINY_SUITE, ("tiny", tiny_plugin))
    first = leaderboard.render(store, "tiny")
    summary, store = _run(tmp_path, TINY_SUITE, ("tiny", tiny_plugin))
    assert summary.computed == 0 and summary.reused == 9 and summary.models_trained == 0
    assert leaderboard.render(store, "tiny") == first
    assert store.counts()["cells"] == 9


def test_adding_a_method_computes_only_its_cells(tmp_path: Path, tiny_plugin,  # type: ignore[no-untyped-def]
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    _run(tmp_path, TINY_SUITE, ("tiny", tiny_plugin))
    loads = []
    monkeypatch.setattr(models, "load_checkpoint", lambda *a: loads.append(a[1]) or load_checkpoint(*a))
    summary, _ = _run(tmp_path, TINY_SUITE.replace("methods: [", "methods: [centre, "), ("tiny", tiny_plugin))
    assert summary.computed == 3 and summary.reused == 9 and summary.maps_computed == 8
    assert len(loads) == 1  # the cached, already evaluated model is read once, for its cells


def test_faulty_plugins_fail_their_cells_not_the_run(tmp_path: Path, tiny_plugin) -> None:  # type: ignore[no-untyped-def]
    text = TINY_SUITE.replace("methods: [", "methods: [raises, nan, wrong-shape, mutates, ").replace(
        "metrics: [", "metrics: [too-few-scores, ")
    summary, store = _run(tmp_path, text, ("tiny", tiny_plugin), ("faulty", Faulty()))
    recs = {(r.method, r.metric): r for r in leaderboard.records(store, "tiny")}
    assert "method exploded" in recs[("raises", "dic")].detail
    assert "NaN" in recs[("nan", "dic")].detail
    assert "shape" in recs[("wrong-shape", "hit-rate")].detail
    assert "changed the model's parameter" in recs[("mutates", "iic")].detail
    assert "one score per sample" in recs[("oracle", "too-few-scores")].detail
    assert recs[("oracle", "hit-rate")].status == "ok" and recs[("random", "dic")].status == "ok"
    assert len(summary.failed) == 4 * 4 + 3
    md = leaderboard.render(store, "tiny")
    assert md.count("**failed**") == 19


def test_fail_fast_stops_at_the_first_failure(tmp_path: Path, tiny_plugin) -> None:  # type: ignore[no-untyped-def]
    text = TINY_SUITE.replace("methods: [", "methods: [raises, ")
    summary, _ = _run(tmp_path, text, ("tiny", tiny_plugin), ("faulty", Faulty()), fail_fast=True)
    assert len(summary.failed) == 1 and summary.computed == 0


def test_cells_without_masks_are_skipped_with_a_reason(tmp_path: Path, tiny_plugin) -> None:  # type: ignore[no-untyped-def]
    text = TINY_SUITE.replace("datasets: [tiny]", "datasets: [{name: tiny, params: {masks: false}}]")
    summary, store = _run(tmp_path, text, ("tiny", tiny_plugin))
    assert summary.computed == 4 and summary.skipped == 5
    assert "dataset 'tiny' has no masks: localization metric 'hit-rate' skipped" in summary.skip_reasons
    assert "method 'oracle' needs masks and 'tiny' has none" in summary.skip_reasons


def test_target_label_and_unknown_layer(tmp_path: Path, tiny_plugin) -> None:  # type: ignore[no-untyped-def]
    text = TINY_SUITE.replace("seed: 0", "seed: 0\ntarget: label")
    summary, _ = _run(tmp_path, text, ("tiny", tiny_plugin))
    assert summary.computed == 9
    from xaibench.base.errors import SuiteError

    bad = TINY_SUITE.replace("methods: [", "methods: [{name: gradcam, params: {layer: featurs}}, ")
    with pytest.raises(SuiteError, match="did you mean 'features'"):
        _run(tmp_path, bad, ("tiny", tiny_plugin))


def test_an_optional_dataset_without_data_is_skipped_with_the_reason(tmp_path: Path, tiny_plugin) -> None:  # type: ignore[no-untyped-def]
    text = TINY_SUITE.replace("datasets: [tiny]", "datasets: [tiny, {name: busi, optional: true}]")
    summary, store = _run(tmp_path, text, ("tiny", tiny_plugin))
    assert summary.computed == 9 and summary.skipped == 9
    assert any(r.startswith("optional dataset 'busi' skipped:") for r in summary.skip_reasons)
    md = leaderboard.render(store, "tiny")
    assert "## tiny × tiny-cnn" in md and "optional dataset 'busi' skipped" in md


def test_a_required_dataset_without_data_stops_the_run_before_training(tmp_path: Path, tiny_plugin) -> None:  # type: ignore[no-untyped-def]
    from xaibench.base.errors import XaibenchError

    with pytest.raises(XaibenchError, match="dataset 'busi'"):
        _run(tmp_path, TINY_SUITE.replace("datasets: [tiny]", "datasets: [tiny, busi]"), ("tiny", tiny_plugin))


def test_figures_and_training_skip_an_optional_dataset_without_data(tmp_path: Path) -> None:
    """The `run` command's figure step and `xaibench train` must not trip over a skipped dataset."""
    import subprocess
    import sys

    suite = tmp_path / "s.yaml"
    suite.write_text("name: opt\nseed: 0\nsamples: 4\nimage_size: 32\n"
                     "datasets: [{name: synthetic-lesions, params: {n_train: 60, n_val: 12, n_test: 12}},"
                     " {name: busi, optional: true}]\n"
                     "models: [{name: small-cnn, params: {width: 4}, train: {epochs: 1}}]\n"
                     "methods: [random]\nmetrics: [hit-rate]\n")
    for args in (["run", "--suite", str(suite), "--no-progress"], ["train", "--suite", str(suite)]):
        out = subprocess.run([sys.executable, "-m", "xaibench", *args], cwd=tmp_path, capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
    assert (tmp_path / "leaderboards" / "opt.md").exists()


def test_deterministic_datasets_are_cached_exactly(tmp_path: Path) -> None:
    """A generated dataset is loaded once; the cached bundle is bit-identical (same fingerprint)."""
    from xaibench.data.bundles import fingerprint

    suite = tmp_path / "s.yaml"
    suite.write_text("name: c\nseed: 1\nsamples: 4\nimage_size: 32\n"
                     "datasets: [{name: synthetic-lesions, params: {n_train: 9, n_val: 3, n_test: 6}}]\n"
                     "models: [small-cnn]\nmethods: [random]\nmetrics: [hit-rate]\n")
    options = RunOptions(progress=False, home=tmp_path / "home")
    with Store(tmp_path / "r.sqlite") as store:
        first = Runner(load_harness(), load_suite(suite), store, options)
        bundle = first.bundle(first.datasets[0])
        assert len(list((tmp_path / "home" / "datasets").glob("*.pt"))) == 1
        again = Runner(load_harness(), load_suite(suite), store, options)
        cached = again.bundle(again.datasets[0])
    assert fingerprint(cached) == fingerprint(bundle)
    assert cached.test.ids == bundle.test.ids and cached.region_top_level == bundle.region_top_level


class Covering:
    """Two copies of ``input-times-one``: one whose rules cover only models without ReLU, one that covers all."""

    @hookimpl
    def xaibench_register_methods(self, register):  # type: ignore[no-untyped-def]
        def explain(model, x, target, ctx):  # type: ignore[no-untyped-def]
            return x.sum(1)

        def no_relu(model):  # type: ignore[no-untyped-def]
            seen = sorted({type(m).__name__ for m in model.modules() if isinstance(m, torch.nn.ReLU)})
            return f"its rules are not defined for {', '.join(seen)}" if seen else None

        register(MethodSpec(name="relu-free", explain=explain, modalities=frozenset({"image"}), description="d",
                            covers=no_relu))
        register(MethodSpec(name="any-model", explain=explain, modalities=frozenset({"image"}), description="d",
                            covers=lambda model: None))


def test_a_method_whose_rules_do_not_cover_the_model_is_not_applicable_before_any_training(
        tmp_path: Path, tiny_plugin) -> None:  # type: ignore[no-untyped-def]
    text = TINY_SUITE.replace("methods: [input-times-one, random, {name: ground-truth, label: oracle}]",
                              "methods: [relu-free, any-model]")
    summary, store = _run(tmp_path, text, ("tiny", tiny_plugin), ("covering", Covering()))
    # the tiny CNN (tests/conftest.py) has ReLU modules: relu-free's three cells carry the method's own reason
    assert summary.skip_reasons == ["not applicable: its rules are not defined for ReLU"]
    assert summary.skipped == 3 and summary.computed == 3 and not summary.failed
    ok = {(r.method, r.metric) for r in leaderboard.records(store, "tiny") if r.status == "ok"}
    assert ok == {("any-model", m) for m in ("dic", "iic", "hit-rate")}
