"""Issue 44, item 5: one rule, said once, in the user's terms (each bullet a test)."""
from __future__ import annotations

import argparse

import pytest

from xaibench.api import cli


# -- every option of every subcommand says what it is ------------------------------------------------
def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(actions[0].choices)


def test_every_option_of_every_subcommand_has_help_text() -> None:
    parser = cli.build_parser()
    missing = [f"xaibench {name} {'/'.join(a.option_strings) or a.dest}"
               for name, sp in _subparsers(parser).items() for a in sp._actions
               if not isinstance(a, argparse._HelpAction) and not (a.help or "").strip()]
    missing += ['/'.join(a.option_strings) for a in parser._actions
                if not isinstance(a, (argparse._HelpAction, argparse._SubParsersAction)) and not a.help]
    assert missing == []
    for name in ("results", "explain", "leaderboard", "run", "train"):
        store = next(a for a in _subparsers(parser)[name]._actions if "--store" in a.option_strings)
        assert "results store" in store.help


# -- no ETA before there is a rate worth extrapolating -------------------------------------------------
def test_the_first_progress_line_has_no_eta_and_later_ones_count_from_the_first_cell() -> None:
    import io

    from xaibench.base import progress

    out, now = io.StringIO(), [0.0]
    bar = progress.PlainProgress(200, "s", stream=out, clock=lambda: now[0])
    now[0] = 60.0  # the first cell also paid for its group's maps: 60 s
    bar.update(1)
    now[0] = 60.0 + progress.LOG_EVERY
    bar.update(9)  # then 9 cells in LOG_EVERY s: 199 - 9 = 190 to go at 9 / 30 per s
    first, second = out.getvalue().splitlines()
    assert first == "s: 1/200 cells (0%), 0:01:00 elapsed"
    assert progress.LOG_EVERY == 30.0
    assert second == "s: 10/200 cells (5%), 0:01:30 elapsed, ETA 0:10:33"  # 190 / (9 / 30 s) = 633.3 s


def test_the_bar_shows_no_eta_until_a_second_unit_completes() -> None:
    import io
    import time

    from xaibench.base import progress

    bar = progress.Bar(total=10, desc="s", unit="cell", file=io.StringIO(), mininterval=0)
    bar.update(1)
    assert "<" not in str(bar) and "cell/s" not in str(bar) and "s/cell" not in str(bar)
    time.sleep(0.05)
    bar.update(1)
    assert "<" in str(bar)  # elapsed<remaining
    bar.close()


# -- the figure count counts what is written -----------------------------------------------------------
def test_the_figure_line_counts_every_png_written(tmp_path, tiny_plugin) -> None:  # type: ignore[no-untyped-def]
    from conftest import TINY_SUITE

    from xaibench.leaderboard.publish import publish_run
    from xaibench.contract.plugins import load_harness
    from xaibench.running.runner import Runner, RunOptions
    from xaibench.storage.store import Store
    from xaibench.suites.suite import load_suite

    path = tmp_path / "suite.yaml"
    path.write_text(TINY_SUITE)
    out = tmp_path / "boards"
    with Store(tmp_path / "r.sqlite") as store:
        runner = Runner(load_harness([("tiny", tiny_plugin)]), load_suite(path), store, RunOptions(progress=False))
        runner.run()
        lines = [line for line, _ in publish_run(store, "tiny", out, runner)]
    pngs = sorted(out.rglob("*.png"))
    assert len(pngs) >= 3  # a gallery, the curves and the agreement heat map of dic, iic, hit-rate
    assert any(p.name.endswith("agreement.png") for p in pngs)
    assert f"{len(pngs)} figure(s) written to {out / 'tiny'}" in lines


# -- print(scores) shows mean [95% CI] n, as the README says ------------------------------------------
def test_printed_scores_show_each_metrics_mean_ci_and_n() -> None:
    import numpy as np

    from xaibench.api.scores import Scores
    from xaibench.scoring.stats import summarize

    values, ids = np.array([0.25, 0.5, np.nan, 1.0]), ("a", "b", "c", "d")
    mean, low, high, n = summarize(values, 0, ids)
    assert (mean, n) == (pytest.approx(1.75 / 3), 3) and low < mean < high  # the mean of the 3 defined samples
    s = Scores(ids, {"hit-rate": values, "dic": np.full(4, np.nan)},
               {"hit-rate": (mean, low, high, n), "dic": summarize(np.full(4, np.nan), 0, ids)},
               {"hit-rate": 0, "dic": 0}, {"hit-rate": True, "dic": False})
    assert str(s).splitlines() == [
        "Scores of 4 samples (mean [95% bootstrap CI] n defined):",
        f"  hit-rate ↑  {mean:.4g} [95% CI {low:.4g}, {high:.4g}]  n=3/4",
        "  dic ↓  – [95% CI –, –]  n=0/4"]



# -- xaibench explain -o writes the format its suffix names ------------------------------------------
def test_explain_writes_the_format_the_suffix_names_and_refuses_others_first(  # type: ignore[no-untyped-def]
        tmp_path, tiny_plugin, monkeypatch, capsys) -> None:
    from conftest import TINY_SUITE
    from PIL import Image

    from xaibench.contract.plugins import load_harness

    suite = tmp_path / "suite.yaml"
    suite.write_text(TINY_SUITE)
    monkeypatch.setattr("xaibench.api.cli.load_harness", lambda: load_harness([("tiny", tiny_plugin)]))
    args = ["explain", "--suite", str(suite), "--method", "oracle", "--sample", "tiny-test-3",
            "--store", str(tmp_path / "r.sqlite")]
    home = tmp_path / "home"
    monkeypatch.setenv("XAIBENCH_HOME", str(home))
    assert cli.main([*args, "-o", str(tmp_path / "map.gif")]) == 2
    assert capsys.readouterr().err == (
        "error: cannot write a figure as 'map.gif': give a file ending in .png, .jpg, .jpeg, .pdf, .svg\n")
    assert not home.exists()  # refused before any model was trained
    for name, fmt, magic in (("map.jpg", "JPEG", b"\xff\xd8\xff"), ("map.JPEG", "JPEG", b"\xff\xd8\xff"),
                             ("map.png", "PNG", b"\x89PNG"), ("map.pdf", None, b"%PDF"), ("map.svg", None, b"<?xml")):
        assert cli.main([*args, "-o", str(tmp_path / name)]) == 0
        assert (tmp_path / name).read_bytes().startswith(magic)
        if fmt is not None:
            with Image.open(tmp_path / name) as image:
                assert image.format == fmt
    assert (home / "models").is_dir()  # where the refused call would have trained it


# -- the metric reference's "Needs" is what the API asks for ------------------------------------------
def test_the_reference_names_method_exactly_where_score_refuses_to_run_without_it() -> None:
    from xaibench.authoring import reference
    from xaibench.base.errors import XaibenchError
    from xaibench.contract.plugins import load_harness
    from xaibench.api.user_metrics import check_applicable

    for e in load_harness().registry("metrics"):
        needs = reference.metric_needs(e.spec)
        try:  # xaibench.score's check of each metric, with every annotation given and no method
            check_applicable(e.spec, "image", masks=object(), regions=object(), ground_truth="masks", additive=True,
                             method=None, region_top_level=1)
            refused = ""
        except XaibenchError as exc:
            refused = str(exc)
        assert ("only a suite trains" in needs) == ("use xaibench.run" in refused) == bool(e.spec.variants)
        if not e.spec.variants:  # (a metric with a model variant is refused for that first)
            assert ("pass method=" in refused) == ("(from Python: `method=`)" in needs), (e.spec.name, needs)
    metrics = load_harness().metrics
    for name in ("max-sensitivity", "mprt-spearman"):
        assert reference.metric_needs(metrics.get(name)) == (
            "the model; the maps; the method that made the maps, to run it again (from Python: `method=`)")
    assert reference.metric_needs(metrics.get("entropy")) == "the maps"  # a map's own statistic: no model
    assert reference.metric_needs(metrics.get("dic")) == "the model; the maps"


# -- metric parameter values are checked before anything runs (MetricSpec.check) ----------------------
def test_a_bad_road_fractions_is_one_line_from_the_cli_before_any_training(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import os
    import subprocess
    import sys

    path = tmp_path / "s.yaml"
    path.write_text("name: p\ndatasets: [synthetic-lesions]\nmodels: [small-cnn]\nmethods: [saliency]\n"
                    "metrics: [{name: road-morf, params: {fractions: [0.5, 1.5]}}]\n")
    out = subprocess.run([sys.executable, "-m", "xaibench", "run", "--suite", str(path)], capture_output=True,
                         text=True, cwd=tmp_path, timeout=300, check=False,
                         env={**os.environ, "XAIBENCH_HOME": str(tmp_path / "home")})
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.splitlines() == [(
        f"error: {path}:5: metric 'road-morf': fractions must be a non-empty list of numbers strictly between 0 and 1 "
        "(the shares of pixels removed), got [0.5, 1.5]")]
    assert not (tmp_path / "home").exists()  # no data generated, no model trained


@pytest.mark.parametrize("metric,params,message", [
    ("road-lerf", {"fractions": 0.5}, ("fractions must be a non-empty list of numbers strictly between 0 and 1 "
                                       "(the shares of pixels removed), got 0.5")),
    ("road-morf", {"fractions": []}, "fractions must be a non-empty list"),
    ("road-morf", {"fractions": [0.0, 0.5]}, ("fractions must be a non-empty list of numbers strictly between 0 "
                                              "and 1 (the shares of pixels removed), got [0.0, 0.5]")),
    ("road-morf", {"noise": -0.1}, "noise must be a finite number >= 0, got -0.1"),
    ("road-morf", {"noise": "gaussian"}, "noise must be a finite number >= 0, got 'gaussian'"),
    ("road-morf", {"order": "random"}, "order must be one of morf, lerf, got 'random'"),
    ("deletion-auc", {"fill": "noise"}, "fill must be one of zero, mean, blur, got 'noise'"),
    ("dic", {"fill": "mean"}, "fill must be one of darken, zero, got 'mean'"),
    ("completeness-error", {"fill": "blur"}, "fill must be one of zero, mean, got 'blur'"),
    ("faithfulness-correlation", {"subset": 1.0}, "subset must be a number strictly between 0 and 1, got 1.0"),
    ("max-sensitivity", {"noise": "laplace"}, "noise must be one of uniform, gaussian, got 'laplace'"),
    ("max-sensitivity", {"draws": 0}, "draws must be an integer >= 1, got 0"),
    ("emprt", {"n_bins": 1}, "n_bins must be an integer >= 2, got 1"),
    ("mprt-spearman", {"steps": 1.5}, "steps must be an integer >= 1, got 1.5"),
    ("mprt-ssim", {"similarity_measure": "pearson"}, "similarity_measure must be one of spearman, ssim, got 'pearson'"),
    ("hit-rate", {"tolerance": -1}, "tolerance must be a finite number >= 0, got -1"),
    ("relevance-mass", {"sign": "negative"}, "sign must be one of abs, positive, raw, got 'negative'"),
    ("consistency", {"abs": "yes"}, "abs must be true or false, got 'yes'"),
    ("iou", {"selection": "top"}, "selection must be one of top-k, threshold, got 'top'"),
    ("faithfulness-estimate", {"output": "softmax"}, "output must be one of prob, logit, got 'softmax'"),
])
def test_metric_values_are_refused_by_score_in_one_line(metric, params, message) -> None:  # type: ignore[no-untyped-def]
    import torch

    import xaibench
    from xaibench.base.errors import SuiteError
    from xaibench.authoring.testing import tiny_model

    model, x, maps = tiny_model("image"), torch.rand(2, 1, 16, 16), torch.rand(2, 16, 16)
    with pytest.raises(SuiteError) as exc:
        xaibench.score(model, x, None, maps, [metric], params={metric: params})
    assert str(exc.value).startswith(f"xaibench.score: metric {metric!r}: {message}")
    assert "\n" not in str(exc.value)


def test_every_metric_accepts_its_defaults_and_the_values_the_builtin_suites_give() -> None:
    from xaibench.suites.params import validate_params
    from xaibench.suites.plan import resolve
    from xaibench.contract.plugins import load_harness
    from xaibench.suites.suite import load_suite

    harness = load_harness()
    for e in harness.metrics:
        assert e.spec.check is not None, e.spec.name
        e.spec.check(dict(e.spec.defaults))
    for source in harness.suites:
        suite = load_suite(source.spec.path)
        validate_params(suite, [], resolve(harness, "metrics", suite.metrics, suite))


# -- one CAM-layer rule: refused before anything runs, named in Python's terms, and the verdict's too ----
def _resnet18_64px():  # type: ignore[no-untyped-def]
    import torch
    import torchvision

    torch.manual_seed(0)
    return torchvision.models.resnet18(weights=None, num_classes=2).eval(), torch.rand(2, 3, 64, 64)


def test_resnet18_at_64px_layer4_is_refused_from_python_naming_layer3_which_is_accepted() -> None:
    import xaibench
    from xaibench.base.errors import XaibenchError

    model, x = _resnet18_64px()  # torchvision ResNet-18 divides by 32 at layer4 (64 -> 2) and by 16 at layer3 (-> 4)
    with pytest.raises(XaibenchError) as exc:
        xaibench.explain(model, x, method="gradcam", layer="layer4")
    assert str(exc.value) == (
        "xaibench.explain: method 'gradcam': CAM layer 'layer4' gives a 2x2 map for 64x64 inputs, too coarse to "
        "localize (at least 4 per axis): pass a finer layer=<dotted name>, such as 'layer3' (4x4), or larger "
        "inputs; or accept it with allow_small_cam=True")
    assert "`" not in str(exc.value) and "layer:" not in str(exc.value)  # no YAML key from Python
    with pytest.raises(XaibenchError, match=r"^method 'gradcam' explains a layer: pass layer='<dotted name>', such "
                                            r"as 'layer3' \(4x4\)$"):
        xaibench.explain(model, x, method="gradcam")
    assert xaibench.explain(model, x, method="gradcam", layer="layer3").shape == (2, 64, 64)
    assert xaibench.explain(model, x, method="gradcam", layer="layer4", allow_small_cam=True).shape == (2, 64, 64)


def test_a_module_of_the_model_is_taken_as_layer_and_another_is_refused_in_one_line() -> None:
    import numpy as np
    import torchvision

    import xaibench
    from xaibench.base.errors import XaibenchError

    model, x = _resnet18_64px()
    by_module = xaibench.explain(model, x, method="gradcam", layer=model.layer3)  # as pytorch-grad-cam takes it
    np.testing.assert_array_equal(by_module, xaibench.explain(model, x, method="gradcam", layer="layer3"))
    np.testing.assert_array_equal(
        xaibench.explain(model, x, method="gradcam++", layer=model.layer3[1]),
        xaibench.explain(model, x, method="gradcam++", layer="layer3.1"))
    other = torchvision.models.resnet18(weights=None, num_classes=2)
    for layer, kind in ((other.layer3, "Sequential"), (model, "ResNet")):
        with pytest.raises(XaibenchError) as exc:
            xaibench.explain(model, x, method="gradcam", layer=layer)
        assert str(exc.value) == (f"layer= is a {kind} that is not a layer of the model: pass its dotted name, "
                                  f"such as 'layer3' (4x4)")
    with pytest.raises(XaibenchError) as exc:
        xaibench.explain(model, x, method="gradcam", layer=model.layer4)  # a module, measured like its name
    assert "CAM layer 'layer4' gives a 2x2 map" in str(exc.value) and len(str(exc.value)) < 300


def test_the_suite_refuses_layer4_naming_layer3_and_accepts_layer3_before_anything_runs(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from xaibench.base.errors import PlanError
    from xaibench.contract.plugins import load_harness
    from xaibench.running.runner import Runner, RunOptions
    from xaibench.storage.store import Store
    from xaibench.suites.suite import load_suite

    def plan(method: str) -> int:
        path = tmp_path / "suite.yaml"
        path.write_text("name: r64\nimage_size: 64\nsamples: 2\n"
                        "datasets: [{name: synthetic-lesions, params: {n_train: 6, n_val: 3, n_test: 3}}]\n"
                        f"models: [resnet18]\nmethods: [{method}]\nmetrics: [dic]\n")
        with Store(tmp_path / "r.sqlite") as store:
            return len(Runner(load_harness(), load_suite(path), store, RunOptions(progress=False)).plan())

    with pytest.raises(PlanError) as exc:
        plan("gradcam")
    assert str(exc.value) == (
        f"{tmp_path / 'suite.yaml'}:6: method 'gradcam' on model 'resnet18': CAM layer 'layer4.1' gives a 2x2 map for "
        "64x64 inputs, too coarse to localize (at least 4 per axis): name a finer layer with `layer:`, such as "
        "'layer3' (4x4), use a larger `image_size`, or `stem: small` on a torchvision ResNet; or accept it with "
        "`allow_small_cam: true` on the method")
    assert plan("{name: gradcam, params: {layer: layer3}}") == 1
    assert plan("{name: gradcam, allow_small_cam: true}") == 1


def _verdict(shapes: dict[str, list[int]]):  # type: ignore[no-untyped-def]
    import numpy as np

    from xaibench.leaderboard import verdict
    from xaibench.leaderboard.board import Block

    block = Block("d", "m", [], {}, [], [], np.zeros((0, 0)), None, 0)
    header = {"calibration": {"methods": {}, "metrics": {}, "mask_fraction": {},
                              "cam_layers": {"d × m": shapes}, "cam_layer_names": {"d × m": {"gradcam": "layer4"}}}}
    return verdict.section_verdict(block, header)


@pytest.mark.parametrize("side", [1, 2, 3, 4, 5, 7, 8])
def test_the_plan_and_the_verdict_apply_one_rule(side: int) -> None:
    from xaibench.scoring.degenerate import check_cam_layer
    from xaibench.base.errors import PlanError

    try:
        check_cam_layer("l", (side, side + 1), (64, 64), "s.yaml:1", "gradcam", "m")
        refused = False
    except PlanError:
        refused = True
    assert refused == (side < 4)  # at least 4 per axis
    (check,) = [c for c in _verdict({"gradcam": [side, side + 1]}).checks if c.name.startswith("CAM layer")]
    assert check.passed == (not refused)


def test_a_small_cam_layer_accepted_by_the_suite_concerns_its_cam_methods_not_the_section() -> None:
    from xaibench.leaderboard import verdict

    v = _verdict({"gradcam": [2, 2], "gradcam++": [4, 4]})
    assert v.passed and v.failures == []  # integrated gradients, occlusion... keep their ranking
    (flagged,) = v.method_failures
    assert flagged.methods == ("gradcam",)
    assert flagged.detail == ("CAM layer of `gradcam` `layer4`: 2x2 (under 4 per axis), accepted with "
                              "`allow_small_cam: true`: `gradcam`'s scores in this section do not localize; the "
                              "other methods' are unaffected")
    text = "\n".join(verdict.markdown(v))
    assert "FAIL" not in text and f"> **⚠ Not meaningful for `gradcam`**: {flagged.detail}" in text
    assert "- CAM layer of `gradcam++`: 4x4 (at least 4 per axis)" in text
    assert verdict.as_json(v)["passed"] is True
    assert [c["methods"] for c in verdict.as_json(v)["checks"] if not c["passed"]] == [["gradcam"]]


# -- captum's benign UserWarnings do not reach the user; any other warning does ------------------------
def _captum_warnings(call) -> list[str]:  # type: ignore[no-untyped-def]
    import warnings

    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")  # as a user who wants to see every warning
        call()
    return [str(w.message) for w in seen if "captum" in w.filename]


def test_explaining_with_every_captum_method_prints_no_warning() -> None:
    import torch

    import xaibench
    from xaibench.contract.plugins import load_harness
    from xaibench.authoring.testing import tiny_model

    model, x = tiny_model("image", in_channels=1), torch.rand(2, 1, 16, 16)
    names = sorted(e.spec.name for e in load_harness().methods if e.plugin == "captum")
    assert {"saliency", "deeplift", "guided-backprop", "deconvolution", "smoothgrad"} <= set(names)
    small = {"lime": {"n_samples": 20, "n_segments": 4}, "kernel-shap": {"n_samples": 20, "n_segments": 4},
             "occlusion": {"window": 4}, "occlusion-incremental": {"window": 4}, "feature-ablation": {"patch": 4}}
    for name in names:
        assert _captum_warnings(lambda name=name: xaibench.explain(model, x, method=name, **small.get(name, {}))) \
            == [], name


def test_the_filter_is_captums_known_messages_around_xaibenchs_calls_only() -> None:
    import warnings

    import torch
    from captum.attr import Saliency
    from xaibench_captum.stochastic import attribute

    from xaibench.contract.specs import MethodContext
    from xaibench.authoring.testing import tiny_model

    model, x, target = tiny_model("image", in_channels=1), torch.rand(2, 1, 16, 16), torch.tensor([0, 1])
    # captum called directly warns (the message xaibench filters is captum's own) ...
    assert _captum_warnings(lambda: Saliency(model).attribute(x, target=target)) == [
        "Input Tensor 0 did not already require gradients, required_grads has been set automatically."]
    ctx = MethodContext(layer=None, batch_size=2, sample_seeds=(0, 1))
    # ... through xaibench it does not; and another warning raised inside the same call still shows
    assert _captum_warnings(lambda: attribute(Saliency(model), x, target, ctx, None)) == []

    class Noisy:
        def attribute(self, inputs, target):  # type: ignore[no-untyped-def]
            warnings.warn("something else went wrong", UserWarning)
            return inputs

    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        attribute(Noisy(), x, target, ctx, None)
    assert [str(w.message) for w in seen] == ["something else went wrong"]
    assert not any("required_grads" in str(f[1]) for f in warnings.filters if f[1] is not None)  # not global


def test_a_suite_run_with_captum_methods_prints_no_captum_warning(tmp_path, tiny_plugin) -> None:  # type: ignore[no-untyped-def]
    from conftest import TINY_SUITE

    from xaibench.contract.plugins import load_harness
    from xaibench.running.runner import Runner, RunOptions
    from xaibench.storage.store import Store
    from xaibench.suites.suite import load_suite

    path = tmp_path / "suite.yaml"
    path.write_text(TINY_SUITE.replace("methods: [input-times-one, random, {name: ground-truth, label: oracle}]",
                                       "methods: [saliency, deeplift, guided-backprop, smoothgrad]"))
    with Store(tmp_path / "r.sqlite") as store:
        runner = Runner(load_harness([("tiny", tiny_plugin)]), load_suite(path), store, RunOptions(progress=False))
        assert _captum_warnings(runner.run) == []
        assert not runner.run().failed  # (all cached) and every cell ran


#: Each rule's least accepted and a refused value, by hand from the metrics' definitions (counts of draws, runs,
#: sets, patches, segments, grid cells, blur pixels; n_bins >= 2 for an entropy; positive scales; flags).
EDGES = {"draws": (1, 0), "runs": (1, 0), "sets": (1, 0), "n": (1, 0), "n_segments": (1, 0), "grid": (1, 0),
         "patch": (1, 0), "blur_size": (1, 0), "n_bins": (2, 1), "steps": (1, 0), "blur_sigma": (1e-3, 0.0),
         "compactness": (1e-3, 0.0), "scale": (1e-3, 0.0), "noise_magnitude": (1e-3, 0.0), "eps": (1e-12, 0.0),
         "eps_min": (1e-12, 0.0), "reference_size": (1, 0), "tolerance": (0.0, -1e-3), "tol": (0.0, -1e-3),
         "abs": (False, 0), "relative": (False, 0), "normalize": (False, 0),
         "same_prediction": (False, 0), "subset": (0.5, 0.0), "fractions": ([0.5], [1.0])}
#: Choice parameters: a refused name (their accepted names are each module's own, checked above by message).
CHOICE_PARAMS = ("fill", "order", "output", "cover", "selection", "similarity_measure", "sign", "score", "normalise")


def test_every_rule_refuses_below_its_least_value_and_accepts_it_on_every_metric_that_takes_it() -> None:
    from xaibench.contract.plugins import load_harness

    covered = set()
    for e in load_harness().metrics:
        for key, default in e.spec.defaults.items():
            if key in EDGES:
                least, refused = EDGES[key]
                e.spec.check({**e.spec.defaults, key: least})
                with pytest.raises(ValueError, match=f"^{key} must be"):
                    e.spec.check({**e.spec.defaults, key: refused})
                covered.add(key)
            elif key in CHOICE_PARAMS or (key == "noise" and isinstance(default, str)):
                with pytest.raises(ValueError, match=f"^{key} must be one of .*, got 'bogus'$"):
                    e.spec.check({**e.spec.defaults, key: "bogus"})
                e.spec.check({**e.spec.defaults, key: default})
                covered.add(key)
    assert covered == set(EDGES) | set(CHOICE_PARAMS) | {"noise"}  # every rule has a metric that takes it


def test_the_bar_extrapolates_the_rate_measured_after_the_first_cell(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import io

    from xaibench.base import progress

    now = [0.0]
    monkeypatch.setattr(progress.time, "monotonic", lambda: now[0])
    bar = progress.Bar(total=200, desc="s", unit="cell", file=io.StringIO(), mininterval=0)
    now[0] = 60.0
    bar.update()  # one cell, with its group's maps: 60 s
    now[0] = 90.0
    bar.update(9)  # 9 cells in 30 s: 0.3 cell/s, 190 to go: 633 s
    text = str(bar)
    assert "10:33" in text and ("0.30cell/s" in text or "3.33s/cell" in text), text

    rate = progress.Rate()
    rate.seen(0, 5.0)  # nothing completed yet: no start of the measure
    rate.seen(2, 10.0)
    assert rate.per_second(2, 20.0) is None and rate.per_second(4, 10.0) is None  # no later cell, no time
    assert rate.per_second(4, 20.0) == 0.2 and rate.eta(4, 14, 20.0) == 50.0
