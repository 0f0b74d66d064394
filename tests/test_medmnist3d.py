"""MedMNIST-3D from a tiny .npz built here: official splits, volumes (N, 1, D, H, W), pinned MD5s, --download offer."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from xaibench_medical.medmnist import SOURCE_3D, load_medmnist, load_medmnist3d
from xaibench_medical.medmnist_releases import CLASSES_3D, MD5_3D

from xaibench.data.bundles import check_bundle
from xaibench.base.errors import XaibenchError
from xaibench.contract.specs import DatasetRequest

FLAGS = ("organmnist3d", "nodulemnist3d", "adrenalmnist3d", "fracturemnist3d", "vesselmnist3d", "synapsemnist3d")


def _request(root: Path, image_size: int | None = None, **params: object) -> DatasetRequest:
    return DatasetRequest(params=params, seed=0, image_size=image_size, data_root=str(root))


def _npz(path: Path, side: int = 28, n: int = 6) -> Path:
    rng = np.random.default_rng(0)
    arrays = {}
    for k, split in enumerate(("train", "val", "test")):
        arrays[f"{split}_images"] = rng.integers(0, 256, (n + k, side, side, side)).astype(np.uint8)
        arrays[f"{split}_labels"] = (np.arange(n + k) % 2).reshape(-1, 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays)
    return path


def test_the_six_3d_flags_are_pinned_with_their_class_names() -> None:
    assert set(CLASSES_3D) == set(FLAGS)
    assert set(MD5_3D) == {f"{f}{s}.npz" for f in FLAGS for s in ("", "_64")}
    assert all(len(md5) == 32 and int(md5, 16) >= 0 for md5 in MD5_3D.values())
    assert {r.filename for r in SOURCE_3D.downloads} == {f"medmnist/{n}" for n in MD5_3D}


def test_volumes_load_with_official_splits_and_scaling(tmp_path: Path) -> None:
    path = _npz(tmp_path / "medmnist" / "nodulemnist3d.npz")
    bundle = load_medmnist3d(_request(tmp_path, flag="nodulemnist3d"))
    check_bundle("medmnist3d", bundle)
    assert bundle.modality == "volume" and bundle.spatial == (28, 28, 28) and bundle.in_channels == 1
    assert (len(bundle.train), len(bundle.val), len(bundle.test)) == (6, 7, 8)
    assert bundle.class_names == ("benign", "malignant") and bundle.test.ids[0] == "nodulemnist3d/test/000000"
    with np.load(path) as npz:
        np.testing.assert_allclose(bundle.val.x[3, 0].numpy(), npz["val_images"][3] / 255.0, atol=1e-7)
    assert "NOT the official release" in bundle.notes  # this tiny file's MD5 is not the pinned one


def test_64_cubed_volumes_shrink_by_area(tmp_path: Path) -> None:
    path = _npz(tmp_path / "medmnist" / "vesselmnist3d_64.npz", side=64, n=2)
    bundle = load_medmnist3d(_request(tmp_path, image_size=32, flag="vesselmnist3d", size=64))
    with np.load(path) as npz:
        expected = npz["train_images"][1].reshape(32, 2, 32, 2, 32, 2).mean(axis=(1, 3, 5)) / 255.0
    assert bundle.spatial == (32, 32, 32)
    np.testing.assert_allclose(bundle.train.x[1, 0].numpy(), expected, atol=1e-6)


def test_flags_of_the_other_dimensionality_and_missing_files_are_refused(tmp_path: Path) -> None:
    _npz(tmp_path / "medmnist" / "organmnist3d.npz")
    with pytest.raises(TypeError, match="organmnist3d is a 3D MedMNIST flag: use the medmnist3d dataset"):
        load_medmnist(_request(tmp_path, flag="organmnist3d"))
    with pytest.raises(TypeError, match="breastmnist is a 2D MedMNIST flag: use the medmnist dataset"):
        load_medmnist3d(_request(tmp_path, flag="breastmnist"))
    with pytest.raises(XaibenchError, match=r"MedMNIST-3D not found.*pass --download to fetch "
                                            r"medmnist/synapsemnist3d\.npz \(md5-verified\)"):
        load_medmnist3d(_request(tmp_path, flag="synapsemnist3d"))


def test_the_volumes_suite_plans_on_medmnist3d_with_reasons_for_mask_metrics(tmp_path: Path) -> None:
    """The README's recipe: volumes.yaml with a MedMNIST-3D flag; localization cells are skipped, not faked."""
    import yaml

    from xaibench.contract.plugins import load_harness
    from xaibench.running.runner import RunOptions, Runner
    from xaibench.storage.store import Store
    from xaibench.suites.suite import load_suite

    harness = load_harness()
    suite = yaml.safe_load(Path(harness.suites.get("volumes").path).read_text(encoding="utf-8"))
    suite.update(name="volumes-nodule", image_size=28,
                 datasets=[{"name": "medmnist3d", "params": {"flag": "nodulemnist3d"}}])
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(suite))
    _npz(tmp_path / "data" / "medmnist" / "nodulemnist3d.npz")
    with Store(tmp_path / "r.sqlite") as store:
        runner = Runner(harness, load_suite(path), store, RunOptions(data_root=str(tmp_path / "data"), progress=False))
        reasons = {(c.row.method, c.row.metric): c.row.skip_reason for c in runner.plan()}
    assert reasons[("gradcam", "dic")] is None and reasons[("sise", "deletion-auc")] is None
    assert reasons[("gradcam", "hit-rate")] == "dataset 'medmnist3d' has no masks: localization metric 'hit-rate' skipped"
    assert reasons[("ground-truth", "dic")] is not None  # the oracle needs masks
