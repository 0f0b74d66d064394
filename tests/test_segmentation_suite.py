"""A suite's region target (issue 41, item 3): ``target: {region: ..., class: ..., reduce: ...}`` checked with
``file:line``, and the runner explaining and scoring a segmenter through the one target adapter with the numbers
``xaibench.score`` gives for the same samples, ids and seed."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import xaibench
from xaibench import leaderboard
from segnets import factory
from xaibench.base.errors import SuiteError
from xaibench.suites.options import RunOptions
from xaibench.contract.plugins import load_harness
from xaibench.running.runner import Runner
from xaibench.storage.store import Store
from xaibench.suites.suite import load_suite

SUITE = """name: seg-test
samples: 4
image_size: 32
target: {target}
datasets: [synthetic-lesions]
models:
  - {{name: unet, factory: "segnets:factory", checkpoint: {ckpt}, layer: mid}}
methods: [saliency, random]
metrics: [deletion-dice, relevance-inside, deletion-auc]
"""


def _suite(tmp_path: Path, target: str) -> Path:
    ckpt = tmp_path / "unet.pt"
    torch.save(factory(3, 1).state_dict(), ckpt)
    path = tmp_path / "s.yaml"
    path.write_text(SUITE.format(target=target, ckpt=ckpt))
    return path


@pytest.mark.parametrize(("target", "message"), [
    ("{region: predictd}", r"s.yaml:4: 'target': target region 'predictd' is not one of"),
    ("{region: box}", r"s.yaml:4: 'target': target box is missing"),
    ("everything", r"s.yaml:4: 'target' must be one of predicted, label, or a region target"),
])
def test_a_suites_region_target_is_checked_with_its_line(tmp_path: Path, target: str, message: str) -> None:
    with pytest.raises(SuiteError, match=message):
        load_suite(_suite(tmp_path, target))


def test_the_runner_scores_a_segmenter_as_xaibench_score_does(tmp_path: Path) -> None:
    # a segmenter is evaluated for Dice and IoU (xaibench.models.segtraining); an untrained one fails the gate but its cells run
    suite = load_suite(_suite(tmp_path, "{region: ground-truth, class: 1, reduce: mean}"))
    assert suite.target == {"region": "ground-truth", "class": 1, "reduce": "mean", "box": None, "pixel": None}
    store = Store(tmp_path / "r.sqlite")
    runner = Runner(load_harness(), suite, store, RunOptions(progress=False))
    summary = runner.run()
    assert not summary.failed, summary.failed
    ds, mo = runner.datasets[0], runner.models[0]
    g = runner.group_context(ds, mo, runner.bundle(ds).test.subset(slice(0, 4)))
    assert g.regions is not None and g.base_logits.shape == (4, 3)
    keep = [i for i in range(4) if g.samples.masks[i].any()]
    assert 0 < len(keep) < 4  # empty masks: NaN, counted as undefined, never a score of a constant region score
    maps = runner.execution.explain(g, runner.methods[0])
    assert not maps[[i for i in range(4) if i not in keep]].any()
    ours = xaibench.score(runner.trained_model(ds, mo), g.samples.x[keep], {"region": "ground-truth", "reduce": "mean"},
                          maps[keep], ["deletion-dice", "relevance-inside", "deletion-auc"],
                          masks=g.samples.masks[keep],
                          ids=[g.samples.ids[i] for i in keep], seed=suite.seed, method="saliency")
    means = {(r.method, r.metric): (r.mean, r.n) for r in leaderboard.records(store, suite.name)}
    for metric in ("deletion-dice", "relevance-inside", "deletion-auc"):
        mean, n = means[("saliency", metric)]
        assert n == len(keep)
        np.testing.assert_allclose(mean, np.nanmean(ours[metric]), atol=1e-6, err_msg=metric)


@pytest.mark.parametrize(("target", "model", "message"), [
    ("{region: predicted}", "small-cnn",
     r"model 'small-cnn' returns \(N, K\) class scores, but the suite's target is a region target"),
    ("label", "{name: small-unet, params: {width: 4}, train: {epochs: 1}}",
     r"c.yaml:7: 'small-unet' is a segmenter: suite `target: label` explains a classifier's class"),
])
def test_a_target_the_model_cannot_explain_is_refused_by_the_plan_before_anything_trains(
        tmp_path: Path, target: str, model: str, message: str) -> None:
    from xaibench.base.errors import PlanError

    path = tmp_path / "c.yaml"
    path.write_text(f"name: c\nseed: 0\nsamples: 4\nimage_size: 32\ntarget: {target}\n"
                    "datasets: [{name: synthetic-lesions, params: {n_train: 16, n_val: 8, n_test: 8}}]\n"
                    f"models: [{model}]\nmethods: [gradcam, random]\nmetrics: [relevance-inside, deletion-auc]\n")
    runner = Runner(load_harness(), load_suite(path), Store(tmp_path / "r.sqlite"), RunOptions(progress=False))
    with pytest.raises(PlanError, match=message):
        runner.plan()
    assert runner.trainer.trained == 0


def test_explain_titles_a_segmenters_map_with_its_region_target_and_region_score(tmp_path: Path,
                                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from xaibench.figures import overlay

    runner = Runner(load_harness(), load_suite(_suite(tmp_path, "{region: ground-truth, class: 1, reduce: mean}")),
                    Store(tmp_path / "r.sqlite"), RunOptions(progress=False))
    ds, mo = runner.datasets[0], runner.models[0]
    test = runner.bundle(ds).test
    i = next(i for i in range(len(test)) if test.masks[i].any())
    titles: list[str] = []
    monkeypatch.setattr(overlay, "save_figure", lambda fig, path: titles.append(fig.axes[0].get_title()) or path)
    overlay.explain_overlay(runner, "saliency", test.ids[i], tmp_path / "m.png")
    with torch.no_grad():  # the region score by hand: class 1's logits averaged over the sample's lesion mask
        logits = runner.trained_model(ds, mo)(test.x[i:i + 1])[0, 1]
    score = float(logits[test.masks[i]].mean())
    assert titles[0].splitlines()[-1] == (f"explained class 1 over the ground-truth region, mean: score {score:.3g}; "
                                          f"lesion outlined in cyan")


@pytest.mark.parametrize(("target", "explained"), [("{region: ground-truth, class: 1, reduce: mean}",
                                                    "class 1 over the ground-truth region, mean"),
                                                   ("predicted", "class 1 over the predicted region, sum")])
def test_a_segmenters_figures_say_what_was_explained_and_label_each_curve_panel(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, target: str, explained: str) -> None:
    from xaibench.figures import charts as figures

    runner = Runner(load_harness(), load_suite(_suite(tmp_path, target)), Store(tmp_path / "r.sqlite"),
                    RunOptions(progress=False))
    assert not runner.run().failed
    drawn: list = []  # type: ignore[type-arg]
    monkeypatch.setattr(figures, "save_figure", lambda fig, path: drawn.append(fig) or Path(path))
    figures.write_run_figures(runner, tmp_path / "figs")
    gallery = next(f for f in drawn if "curves as scored" not in f.get_suptitle())
    # the row labels are wrapped at 18 characters, hyphens included: compared without whitespace
    assert any(f"explained{explained}".replace(" ", "") in "".join(ax.get_ylabel().split()) for ax in gallery.axes)
    curves = next(f for f in drawn if "curves as scored" in f.get_suptitle())
    assert [ax.get_ylabel() for ax in curves.axes] == ["Dice against the unperturbed prediction",
                                                      "target-class probability of the region scores"]
    assert "samples without a region or with constant maps left out" in " ".join(curves.get_suptitle().split())
