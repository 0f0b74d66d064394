"""The real-data plugins on tiny fixtures in each supported layout, plus the real BUSI copy when present."""
from __future__ import annotations

import csv
import hashlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from xaibench_medical.busi import load_busi
from xaibench_medical.common import stratified_split
from xaibench_medical.imagefolder import load_imagefolder
from xaibench_medical.kather import load_kather
from xaibench_medical.medmnist import load_medmnist

from xaibench.base.errors import XaibenchError
from xaibench.contract.plugins import load_harness
from xaibench.running.runner import Runner, RunOptions
from xaibench.contract.specs import DatasetRequest
from xaibench.storage.store import Store
from xaibench.suites.suite import load_suite

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _request(root: Path | None, image_size: int | None = 16, **params: object) -> DatasetRequest:
    return DatasetRequest(params=params, seed=0, image_size=image_size, data_root=None if root is None else str(root))


def _png(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array.astype(np.uint8)).save(path)
    return path


def _lesion(h: int, w: int, box: tuple[int, int, int, int]) -> np.ndarray:
    m = np.zeros((h, w), np.uint8)
    r0, r1, c0, c1 = box
    m[r0:r1, c0:c1] = 255
    return m


def _original_busi(root: Path, per_class: int = 4) -> Path:
    """``Dataset_BUSI_with_GT`` with images of varying size; one benign image has two lesion masks."""
    folder = root / "Dataset_BUSI_with_GT"
    rng = np.random.default_rng(0)
    for label in ("benign", "malignant", "normal"):
        for n in range(1, per_class + 1):
            h, w = 40 + 4 * n, 32
            _png(folder / label / f"{label} ({n}).png", rng.integers(0, 256, (h, w, 3)))
            box = (0, 0, 0, 0) if label == "normal" else (4, 20, 4, 16)
            _png(folder / label / f"{label} ({n})_mask.png", _lesion(h, w, box))
    _png(folder / "benign" / "benign (1)_mask_1.png", _lesion(44, 32, (30, 44, 16, 32)))
    return folder


def _processed_busi(root: Path) -> Path:
    folder = root / "busi256"
    rng = np.random.default_rng(1)
    rows = []
    for label in ("benign", "malignant", "normal"):
        for n in range(1, 5):
            img = _png(folder / label / f"{label}_{n:03d}.png", rng.integers(0, 256, (32, 32)))
            mask = _png(folder / label / f"{label}_{n:03d}_mask.png",
                        _lesion(32, 32, (0, 0, 0, 0) if label == "normal" else (8, 24, 8, 24)))
            rows.append({"image": img.relative_to(folder).as_posix(), "mask": mask.relative_to(folder).as_posix(),
                         "label": label, "source": f"{label} ({n}).png", "n_lesions": int(label != "normal"),
                         "lesion_fraction": 0.25 * (label != "normal"),
                         "sha256_image": hashlib.sha256(img.read_bytes()).hexdigest(),
                         "sha256_mask": hashlib.sha256(mask.read_bytes()).hexdigest()})
    with open(folder / "manifest.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return folder


def test_original_busi_layout_merges_masks_resizes_and_splits(tmp_path: Path) -> None:
    _original_busi(tmp_path)
    bundle = load_busi(_request(tmp_path, test=0.25, val=0.25))
    assert bundle.class_names == ("benign", "malignant", "normal") and bundle.in_channels == 1
    assert bundle.spatial == (16, 16)
    assert (len(bundle.train), len(bundle.val), len(bundle.test)) == (6, 3, 3)
    every = {i: s for s in (bundle.train, bundle.val, bundle.test) for i in s.ids}
    assert set(every) == {f"{c}/{c} ({n}).png" for c in ("benign", "malignant", "normal") for n in range(1, 5)}
    for split in (bundle.train, bundle.val, bundle.test):
        assert sorted(np.bincount(split.y.numpy(), minlength=3).tolist()) == [len(split) // 3] * 3  # stratified
        for i, sid in enumerate(split.ids):
            m = split.masks[i].numpy()
            if sid.startswith("normal"):
                assert not m.any()
            elif sid == "benign/benign (1).png":  # two lesions: top-left box OR bottom-right box
                assert m[2:6, 2:7].all() and m[12:, 9:].all() and not m[12:, :7].any()
            else:
                assert m[2:6, 2:7].all() and not m[12:, 9:].any()
    assert float(bundle.train.x.min()) >= 0 and float(bundle.train.x.max()) <= 1
    again = load_busi(_request(tmp_path, test=0.25, val=0.25))
    assert again.test.ids == bundle.test.ids  # seeded
    assert load_busi(_request(tmp_path, test=0.25, val=0.25, seed=5)).test.ids != bundle.test.ids


def test_processed_busi_verifies_checksums_and_shares_ids_with_the_original(tmp_path: Path) -> None:
    folder = _processed_busi(tmp_path)
    bundle = load_busi(_request(tmp_path, image_size=None))
    assert bundle.spatial == (32, 32)  # no image_size: native size of the copy
    assert "benign/benign (1).png" in bundle.train.ids + bundle.val.ids + bundle.test.ids
    area = {sid: bool(m.any()) for s in (bundle.train, bundle.test) for sid, m in zip(s.ids, s.masks)}
    assert all(v == (not k.startswith("normal")) for k, v in area.items())
    victim = folder / "malignant" / "malignant_002.png"
    _png(victim, np.zeros((32, 32)))  # a valid PNG whose bytes differ from the manifest
    with pytest.raises(XaibenchError, match=r"malignant_002\.png: sha256 differs"):
        load_busi(_request(tmp_path))
    assert len(load_busi(_request(tmp_path, verify=False)).train) > 0


def test_busi_missing_data_names_layout_and_release(tmp_path: Path) -> None:
    with pytest.raises(XaibenchError, match=r"--data-root.*XAIBENCH_DATA.*Dataset_BUSI_with_GT.*afahmy"):
        load_busi(_request(None))
    with pytest.raises(XaibenchError, match=r"BUSI not found .*busi256.*Expected layout.*Public release"):
        load_busi(_request(tmp_path))


def test_corrupt_image_and_mismatched_mask_are_named(tmp_path: Path) -> None:
    folder = _original_busi(tmp_path, per_class=2)
    img = folder / "malignant" / "malignant (2).png"
    img.write_bytes(img.read_bytes()[:60])  # truncated
    with pytest.raises(XaibenchError, match=r"malignant \(2\)\.png: cannot decode.*corrupt or truncated"):
        load_busi(_request(tmp_path))
    _png(img, np.zeros((48, 32)))
    _png(folder / "malignant" / "malignant (2)_mask.png", np.zeros((10, 10)))
    with pytest.raises(XaibenchError, match=r"malignant \(2\)_mask\.png: mask is 10x10 but its image is 32x48"):
        load_busi(_request(tmp_path))


def test_kather_layout_rgb_stratified_and_no_masks(tmp_path: Path) -> None:
    folder = tmp_path / "Kather_texture_2016_image_tiles_5000"
    rng = np.random.default_rng(2)
    names = ("01_TUMOR", "02_STROMA", "03_COMPLEX", "04_LYMPHO", "05_DEBRIS", "06_MUCOSA", "07_ADIPOSE", "08_EMPTY")
    for d in names:
        for n in range(5):
            path = folder / d / f"tile_{n}.tif"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 256, (20, 20, 3)).astype(np.uint8)).save(path)
    bundle = load_kather(_request(tmp_path, image_size=None, val=0.2, test=0.2))
    assert bundle.class_names[:2] == ("tumor", "stroma") and bundle.num_classes == 8
    assert bundle.in_channels == 3 and bundle.spatial == (20, 20) and bundle.test.masks is None
    assert np.bincount(bundle.test.y.numpy()).tolist() == [1] * 8
    assert "01_TUMOR/tile_0.tif" in bundle.train.ids + bundle.val.ids + bundle.test.ids
    capped = load_kather(_request(tmp_path, max_per_class=3, val=0.2, test=0.4))
    assert len(capped.train) + len(capped.val) + len(capped.test) == 24 and capped.spatial == (16, 16)


def test_runner_skips_localization_cells_on_kather_with_a_reason(tmp_path: Path) -> None:
    folder = tmp_path / "data" / "Kather_texture_2016_image_tiles_5000"
    for d in ("01_TUMOR", "02_STROMA"):
        for n in range(6):
            _png(folder / d / f"t{n}.png", np.full((8, 8, 3), 40 * n))
    suite = tmp_path / "s.yaml"
    suite.write_text("name: k\nimage_size: 8\nsamples: 4\ndatasets: [kather2016]\nmodels: [small-cnn]\n"
                     "methods: [random]\nmetrics: [dic, hit-rate]\n")
    with Store(tmp_path / "r.sqlite") as store:
        runner = Runner(load_harness(), load_suite(suite), store,
                        RunOptions(data_root=str(tmp_path / "data"), progress=False))
        reasons = {c.row.metric: c.row.skip_reason for c in runner.plan()}
    assert reasons["dic"] is None
    assert reasons["hit-rate"] == "dataset 'kather2016' has no masks: localization metric 'hit-rate' skipped"


def _medmnist_npz(path: Path, rgb: bool, n: int = 12, side: int = 28, **extra: np.ndarray) -> Path:
    rng = np.random.default_rng(3)
    arrays = {}
    for split in ("train", "val", "test"):
        shape = (n, side, side, 3) if rgb else (n, side, side)
        arrays[f"{split}_images"] = rng.integers(0, 256, shape).astype(np.uint8)
        arrays[f"{split}_labels"] = (np.arange(n) % 3).reshape(n, 1)
    arrays.update(extra)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays)
    return path


def test_medmnist_uses_official_splits_at_any_resolution(tmp_path: Path) -> None:
    _medmnist_npz(tmp_path / "medmnist" / "breastmnist.npz", rgb=False)
    _medmnist_npz(tmp_path / "medmnist" / "pathmnist_64.npz", rgb=True, side=64)
    gray = load_medmnist(_request(tmp_path, image_size=None, flag="breastmnist"))
    assert gray.spatial == (28, 28) and gray.in_channels == 1 and len(gray.val) == 12
    assert gray.test.ids[0] == "breastmnist/test/000000" and gray.num_classes == 3
    rgb = load_medmnist(_request(tmp_path, image_size=32, flag="pathmnist", size=64))
    assert rgb.spatial == (32, 32) and rgb.in_channels == 3
    npz = np.load(tmp_path / "medmnist" / "pathmnist_64.npz")
    expected = npz["train_images"][0].reshape(32, 2, 32, 2, 3).mean(axis=(1, 3)).transpose(2, 0, 1) / 255
    np.testing.assert_allclose(rgb.train.x[0].numpy(), expected, atol=1e-5)  # area interpolation
    capped = load_medmnist(_request(tmp_path, flag="breastmnist", max_per_split=6, class_names=["a", "b", "c"]))
    assert len(capped.train) == 6 and np.bincount(capped.train.y.numpy()).tolist() == [2, 2, 2]
    assert capped.class_names == ("a", "b", "c")


def test_medmnist_errors(tmp_path: Path) -> None:
    with pytest.raises(XaibenchError, match=r"MedMNIST not found.*dermamnist\.npz.*zenodo"):
        load_medmnist(_request(tmp_path, flag="dermamnist"))
    with pytest.raises(TypeError, match="needs a 'flag'"):
        load_medmnist(_request(tmp_path))
    _medmnist_npz(tmp_path / "chestmnist.npz", rgb=False, train_labels=np.zeros((12, 14), np.uint8))
    with pytest.raises(XaibenchError, match="multi-label"):
        load_medmnist(_request(tmp_path, flag="chestmnist"))
    broken = tmp_path / "medmnist" / "octmnist.npz"
    broken.parent.mkdir(exist_ok=True)
    broken.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(XaibenchError, match=r"octmnist\.npz: cannot read it"):
        load_medmnist(_request(tmp_path, flag="octmnist"))


def _folder_with_sidecars(root: Path) -> Path:
    """Two classes of 24x24 RGB images; masks beside some, in a parallel folder for others; region maps."""
    rng = np.random.default_rng(4)
    for cls in ("healthy", "lesion"):
        for n in range(4):
            _png(root / "skin" / cls / f"img{n}.jpg" if n == 0 else root / "skin" / cls / f"img{n}.png",
                 rng.integers(0, 256, (24, 24, 3)))
            levels = np.repeat(np.array([0, 1, 2, 3, 4, 4])[:, None], 24, 1).repeat(4, 0)  # stored 0..4
            _png(root / "regions" / cls / f"img{n}.png", levels)
        _png(root / "skin" / cls / "img1_mask.png", _lesion(24, 24, (0, 12, 0, 12)))
        _png(root / "masks" / cls / "img2.png", _lesion(24, 24, (12, 24, 12, 24)))
    return root / "skin"


def test_imagefolder_masks_beside_and_parallel_and_graded_regions(tmp_path: Path) -> None:
    _folder_with_sidecars(tmp_path)
    bundle = load_imagefolder(_request(tmp_path, image_size=12, path="skin", masks_dir="masks", regions_dir="regions",
                                       region_offset=1, val=0.25, test=0.25))
    assert bundle.class_names == ("healthy", "lesion") and bundle.in_channels == 3
    assert bundle.region_top_level == 3
    samples = {sid: (s.masks[i], s.regions[i]) for s in (bundle.train, bundle.val, bundle.test)
               for i, sid in enumerate(s.ids)}
    assert set(samples) == {f"{c}/img{n}.{'jpg' if n == 0 else 'png'}" for c in ("healthy", "lesion") for n in range(4)}
    mask1, regions = samples["lesion/img1.png"]
    assert mask1[:6, :6].all() and not mask1[6:, :].any()
    assert samples["lesion/img2.png"][0][6:, 6:].all() and not samples["lesion/img0.jpg"][0].any()
    assert regions[:, 0].tolist() == [-1, -1, 0, 0, 1, 1, 2, 2, 3, 3, 3, 3]  # levels 3..-1, nearest-resized
    assert "masks for 4 of 8 images" in bundle.notes


def test_imagefolder_without_masks_and_its_errors(tmp_path: Path) -> None:
    for cls in ("a", "b"):
        for n in range(4):
            _png(tmp_path / "plain" / cls / f"{n}.png", np.full((10, 10), 30 * n))
    plain = load_imagefolder(_request(tmp_path, image_size=None, path="plain"))
    assert plain.test.masks is None and plain.test.regions is None and plain.in_channels == 1
    _png(tmp_path / "plain" / "a" / "odd.png", np.zeros((12, 10)))
    with pytest.raises(XaibenchError, match=r"different sizes.*set image_size"):
        load_imagefolder(_request(tmp_path, image_size=None, path="plain"))
    _png(tmp_path / "plain" / "a" / "0_regions.png", np.zeros((10, 10)))
    with pytest.raises(XaibenchError, match=r"region maps are given for some images but not for a/1\.png"):
        load_imagefolder(_request(tmp_path, path="plain"))
    with pytest.raises(XaibenchError, match=r"image folder not found"):
        load_imagefolder(_request(tmp_path, path="nowhere"))
    with pytest.raises(XaibenchError, match=r"escapes the data root"):
        load_imagefolder(_request(tmp_path / "plain", path="../elsewhere"))
    with pytest.raises(XaibenchError, match=r"must be relative to the data root"):
        load_imagefolder(_request(tmp_path, path=str(tmp_path / "plain")))
    with pytest.raises(TypeError, match="unknown parameter"):
        load_imagefolder(_request(tmp_path, path="plain", colour=True))


def test_stratified_split_is_seeded_disjoint_and_proportional() -> None:
    y = np.repeat([0, 1, 2], [50, 30, 20])
    a, b = stratified_split(y, 0.2, 0.3, 7), stratified_split(y, 0.2, 0.3, 7)
    assert all(np.array_equal(a[s], b[s]) for s in a)
    assert sorted(np.concatenate(list(a.values())).tolist()) == list(range(100))
    assert np.bincount(y[a["test"]]).tolist() == [15, 9, 6] and np.bincount(y[a["val"]]).tolist() == [10, 6, 4]
    assert not np.array_equal(np.sort(a["test"]), np.sort(stratified_split(y, 0.2, 0.3, 8)["test"]))


@pytest.mark.skipif(not (SHARED_DATA / "busi256" / "manifest.csv").exists(),
                    reason=f"the processed BUSI copy is not at {SHARED_DATA / 'busi256'} (it is never committed)")
def test_real_busi256_loads_with_verified_checksums() -> None:
    bundle = load_busi(_request(SHARED_DATA, image_size=32))
    y = np.concatenate([s.y.numpy() for s in (bundle.train, bundle.val, bundle.test)])
    assert np.bincount(y).tolist() == [437, 210, 133]
    test = bundle.test
    lesion = test.masks.reshape(len(test), -1).any(1).numpy()
    assert (lesion == (test.y.numpy() != 2)).all()  # every benign/malignant image has a lesion, normals none
    assert bundle.spatial == (32, 32) and bundle.in_channels == 1
