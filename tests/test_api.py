"""xaibench.api: a number from Python is the number the CLI stores; bad inputs give the CLI's one-line errors.

The equality test runs a tiny suite with every registered metric through ``xaibench.run`` (the
CLI's own path, :func:`xaibench.api.run_suite`), then re-scores each cell with ``xaibench.score``
on the suite's cached model, maps and samples, and compares with the per-sample scores in the
store: the expected values are the runner's, computed independently of the API's code path.
"""
from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
from torch import nn

import xaibench
from xaibench.api import user_methods
from xaibench.base.errors import XaibenchError
from xaibench.contract.plugins import load_harness
from xaibench.running.runner import Runner, RunOptions
from xaibench.contract.specs import MethodSpec
from xaibench.storage.store import Store
from xaibench.authoring.testing import tiny_model

HARNESS = load_harness()
ALL_METRICS = [e.spec.name for e in HARNESS.registry("metrics")]
#: A metric comparing with a model trained by another protocol: only a suite trains it (the API refuses it).
VARIANT = {e.spec.name for e in HARNESS.registry("metrics") if e.spec.variants}
#: A metric of segmentation models: not applicable to this suite's classifier (tests/test_segmentation_suite.py).
SEGMENTATION = {e.spec.name for e in HARNESS.registry("metrics") if "segmentation" in e.spec.needs}
METHOD = {"name": "integrated-gradients", "params": {"n_steps": 4}}  # additive: completeness & co. apply

SUITE = {
    "name": "api-equality", "seed": 3, "samples": 6, "image_size": 32, "target": "predicted", "batch_size": 4,
    "datasets": [{"name": "synthetic-lesions", "params": {"n_train": 96, "n_val": 24, "n_test": 12}}],
    "models": [{"name": "small-cnn", "params": {"width": 8, "depth": 3}, "train": {"epochs": 2, "batch_size": 32,
                                                                                     "patience": 0}}],
    "methods": [METHOD],
    "metrics": [{"name": m, "params": {"draws": 2}} if "draws" in HARNESS.metrics.get(m).defaults else m
                for m in ALL_METRICS if m not in VARIANT],
}


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> xaibench.Results:
    """The suite run once into a store (its own cache home), as ``xaibench run`` runs it."""
    root = tmp_path_factory.mktemp("api-equality")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XAIBENCH_HOME", str(root / "home"))
        results = xaibench.run(SUITE, store=root / "results.sqlite", progress=False)
        # the cached model, maps and samples, loaded while the home is this run's, by a runner of the same suite
        store = Store(results.store_path)
        runner = Runner(HARNESS, results.runner.suite, store, RunOptions(progress=False))
        ds, mo, me = runner.datasets[0], runner.models[0], runner.methods[0]
        g = runner.group_context(ds, mo)
        bundle = runner.bundle(ds)
        cached = {"model": g.model, "x": g.samples.x, "ids": g.samples.ids, "masks": g.samples.masks,
                  "regions": g.samples.regions, "maps": runner.cached_maps(g, me),
                  "mean": g.data_mean, "top": bundle.region_top_level,
                  "batch": g.engine.batch_size}
        store.close()
    results.cached = cached  # type: ignore[attr-defined]
    return results


@pytest.mark.parametrize("name", ALL_METRICS)
def test_every_metric_from_python_equals_the_score_the_cli_stored(name: str, stored: xaibench.Results) -> None:
    if name in VARIANT:
        pytest.skip(f"{name} compares with a model trained on randomized labels (MetricSpec.variants), which only "
                    f"a suite trains: xaibench.score refuses it (test_bad_inputs_give_one_line)")
    if name in SEGMENTATION:  # the plan skips it on this classifier, as xaibench.score refuses it
        cell = next(r for r in stored.cells if r.metric == name)
        assert cell.status == "skipped" and "needs a segmentation model" in (cell.detail or ""), cell
        return
    c = stored.cached  # type: ignore[attr-defined]
    entry = next(e for e in SUITE["metrics"] if (e if isinstance(e, str) else e["name"]) == name)
    params = {} if isinstance(entry, str) else entry["params"]
    ours = xaibench.score(c["model"], c["x"], None, c["maps"], [name], masks=c["masks"], regions=c["regions"],
                          region_top_level=c["top"], method=METHOD["name"], method_params=METHOD["params"],
                          params={name: params}, data_mean=c["mean"], seed=SUITE["seed"], ids=c["ids"],
                          batch_size=c["batch"], method_batch_size=SUITE["batch_size"])
    cell = stored.scores("synthetic-lesions", "small-cnn", "integrated-gradients", name)
    assert list(cell) == sorted(c["ids"]), f"{name}: the CLI stored no scores ({stored.summary.failed})"
    theirs = np.array([cell[i] for i in c["ids"]])
    np.testing.assert_allclose(ours[name], theirs, rtol=0, atol=1e-12, equal_nan=True)


def test_explain_gives_the_maps_the_suite_cached(stored: xaibench.Results) -> None:
    c = stored.cached  # type: ignore[attr-defined]
    maps = xaibench.explain(c["model"], c["x"], method=METHOD["name"], data_mean=c["mean"], seed=SUITE["seed"],
                            ids=c["ids"], batch_size=SUITE["batch_size"], **METHOD["params"])
    np.testing.assert_array_equal(maps, c["maps"])


def test_results_views_agree_with_the_store(stored: xaibench.Results) -> None:
    frame = stored.to_pandas()
    ok = [r for r in stored.cells if r.status == "ok"]
    assert len(frame) == sum(r.n_total for r in ok)
    blocks = stored.leaderboard()
    assert next((b.dataset, b.model) for b in blocks) == ("synthetic-lesions", "small-cnn")
    assert "<table>" in stored._repr_html_() and "integrated-gradients" in stored._repr_html_()
    assert stored.verdicts and "synthetic-lesions" in stored.markdown()


# -- a user's own model and maps -------------------------------------------------------------------
N, S = 4, 16


def _user() -> tuple[nn.Module, torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(N, 1, S, S, generator=g)
    maps = torch.rand(N, S, S, generator=g)
    masks = torch.zeros(N, S, S, dtype=torch.bool)
    masks[:, 4:9, 5:11] = True
    return tiny_model("image", num_classes=3), x, maps, masks


def test_scores_of_a_users_maps_equal_the_definitions_by_hand() -> None:
    """Hit rate without tolerance (the peak in the mask) and relevance mass (positive mass inside / total)."""
    model, x, maps, masks = _user()
    maps[0, 5, 6] = 5.0  # sample 0: peak inside the mask
    maps[1, 0, 0] = 5.0  # sample 1: peak outside
    s = xaibench.score(model, x, [0, 1, 2, 0], maps, ["hit-rate", "relevance-mass"], masks=masks,
                       params={"hit-rate": {"tolerance": 0.0}})
    peaks = maps.flatten(1).argmax(1)
    np.testing.assert_array_equal(s["hit-rate"], masks.flatten(1)[torch.arange(N), peaks].double().numpy())
    assert s["hit-rate"][0] == 1.0 and s["hit-rate"][1] == 0.0
    mass = (maps * masks).flatten(1).sum(1) / maps.flatten(1).sum(1)
    np.testing.assert_allclose(s["relevance-mass"], mass.double().numpy(), rtol=1e-6)
    assert s.summary["hit-rate"][0] == pytest.approx(s["hit-rate"].mean())
    assert s.to_dict()["scores"]["hit-rate"] == s["hit-rate"].tolist()
    frame = s.to_pandas()
    assert list(frame.columns) == ["id", "metric", "score"] and len(frame) == 2 * N


def test_numpy_inputs_coarse_maps_and_a_single_logit_model() -> None:
    """Numpy arrays are accepted; an 8x8 map is upsampled as the runner upsamples a CAM; one logit = two classes."""
    from xaibench.scoring.maps import upsample

    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(S * S, 1)).eval()
    _, x, _, masks = _user()
    coarse = torch.rand(N, 8, 8)
    s = xaibench.score(model, x.numpy(), None, coarse.numpy(), "relevance-mass", masks=masks.numpy())
    full = upsample(coarse, (S, S))
    mass = (full * masks).flatten(1).sum(1) / full.flatten(1).sum(1)
    np.testing.assert_allclose(s["relevance-mass"], mass.double().numpy(), rtol=1e-6)


def test_a_constant_map_scores_nan_and_is_counted_as_in_a_suite() -> None:
    model, x, maps, masks = _user()
    maps[2] = 0.5
    s = xaibench.score(model, x, None, maps, ["relevance-mass"], masks=masks)
    assert np.isnan(s["relevance-mass"][2]) and s.constant_maps["relevance-mass"] == 1
    assert s.summary["relevance-mass"][3] == N - 1


def test_metric_objects_carry_their_spec_and_score_as_score_does() -> None:
    model, x, maps, masks = _user()
    m = xaibench.metric("hit-rate", tolerance=0.0)
    spec = HARNESS.metrics.get("hit-rate")
    assert (m.name, m.direction, m.category, m.citation) == ("hit-rate", "higher", "localization", spec.citation)
    assert m.params == {**spec.defaults, "tolerance": 0.0}
    np.testing.assert_array_equal(m(model, x, None, maps, masks=masks),
                                  xaibench.score(model, x, None, maps, ["hit-rate"], masks=masks,
                                                 params={"hit-rate": {"tolerance": 0.0}})["hit-rate"])
    assert xaibench.metric("deletion-auc").direction == "lower"


def test_a_callable_method_is_validated_and_upsampled_like_a_registered_one() -> None:
    from xaibench.scoring.maps import upsample

    model, x, _, _ = _user()

    def coarse(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return inputs[:, 0, ::2, ::2] * (1 + targets[:, None, None])

    maps = xaibench.explain(model, x, [0, 1, 2, 0], method=coarse)
    expected = upsample(x[:, 0, ::2, ::2] * (1 + torch.tensor([0, 1, 2, 0]))[:, None, None], (S, S))
    np.testing.assert_allclose(maps, expected.numpy(), rtol=1e-6)


# -- bad inputs: one line each -----------------------------------------------------------------------
class TupleOut(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.inner = tiny_model("image", num_classes=3)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return x.mean((1, 2, 3))[:, None], self.inner(x)


BAD = {
    "unknown metric": ({"metrics": ["hit-rat"]}, "unknown metric 'hit-rat' (did you mean 'hit-rate'"),
    "unknown parameter": ({"metrics": ["deletion-auc"], "params": {"deletion-auc": {"stepz": 4}}},
                          "metric 'deletion-auc' has no parameter 'stepz' (did you mean 'steps'?)"),
    "params of an unlisted metric": ({"metrics": ["entropy"], "params": {"hit-rate": {}}},
                                     "params name 'hit-rate', which metrics does not list"),
    "integer inputs": ({"inputs": (torch.rand(N, 1, S, S) * 255).to(torch.uint8)}, "inputs are uint8"),
    "no channel axis": ({"inputs": torch.rand(N, S, S)}, "are read as signals (N, C, L)"),
    "five axes too many": ({"inputs": torch.rand(N, 1, 2, 2, S, S)}, "inputs have shape (4, 1, 2, 2, 16, 16)"),
    "NaN inputs": ({"inputs": torch.full((N, 1, S, S), float("nan"))}, "inputs contain NaN"),
    "maps with a channel axis": ({"maps": torch.rand(N, 1, S, S)}, "maps have shape (4, 1, 16, 16)"),
    "maps larger than the input": ({"maps": torch.rand(N, 32, 32)}, "maps have shape (4, 32, 32)"),
    "infinite maps": ({"maps": torch.full((N, S, S), float("inf"))}, "maps contain NaN or infinite"),
    "masks of another size": ({"masks": torch.ones(N, 8, 8, dtype=torch.bool)}, "masks have shape (4, 8, 8)"),
    "masks not 0/1": ({"masks": torch.full((N, S, S), 0.5)}, "masks must be bool or 0/1"),
    "no masks for a localization metric": ({"masks": None}, "'hit-rate' is a localization metric: pass masks="),
    "float targets": ({"targets": torch.zeros(N)}, "targets must be integer class indices"),
    "target out of range": ({"targets": [0, 1, 2, 3]}, "class indices in 0..2"),
    "targets of another length": ({"targets": [0, 1]}, "targets have shape (2,); expected (4,)"),
    "wrong class count": ({"num_classes": 5}, "outputs 3 class score(s) per input but the dataset has 5"),
    "tuple output unnamed": ({"model": TupleOut()}, "returns tuple (0: (2, 1), 1: (2, 3)): pass output_index= "),
    "tuple output, classes known": ({"model": TupleOut(), "num_classes": 3}, "pass output_index=1"),
    "probabilities that are logits": ({"output": "probabilities"}, "is declared `output: probabilities`"),
    "a model without a class axis": ({"model": nn.Flatten(0)}, "returns shape (512,) for 2 inputs"),
    "not a model": ({"model": lambda x: x}, "model must be a torch nn.Module"),
    "bad device": ({"device": "gpu"}, "(did you mean cuda?)"),
    "bad batch size": ({"batch_size": 0}, "batch_size must be at least 1, got 0"),
    "re-explaining without a method": ({"metrics": ["max-sensitivity"]}, "re-explains the inputs: pass method="),
    "not additive": ({"metrics": ["completeness-error"], "method": "saliency"},
                     "not applicable: metric 'completeness-error' compares sums"),
    "user maps not declared additive": ({"metrics": ["completeness-error"]}, "pass additive=True"),
    "a model variant": ({"metrics": ["data-randomization"], "method": "saliency"}, "only a suite trains"),
    "boxes for a mask-only metric": ({"metrics": ["iou"], "ground_truth": "boxes"}, "not applicable: metric 'iou'"),
    "unknown method": ({"metrics": ["max-sensitivity"], "method": "gradcan"}, "did you mean 'gradcam'"),
    "no region top level": ({"metrics": ["graded-hit-rate"], "regions": torch.zeros(N, S, S, dtype=torch.int8)},
                            "pass region_top_level="),
    "ids repeat": ({"ids": ["a"] * N}, "ids are not unique"),
    "data mean per channel": ({"metrics": ["deletion-auc"], "data_mean": [0.1, 0.2]}, "data_mean has 2 values"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_inputs_give_one_line(case: str) -> None:
    change, expected = BAD[case]
    model, x, maps, masks = _user()
    kwargs = {"model": model, "inputs": x, "targets": None, "maps": maps, "metrics": ["hit-rate"], "masks": masks,
              **change}
    with pytest.raises(XaibenchError) as info:
        xaibench.score(**kwargs)
    message = str(info.value)
    assert expected in message, message
    assert "\n" not in message


def test_the_cli_and_the_api_refuse_a_bad_value_with_the_same_line(capsys: pytest.CaptureFixture[str]) -> None:
    from xaibench.api.cli import main

    assert main(["run", "--suite", "quick", "--batch-size", "0"]) == 2
    cli_line = capsys.readouterr().err.strip().removeprefix("error: ")
    with pytest.raises(XaibenchError) as info:
        xaibench.run("quick", batch_size=0, store="unused.sqlite")
    assert str(info.value) == cli_line.replace("--batch-size", "batch_size")
    with pytest.raises(XaibenchError, match=r"unknown suite 'quik' \(did you mean 'quick'\?\)"):
        xaibench.run("quik")


def test_explain_refuses_a_model_the_methods_rules_do_not_cover(monkeypatch: pytest.MonkeyPatch) -> None:
    """``MethodSpec.covers``: an uncovered model gets one line, never a map under the method's name."""
    picky = MethodSpec(name="relu-only", explain=lambda model, x, t, ctx: x[:, 0], modalities=frozenset({"image"}),
                       description="a rule for ReLU only",
                       covers=lambda m: None if any(isinstance(k, nn.ReLU) for k in m.modules())
                       else "relu-only is defined for ReLU networks; this one uses Tanh")

    class Plugin:
        @xaibench.hookimpl
        def xaibench_register_methods(self, register):  # type: ignore[no-untyped-def]
            register(picky)

    monkeypatch.setattr(user_methods, "installed", lambda: load_harness([("picky", Plugin())]))
    _, x, maps, _ = _user()
    tanh = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.Tanh(), nn.Flatten(), nn.Linear(2 * S * S, 3)).eval()
    for call in (lambda: xaibench.explain(tanh, x, method="relu-only"),
                 lambda: xaibench.score(tanh, x, None, maps, ["max-sensitivity"], method="relu-only")):
        with pytest.raises(XaibenchError, match=r"^not applicable: relu-only is defined for ReLU networks; this one "
                                                r"uses Tanh$"):
            call()
    relu = tiny_model("image", num_classes=3)
    np.testing.assert_array_equal(xaibench.explain(relu, x, method="relu-only"), x[:, 0].numpy())


def test_explain_asks_for_a_layer_and_names_the_deepest_that_passes() -> None:
    model, x, _, _ = _user()  # tiny_model: three blocks in module '0', two 2x2 pools: 16 px -> 4x4, then pooled
    with pytest.raises(XaibenchError, match=r"^method 'gradcam' explains a layer: pass layer='<dotted name>', such "
                                            r"as '0' \(4x4\)$"):
        xaibench.explain(model, x, method="gradcam")
    with pytest.raises(XaibenchError, match=r"layer '0.9' is not in the model \(did you mean"):
        xaibench.explain(model, x, method="gradcam", layer="0.9")
    with pytest.raises(XaibenchError, match=r"method 'saliency' takes no target layer"):
        xaibench.explain(model, x, method="saliency", layer="0.2")
    assert xaibench.explain(model, x, method="gradcam", layer="0.2").shape == (N, S, S)


def test_to_pandas_without_pandas_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    model, x, maps, masks = _user()
    s = xaibench.score(model, x, None, maps, "hit-rate", masks=masks)
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(XaibenchError, match=r"^pandas is not installed: pip install 'xaibench\[pandas\]'$"):
        s.to_pandas()



def test_targets_made_under_inference_mode_explain_as_plain_ones() -> None:
    """``model(x).argmax(1)`` under ``torch.inference_mode()`` (a common way to get targets) gives the same maps as
    the same classes made outside it; autograd refused to save such a tensor before."""
    model = tiny_model("image", num_classes=3)
    x = torch.rand(2, 1, 16, 16)
    with torch.inference_mode():
        inferred = model(x).argmax(1)
    plain = inferred.clone()
    assert inferred.is_inference() and not plain.is_inference()
    np.testing.assert_array_equal(xaibench.explain(model, x, inferred, method="saliency"),
                                  xaibench.explain(model, x, plain, method="saliency"))
