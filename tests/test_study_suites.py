"""The seeds' study suites end to end on tiny stand-in data built here, with pre-placed weights files.

Each test reads the built-in suite, overrides only what makes it seconds (image size,
folds, epochs, the costly methods) and runs it through the command line as a user would.
"""
from __future__ import annotations

import dataclasses
import gzip
import hashlib
import json
import os
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from PIL import Image
from xaibench_medical import mnist
from xaibench_models import weights
from xaibench_suites.plugin import SUITE_DIR

from tests.test_pretrained import published
from xaibench.api import cli
from xaibench.data.download import Release


def overridden(name: str, tmp_path: Path, top: dict[str, Any], models: dict[str, Any] | None = None,
               methods: list[Any] | None = None) -> Path:
    """The built-in suite ``name`` with top-level keys, every model's ``train:`` keys and the methods replaced."""
    doc = yaml.safe_load((SUITE_DIR / f"{name}.yaml").read_text())
    doc.update(top)
    for m in doc["models"]:
        m.setdefault("train", {}).update(models or {})
    if methods is not None:
        doc["methods"] = methods
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def place_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, archs: dict[str, dict[str, Any]]) -> None:
    """Random torchvision weights for ``archs`` placed in $TORCH_HOME's hub cache, as torchvision would have left them."""
    hub = tmp_path / "torch" / "hub" / "checkpoints"
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    for arch, kwargs in archs.items():
        path, _ = published(hub, arch, **kwargs)
        monkeypatch.setitem(weights.IMAGENET, arch, f"https://download.pytorch.org/models/{path.name}")


def run(suite: Path, tmp_path: Path, *extra: str) -> dict[str, Any]:
    out = tmp_path / "out"
    assert cli.main(["run", "--suite", str(suite), "--store", str(tmp_path / "r.db"), "--no-progress", "--no-figures",
                     "--out", str(out), *extra]) == 0
    return json.loads((out / f"{suite.stem}.json").read_text())


def skin_folder(root: Path) -> None:
    """Two classes x 4 RGB images with region maps (levels 3..-1 stored as 4..0): level 3 in a band, -1 below."""
    rng = np.random.default_rng(0)
    for c in ("healthy", "lesion"):
        d = root / "skin-ultrasound" / c
        d.mkdir(parents=True)
        for k in range(4):
            img = rng.integers(0, 80, (48, 48, 3), dtype=np.uint8)
            img[16:24] += np.uint8(120 if c == "lesion" else 40)
            Image.fromarray(img).save(d / f"s{k}.png")
            levels = np.full((48, 48), 1, np.uint8)
            levels[16:24], levels[24:] = 4, 0
            Image.fromarray(levels).save(d / f"s{k}_regions.png")


@pytest.mark.heavy
@pytest.mark.skipif(not os.environ.get("XAIBENCH_HEAVY"), reason="four torchvision networks x 2 folds: minutes on a "
                    "CPU; set XAIBENCH_HEAVY=1")
def test_skin_ultrasound_suite(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    place_weights(tmp_path, monkeypatch, {"densenet201": {}, "googlenet": {"aux_logits": True, "init_weights": True},
                                          "mobilenet_v2": {}, "resnet101": {}})
    skin_folder(tmp_path / "data")
    # three of the nine scores (one per kind: graded hit rate, DiC, an IiC cover) keep the stand-in to minutes
    suite = overridden("skin-ultrasound", tmp_path, {"image_size": 128, "folds": 2,
                                                     "metrics": ["graded-hit-rate", "dic", "iic-mask-important"]},
                       {"epochs": 1, "frozen_epochs": 1, "batch_size": 4, "min_epochs": 0, "patience": 0},
                       methods=["gradcam", "random"])
    doc = run(suite, tmp_path, "--data-root", str(tmp_path / "data"))
    blocks = {(b["dataset"], b["model"]) for b in doc["blocks"]}
    for model in ("densenet201", "googlenet", "mobilenet_v2", "resnet101"):
        assert {(f"skin-ultrasound fold {k}/2", model) for k in (1, 2)} <= blocks
        assert ("skin-ultrasound (pooled over 2 folds)", model) in blocks
    pooled = next(b for b in doc["blocks"] if b["dataset"].endswith("folds)") and b["model"] == "resnet101")
    assert pooled["samples"] == 8 and set(pooled["evaluation"]) >= {"accuracy", "precision", "recall", "f1"}
    cells = next(r for r in pooled["rows"] if r["method"] == "gradcam")["cells"]
    assert {"graded-hit-rate", "dic", "iic-mask-important"} <= set(cells)
    assert all(c["status"] == "ok" for c in cells.values())


def kather_folder(root: Path) -> None:
    """The Kather release's layout: <NN_CLASS>/*.tif tiles, 2 classes x 6 tiles."""
    rng = np.random.default_rng(0)
    for k, c in enumerate(("01_TUMOR", "02_STROMA")):
        d = root / "Kather_texture_2016_image_tiles_5000" / c
        d.mkdir(parents=True)
        for n in range(6):
            tile = rng.integers(0, 60, (40, 40, 3), dtype=np.uint8) + np.uint8(100 * k)
            Image.fromarray(tile).save(d / f"t{n}.tif")


@pytest.mark.heavy
@pytest.mark.skipif(not os.environ.get("XAIBENCH_HEAVY"), reason="SISE on VGG-16: minutes on a CPU; set XAIBENCH_HEAVY=1")
def test_histology_suite_runs_sise_and_ig_on_kather_tiles(tmp_path: Path) -> None:
    # stand-in: VGG-16 with the small GAP head from random weights (the 528 MB weights file is the heavy test's)
    kather_folder(tmp_path / "data")
    doc = yaml.safe_load((SUITE_DIR / "histology.yaml").read_text())
    assert doc["models"][0]["weights"] == "imagenet" and {m if isinstance(m, str) else m["name"]
                                                          for m in doc["methods"]} >= {"sise", "integrated-gradients"}
    model = {"name": "vgg16", "params": {"head": "gap"},
             "train": {"epochs": 1, "batch_size": 4, "min_epochs": 0, "patience": 0}}
    suite = overridden("histology", tmp_path, {"image_size": 32, "samples": 4, "models": [model]},
                       methods=[{"name": "sise", "params": {}}, {"name": "integrated-gradients",
                                                               "params": {"n_steps": 4}}, "random"])
    result = run(suite, tmp_path, "--data-root", str(tmp_path / "data"))
    rows = {r["method"]: r["cells"] for r in result["blocks"][0]["rows"]}
    assert set(rows) == {"sise", "integrated-gradients", "random"}
    assert all(c["status"] == "ok" for r in rows.values() for c in r.values())


def mnist_release(folder: Path, n: int = 30) -> dict[str, str]:
    """The four MNIST IDX files (gzipped, the release's format) of ``n`` images each; their MD5s by file name."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    md5 = {}
    for prefix in ("train", "t10k"):
        y = np.arange(n) % 10
        x = rng.integers(0, 40, (n, 28, 28), dtype=np.uint8)
        for i, label in enumerate(y):  # a bright stroke whose row encodes the class
            x[i, 2 + 2 * label : 4 + 2 * label, 4:24] = 255
        for name, body in ((f"{prefix}-images-idx3-ubyte.gz", struct.pack(">IIII", 2051, n, 28, 28) + x.tobytes()),
                           (f"{prefix}-labels-idx1-ubyte.gz", struct.pack(">II", 2049, n) + y.astype(np.uint8).tobytes())):
            (folder / name).write_bytes(gzip.compress(body, mtime=0))
            md5[name] = hashlib.md5((folder / name).read_bytes()).hexdigest()
    return md5


def test_digits_occlusion_suite_downloads_mnist_with_pinned_md5s(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    md5 = mnist_release(tmp_path / "served")
    releases = tuple(Release(url=r.url, filename=r.filename, checksum=f"md5:{md5[Path(r.filename).name]}")
                     for r in mnist.SOURCE.downloads)
    monkeypatch.setattr(mnist, "SOURCE", dataclasses.replace(mnist.SOURCE, downloads=releases))
    full = yaml.safe_load((SUITE_DIR / "digits-occlusion.yaml").read_text())["methods"]
    suite = overridden("digits-occlusion", tmp_path, {"samples": 6, "datasets": [{"name": "mnist", "params": {"val": 0.34}}]},
                       {"epochs": 1, "batch_size": 8, "min_epochs": 0, "patience": 0},
                       methods=[full[0], full[5], {"name": "integrated-gradients", "params": {"n_steps": 4}}, "random"])
    data = ["--data-root", str(tmp_path / "data")]
    assert cli.main(["run", "--suite", str(suite), "--store", str(tmp_path / "r.db"), *data]) == 2
    assert "pass --download to fetch mnist/" in capsys.readouterr().err
    doc = run(suite, tmp_path, *data, "--download", "--mirror", (tmp_path / "served").as_uri())
    rows = {r["method"]: r["cells"] for r in doc["blocks"][0]["rows"]}
    # completeness presumes additive attributions: not applicable to the random baseline (skipped, not ranked);
    # completeness and sensitivity-n are defined against the method's own baseline, which the metric's fill cannot
    # be for blur-filled occlusion (full[5]): not applicable there, with that reason; every other cell is scored
    blur = full[5]["label"]
    assert len(rows) == 4 and all(
        c["status"] == "ok"
        or (m == "random" and c["status"] == "skipped" and "not produce additive attributions" in c["detail"])
        or (m == blur and metric in ("completeness-error", "sensitivity-n") and c["status"] == "skipped"
            and "which the metric's fill cannot take" in c["detail"])
        for m, r in rows.items() for metric, c in r.items())
    assert rows[blur]["deletion-auc"]["status"] == "ok"
    assert "MNIST 28x28" in doc["header"]["datasets"]["mnist"]["notes"]


def test_localization_supervision_suite(tmp_path: Path) -> None:
    """Seed 002: both branch designs transferred from an annotated source, their target-only twins, a classic CNN
    with post-hoc methods, all on the target in one leaderboard (the built-in data at 32 px, a few images)."""
    doc = yaml.safe_load((SUITE_DIR / "localization-supervision.yaml").read_text())
    fast = {"epochs": 1, "min_epochs": 0, "patience": 0, "batch_size": 8}
    sources = [m["fine_tune_from"] for m in doc["models"] if "fine_tune_from" in m]
    assert len(sources) == 2 and {m["params"]["branch"] for m in doc["models"] if "params" in m} == {"conv1x1",
                                                                                                     "attention"}
    for m in doc["models"]:
        m["train"].update(fast)
        m.setdefault("params", {})["width"] = 4
    for source in sources:
        source.update(params={"n_train": 16, "n_val": 6, "n_test": 6}, train=fast)
    target = doc["datasets"][0]
    target["params"].update(n_train=12, n_val=6, n_test=6)
    doc.update(image_size=32, samples=6, methods=["supervised-saliency", "gradcam", "random"], metrics=["hit-rate"])
    path = tmp_path / "localization-supervision.yaml"
    path.write_text(yaml.safe_dump(doc))
    result = run(path, tmp_path)
    blocks = {b["model"]: b for b in result["blocks"] if b["dataset"] == target["label"]}
    assert set(blocks) == {m["label"] for m in doc["models"]}
    for label, block in blocks.items():
        cells = {r["method"]: r["cells"] for r in block["rows"]}
        branch = cells["supervised-saliency"]["hit-rate"]
        assert (branch["status"] == "ok") is (label != "small-cnn (classic)"), (label, branch)
        assert cells["gradcam"]["hit-rate"]["status"] == "ok"
