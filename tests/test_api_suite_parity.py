"""Issue 42.1: ``xaibench.score`` and a suite share one set of checks: each user-shaped input kind is refused by
both with the same line, or scored by both with the same number.

Kinds: maps coarser than the input (accepted in the input's proportions, refused with height and width
swapped: the issue's (N, 12, 8) maps for (N, 1, 32, 48) inputs were stretched and scored a relevance mass of
0.001 against 0.682), a metric parameter value (Top-K ``k: 58``, a pixel count where a fraction is meant), a
value only a metric's kernel sees (a region top level of 0). The one-logit model and the predicted targets are
tests/test_one_logit_units.py's suite test. Expected numbers are worked by hand on the upsampled maps.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import xaibench
from xaibench import hookimpl
from xaibench.api.cli import main
from xaibench.base.errors import XaibenchError
from xaibench.scoring.maps import coarser_fits
from xaibench.contract.plugins import load_harness
from xaibench.api.results import resolve_suite, run_suite
from xaibench.running.runner import RunOptions
from xaibench.contract.specs import DataBundle, DatasetSpec, MethodSpec, ModelSpec, Samples, TrainRecipe
from xaibench.storage.store import Store

H, W = 32, 48  # the inputs: height 32, width 48
N = 4


def wide_samples(n: int, seed: int, split: str) -> Samples:
    """``(n, 1, 32, 48)`` images with a bright lesion in the top-left 16 x 24 quarter, its exact mask."""
    g = torch.Generator().manual_seed(seed)
    x = 0.1 * torch.rand(n, 1, H, W, generator=g)
    masks = torch.zeros(n, H, W, dtype=torch.bool)
    masks[:, : H // 2, : W // 2] = True
    x[:, 0][masks] += 0.9
    return Samples(x=x, y=torch.arange(n) % 2, ids=tuple(f"{split}-{i}" for i in range(n)), masks=masks)


def lesion_map(n: int, rows: int, cols: int) -> torch.Tensor:
    """A ``(n, rows, cols)`` map that is 1 on the top-left quarter of its grid (the lesion, read the right way)."""
    m = torch.zeros(n, rows, cols)
    m[:, : rows // 2, : cols // 2] = 1.0
    return m


class WidePlugin:
    """A 32x48 dataset, a linear model and two methods: a 4x6 lesion map and the same map 6x4 (axes swapped)."""

    @hookimpl
    def xaibench_register_datasets(self, register: Callable[[DatasetSpec], None]) -> None:
        register(DatasetSpec(name="wide", modality="image", has_masks=True, description="32x48 lesions",
                             load=lambda request: DataBundle(train=wide_samples(8, 1, "train"),
                                                             val=wide_samples(4, 2, "val"),
                                                             test=wide_samples(N, 3, "test"),
                                                             class_names=("a", "b"), modality="image")))

    @hookimpl
    def xaibench_register_models(self, register: Callable[[ModelSpec], None]) -> None:
        register(ModelSpec(name="wide-linear", build=lambda num_classes, in_channels, modality: nn.Sequential(
            nn.Flatten(), nn.Linear(in_channels * H * W, num_classes)), modalities=frozenset({"image"}),
            target_layer=lambda m: m[1], description="linear", recipe=TrainRecipe(epochs=1, patience=0)))

    @hookimpl
    def xaibench_register_methods(self, register: Callable[[MethodSpec], None]) -> None:
        for name, (rows, cols) in (("coarse", (4, 6)), ("swapped", (6, 4))):
            register(MethodSpec(name=name, explain=lambda model, x, target, ctx, r=rows, c=cols: lesion_map(len(x), r, c),
                                modalities=frozenset({"image"}), needs_gradients=False, description=name))


def test_coarser_maps_fit_in_the_inputs_proportions_only() -> None:
    """One stride ``s`` for the image plane, each map axis ``n / s`` rounded down or up, a volume's depth strided
    on its own; no axis larger than the input's."""
    # (6, 10): 32/5.3, 48/4.8 (a padded CAM)
    for shape in ((8, 12), (4, 6), (1, 2), (1, 1), (32, 48), (6, 10)):
        assert coarser_fits(shape, (H, W)), shape
    # (3, 2): strides 8..16 and 16..48 only touch; (4, 9): 6.4..10.7 and 4.8..6
    for shape in ((12, 8), (6, 4), (3, 2), (4, 9), (16, 16), (8, 6), (33, 48), (32, 49), (8,), (0, 12)):
        assert not coarser_fits(shape, (H, W)), shape
    assert coarser_fits((7,), (30,)) and coarser_fits((2, 3), (32, 48)) and coarser_fits((2, 2, 2), (9, 16, 16))
    assert coarser_fits((2, 4, 4), (16, 64, 64)) and coarser_fits((16, 4, 4), (16, 64, 64))  # r3d-18: 8 in time
    assert not coarser_fits((2, 4, 8), (16, 64, 64)) and not coarser_fits((17, 4, 4), (16, 64, 64))


@pytest.fixture(scope="module")
def wide_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[xaibench.Results, Path]:
    root = tmp_path_factory.mktemp("wide")
    harness = load_harness([("wide", WidePlugin())])
    suite = resolve_suite(harness, {"name": "wide", "seed": 0, "samples": N, "batch_size": N, "datasets": ["wide"],
                                    "models": ["wide-linear"], "methods": ["coarse", "swapped"],
                                    "metrics": ["relevance-mass", "hit-rate"]})
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XAIBENCH_HOME", str(root / "home"))
        with Store(root / "r.sqlite") as store:
            results = run_suite(harness, suite, store, RunOptions(progress=False))
            results.cells  # noqa: B018 - read while the store is open
    return results, root


def test_maps_with_height_and_width_swapped_are_refused_by_score_and_by_a_suite(wide_run) -> None:  # type: ignore[no-untyped-def]
    """The issue's shapes: (N, 12, 8) maps for (N, 1, 32, 48) inputs are refused in one line naming the expected
    shape (they were stretched: relevance mass 0.001 against 0.682); a suite's method giving swapped maps fails
    its cells with the same words, not a score."""
    test = wide_samples(N, 3, "test")
    model = nn.Sequential(nn.Flatten(), nn.Linear(H * W, 2))
    expected = f"for inputs ({N}, 1, {H}, {W}); expected ({N}, {H}, {W}) or a coarser map in the same proportions"
    with pytest.raises(XaibenchError) as info:
        xaibench.score(model, test.x, None, lesion_map(N, 12, 8), ["relevance-mass"], masks=test.masks)
    assert str(info.value).startswith(f"maps have shape ({N}, 12, 8) {expected}") and "\n" not in str(info.value)
    results, _ = wide_run
    failed = [c for c in results.cells if c.method == "swapped"]
    assert failed and all(c.status == "failed" for c in failed)
    assert all(f"method returned shape ({N}, 6, 4) {expected}" in c.detail for c in failed), failed[0].detail


def test_maps_in_the_inputs_proportions_score_the_same_by_score_and_by_a_suite(wide_run) -> None:  # type: ignore[no-untyped-def]
    """(N, 8, 12) and (N, 4, 6) lesion maps, bilinearly upsampled by hand, put their mass on the lesion quarter;
    the suite stores the numbers xaibench.score gives."""
    test = wide_samples(N, 3, "test")
    model = nn.Sequential(nn.Flatten(), nn.Linear(H * W, 2))
    for rows, cols in ((8, 12), (4, 6)):
        coarse = lesion_map(N, rows, cols)
        full = F.interpolate(coarse[:, None], size=(H, W), mode="bilinear", align_corners=False)[:, 0]
        mass = ((full * test.masks).flatten(1).sum(1) / full.flatten(1).sum(1)).double().numpy()
        scores = xaibench.score(model, test.x, None, coarse, ["relevance-mass", "hit-rate"], masks=test.masks)
        np.testing.assert_allclose(scores["relevance-mass"], mass, rtol=1e-6)
        assert (scores["relevance-mass"] > 0.6).all() and (scores["hit-rate"] == 1.0).all()
    results, _ = wide_run
    for metric in ("relevance-mass", "hit-rate"):
        stored = results.scores("wide", "wide-linear", "coarse", metric)
        again = xaibench.score(model, test.x, None, lesion_map(N, 4, 6), [metric], masks=test.masks, ids=test.ids)
        np.testing.assert_allclose([stored[i] for i in test.ids], again[metric], rtol=1e-6)


#: Metric parameter values outside what each metric is defined for, and the start of the line that refuses them.
BAD_VALUES = {
    "top-k-intersection": ({"k": 58}, "k is the fraction of the map's pixels kept, in (0, 1], got 58"),
    "iou-threshold": ({"threshold": 2}, "threshold applies to the map scaled to [0, 1]"),
    "completeness-error": ({"output": "probs"}, "output must be one of prob, logit, got 'probs'"),
    "relevance-mass": ({"sign": "neg"}, "sign must be one of abs, positive, raw, got 'neg'"),
}


@pytest.mark.parametrize("metric", sorted(BAD_VALUES))
def test_a_bad_metric_parameter_value_is_refused_by_score_and_by_the_cli_with_the_same_line(
        metric: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The issue's Top-K ``k: 58`` (a pixel count where a fraction is meant) and the values every metric of the
    plugin shares: an XaibenchError from score, exit 2 from the CLI before anything runs, with the same words
    after where the value came from."""
    params, words = BAD_VALUES[metric]
    test = wide_samples(N, 3, "test")
    model = nn.Sequential(nn.Flatten(), nn.Linear(H * W, 2))
    with pytest.raises(XaibenchError) as info:
        xaibench.score(model, test.x, None, test.masks.float(), [metric], masks=test.masks, additive=True,
                       params={metric: params})
    api_line = str(info.value)
    assert api_line.startswith(f"xaibench.score: metric {metric!r}: {words}"), api_line
    (key, value), = params.items()
    suite = tmp_path / "suite.yaml"
    suite.write_text("name: bad-value\nsamples: 2\ndatasets: [synthetic-lesions]\nmodels: [small-cnn]\n"
                     "methods: [integrated-gradients]\n"
                     f"metrics:\n  - {{name: {metric}, params: {{{key}: {value}}}}}\n")
    assert main(["run", "--suite", str(suite), "--store", str(tmp_path / "r.sqlite"), "--no-progress"]) == 2
    cli_line = capsys.readouterr().err.strip().removeprefix("error: ")
    assert cli_line == f"{suite}:7: " + api_line.removeprefix("xaibench.score: ")


def test_the_overlap_metrics_take_a_fraction_a_threshold_in_0_1_and_their_named_scores() -> None:
    """Top-K's ``k`` in (0, 1], the threshold in [0, 1] (the map is scaled to [0, 1]), ``score`` and ``selection``
    from their lists; each refusal one line that says what to give."""
    for k in (0, -0.1, 1.5, "10%", True, float("nan")):
        with pytest.raises(XaibenchError, match=rf"^xaibench.metric: metric 'iou': k is the fraction of the map's "
                                                rf"pixels kept, in \(0, 1\], got {k!r}; for a number of pixels n give "
                                                rf"n / \(pixels per map\)$"):
            xaibench.metric("iou", k=k)
    assert xaibench.metric("iou", k=1).params["k"] == 1 and xaibench.metric("iou", k=0.01).params["k"] == 0.01
    for t in (-0.1, 1.01, "half", None):
        with pytest.raises(XaibenchError, match=rf"^xaibench.metric: metric 'dice-threshold': threshold applies to "
                                                rf"the map scaled to \[0, 1\]: give a number in \[0, 1\], got {t!r}$"):
            xaibench.metric("dice-threshold", threshold=t)
    for t in (0, 0.5, 1):
        assert xaibench.metric("dice-threshold", threshold=t).params["threshold"] == t
    with pytest.raises(XaibenchError, match="score must be one of iou, dice, coverage, precision, got 'f1'"):
        xaibench.metric("iou", score="f1")
    with pytest.raises(XaibenchError, match="selection must be one of top-k, threshold, got 'top'"):
        xaibench.metric("coverage", selection="top")


def test_a_value_only_a_kernel_refuses_is_an_xaibench_error_from_score() -> None:
    """A region top level of 0 reaches the graded hit rate's kernel: the XaibenchError score's docs promise,
    naming the metric, not the kernel's plain ValueError."""
    test = wide_samples(N, 3, "test")
    model = nn.Sequential(nn.Flatten(), nn.Linear(H * W, 2))
    regions = test.masks.to(torch.int8)
    with pytest.raises(XaibenchError, match=r"^xaibench.score: metric 'graded-hit-rate': the region map's top level "
                                            r"must be positive, got 0$"):
        xaibench.score(model, test.x, None, test.masks.float(), ["graded-hit-rate"], regions=regions,
                       region_top_level=0)


def test_a_mean_fill_without_the_training_mean_is_one_line_naming_data_mean() -> None:
    """IROF's default fill and occlusion's ``fill: mean`` need ``data_mean=`` from Python (a suite always has the
    training mean): refused in one line, never a bare ValueError; with it, the score is computed."""
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                              torch.nn.Flatten(), torch.nn.Linear(4, 2)).eval()
    x = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    maps = torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(1))
    line = ("fill 'mean' needs the training data's per-channel mean: pass data_mean= (one value per input channel), "
            "or choose another fill (zero, blur, noise)")
    with pytest.raises(XaibenchError) as err:
        xaibench.score(net, x, None, maps, ["irof"])
    assert str(err.value) == line
    with pytest.raises(XaibenchError) as err:
        xaibench.explain(net, x, method="occlusion", window=8, fill="mean")
    assert str(err.value) == line
    scored = xaibench.score(net, x, None, maps, ["irof"], data_mean=[0.5, 0.5, 0.5])
    assert np.isfinite(scored["irof"]).all()
