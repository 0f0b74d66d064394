"""A suite on a segmenter (issue 41): trained by the harness with Dice + cross-entropy, evaluated for Dice and IoU,
its cells scored per sample for the suite's region target; the stored scores are the ones xaibench.score and
xaibench.explain give for the same region target, and the board shows the segmenter's quality and its gate."""
from __future__ import annotations

import numpy as np
import pytest

import xaibench
from xaibench.leaderboard.verdict import verdicts
from xaibench.contract.outputs import dense, unwrap
from xaibench.contract.plugins import load_harness
from xaibench.api.results import resolve_suite, run_suite
from xaibench.running.runner import RunOptions
from xaibench.storage.store import Store

TARGET = {"region": "predicted", "class": 1, "reduce": "sum"}
SUITE = {"name": "seg-tiny", "seed": 0, "samples": 8, "image_size": 32, "target": TARGET,
         "datasets": [{"name": "synthetic-lesions", "params": {"n_train": 128, "n_val": 32, "n_test": 24}}],
         "models": [{"name": "small-unet", "params": {"width": 8, "depth": 2}, "train": {"epochs": 8, "batch_size": 8}}],
         "methods": ["gradcam", "random", "ground-truth"],
         "metrics": ["hit-rate", "relevance-mass"]}


@pytest.fixture(scope="module")
def seg_run(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    root = tmp_path_factory.mktemp("seg")
    harness = load_harness()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XAIBENCH_HOME", str(root / "home"))
        with Store(root / "r.sqlite") as store:
            results = run_suite(harness, resolve_suite(harness, SUITE), store, RunOptions(progress=False))
            runner = results.runner
            ds, mo = runner.datasets[0], runner.models[0]
            model = runner.trained_model(ds, mo)
            evaluation = store.model_evaluation(runner.model_key(ds, mo))
            checks = verdicts(store, "seg-tiny")[0].checks
            cells = list(results.cells)
            stored = {(c.method, c.metric): results.scores("synthetic-lesions", "small-unet", c.method, c.metric)
                      for c in cells}
        yield model, runner.evaluated_samples(ds), evaluation, checks, cells, stored


def test_the_segmenter_is_trained_evaluated_and_gated(seg_run) -> None:  # type: ignore[no-untyped-def]
    model, _, evaluation, checks, cells, _ = seg_run
    assert dense(model)
    assert evaluation["task"] == "segmentation" and evaluation["n"] == 24
    assert evaluation["dice"] > evaluation["background_dice"] and evaluation["gate"]["learned"]
    assert [c.name for c in checks if c.name == "segmenter above background"] == ["segmenter above background"]
    assert all(c.status == "ok" for c in cells), [c.detail for c in cells if c.status != "ok"]


def test_stored_scores_equal_score_and_explain_for_the_same_region_target(seg_run) -> None:  # type: ignore[no-untyped-def]
    model, samples, _, _, _, stored = seg_run
    net = unwrap(model)
    # samples whose predicted region is empty have no region score: NaN in the store, refused by the API
    logits = model(samples.x).detach()
    lesion = (logits.argmax(1) == 1).flatten(1).any(1).numpy()
    assert lesion.any() and (~lesion).any()
    ids = [i for i, keep in zip(samples.ids, lesion) if keep]
    x, masks = samples.x[lesion], samples.masks[lesion]
    maps = xaibench.explain(net, x, TARGET, method="gradcam", layer="bottleneck", ids=ids, num_classes=2)
    scores = xaibench.score(net, x, TARGET, maps, ["hit-rate", "relevance-mass"], masks=masks, ids=ids,
                            num_classes=2)
    for metric in ("hit-rate", "relevance-mass"):
        values = stored[("gradcam", metric)]
        np.testing.assert_allclose([values[i] for i in ids], scores[metric], rtol=1e-5, atol=1e-6)
        assert all(np.isnan(values[i]) for i, keep in zip(samples.ids, lesion) if not keep)
    truth = stored[("ground-truth", "relevance-mass")]  # 1 on a lesion, undefined on an image without one
    np.testing.assert_allclose([truth[i] for i in ids], np.where(masks.flatten(1).any(1).numpy(), 1.0, np.nan))
