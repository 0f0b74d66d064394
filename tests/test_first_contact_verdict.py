"""Each leaderboard section's calibration verdict, from its own stored results (issue 21)."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from xaibench import leaderboard
from xaibench.scoring.calibration import calibration_facts
from xaibench.leaderboard import verdict
from xaibench.contract.plugins import load_harness
from xaibench.running.runner import RunOptions, Runner
from xaibench.storage.store import Store
from xaibench.suites.suite import load_suite

SUITE = """
name: t
seed: 0
samples: 16
datasets: [tiny]
models:
  - name: tiny-cnn
{train}
methods: [random, ground-truth]
metrics: [relevance-mass, {{name: hit-rate, label: hit-exact, params: {{tolerance: 0}}}}, hit-rate, dic]
"""
#: conftest's tiny images: every mask is a 4x4 square in a 16x16 image.
MASK_FRACTION = 16 / 256


def _verdict(tmp_path: Path, tiny_plugin, train: str = "") -> tuple[verdict.Verdict, Store]:  # type: ignore[no-untyped-def]
    path = tmp_path / "suite.yaml"
    path.write_text(SUITE.format(train=train))
    store = Store(tmp_path / "r.sqlite")
    Runner(load_harness([("tiny", tiny_plugin)]), load_suite(path), store, RunOptions(progress=False)).run()
    (v,) = verdict.verdicts(store, "t")
    return v, store


def test_a_model_that_learned_with_calibrated_baselines_passes(tmp_path: Path, tiny_plugin) -> None:  # type: ignore[no-untyped-def]
    v, store = _verdict(tmp_path, tiny_plugin)
    facts = store.header("t")["calibration"]
    assert facts["mask_fraction"]["tiny"] == pytest.approx(MASK_FRACTION)
    assert facts["metrics"]["hit-exact"]["chance"] == "mask-fraction"
    assert facts["metrics"]["hit-rate"]["chance"] is None  # a 15 px tolerance: chance is not the mask fraction
    names = [c.name for c in v.checks]
    assert names == ["model above the majority class", "`random` at chance on relevance-mass",
                     "`random` at chance on hit-exact", "`ground-truth` at 1 on relevance-mass",
                     "`ground-truth` at 1 on hit-exact", "`ground-truth` at 1 on hit-rate"]
    assert v.passed, [c.detail for c in v.failures]
    assert any("hit-rate, dic: chance level not known" in why for why in v.not_run)
    assert any("CAM layer size: no CAM method" in why for why in v.not_run)
    text = leaderboard.render(store, "t")
    assert "**Calibration verdict: pass** (6 checks)." in text
    assert verdict.summary_lines(store, "t") == ["calibration verdict tiny × tiny-cnn: pass (6 checks)"]


def test_a_model_at_chance_fails_at_the_top_of_its_section(tmp_path: Path, tiny_plugin) -> None:  # type: ignore[no-untyped-def]
    v, store = _verdict(tmp_path, tiny_plugin, "    train: {epochs: 1, lr: 1.0e-9}")
    e = store.model_evaluation(store.plan("t")[0].model_key)
    assert e["majority"] == 0.5 and e["accuracy"] <= 0.625  # 8 of 16 test samples per class; untrained
    assert not v.passed
    assert [c.name for c in v.failures] == ["model above the majority class"]
    section = leaderboard.render(store, "t").split("## tiny × tiny-cnn", 1)[1].lstrip("\n")
    assert section.startswith("> **⚠ Calibration verdict: FAIL**")
    (line,) = verdict.summary_lines(store, "t")
    assert line.startswith("CALIBRATION VERDICT tiny × tiny-cnn: FAIL: model accuracy")


@pytest.mark.parametrize("stem, side", [("imagenet", 64 // 32), ("small", 64 // 8)])
def test_resnet_stem_sets_the_cam_layer_size_at_64_px(stem: str, side: int, tmp_path: Path) -> None:
    path = tmp_path / "suite.yaml"
    path.write_text(f"""
name: stems
image_size: 64
samples: 2
datasets: [{{name: synthetic-lesions, params: {{n_train: 6, n_val: 3, n_test: 3}}}}]
models: [{{name: resnet18, params: {{stem: {stem}}}}}]
methods: [gradcam, {{name: gradcam, label: gradcam-layer3, params: {{layer: layer3}}}}]
metrics: [dic]
""")
    with Store(tmp_path / "r.sqlite") as store:
        runner = Runner(load_harness(), load_suite(path), store, RunOptions(progress=False))
        facts = calibration_facts(runner)["calibration"]["cam_layers"]["synthetic-lesions × resnet18"]
        model = runner.build_model(runner.datasets[0], runner.models[0])
    # layer4 downsamples 32x (ImageNet stem: stride-2 conv, max-pool, three stride-2 stages) or 8x (small stem)
    assert facts == {"gradcam": [side, side], "gradcam-layer3": [2 * side, 2 * side]}
    assert (model.conv1.kernel_size, model.conv1.stride) == (((7, 7), (2, 2)) if stem == "imagenet" else ((3, 3), (1, 1)))
    assert isinstance(model.maxpool, torch.nn.Identity) == (stem == "small")


def test_the_json_leaderboard_carries_the_verdict(tmp_path: Path, tiny_plugin) -> None:  # type: ignore[no-untyped-def]
    import json

    v, store = _verdict(tmp_path, tiny_plugin, "    train: {epochs: 1, lr: 1.0e-9}")
    (block,) = json.loads(leaderboard.to_json(store, "t"))["blocks"]
    assert block["verdict"]["passed"] is False
    assert [c["name"] for c in block["verdict"]["checks"] if not c["passed"]] == ["model above the majority class"]
