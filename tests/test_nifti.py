"""The NIfTI folder reader on tiny volumes written here with nibabel: orientation, layout, spacing, masks."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

nibabel = pytest.importorskip("nibabel")

from xaibench_medical.nifti import load_niftifolder, read_volume  # noqa: E402

from xaibench.data.bundles import check_bundle  # noqa: E402
from xaibench.base.errors import XaibenchError  # noqa: E402
from xaibench.contract.specs import DatasetRequest  # noqa: E402


def _save(path: Path, data: np.ndarray, zooms: tuple[float, float, float], flip_x: bool = False) -> None:
    affine = np.diag([*zooms, 1.0])
    if flip_x:  # stored left-to-right reversed (LAS): canonical RAS+ flips the first axis back
        affine[0, 0] = -zooms[0]
    path.parent.mkdir(parents=True, exist_ok=True)
    nibabel.save(nibabel.Nifti1Image(data, affine), str(path))


def _request(root: Path, image_size: int | None = None, **params: object) -> DatasetRequest:
    return DatasetRequest(params={"path": "vols", **params}, seed=0, image_size=image_size, data_root=str(root))


def test_read_volume_is_canonical_zyx_with_its_spacing(tmp_path: Path) -> None:
    data = np.arange(4 * 5 * 6, dtype=np.float32).reshape(4, 5, 6)  # (x, y, z) as NIfTI stores it
    _save(tmp_path / "a.nii.gz", data, (0.8, 1.0, 2.5), flip_x=True)
    volume, spacing = read_volume(tmp_path / "a.nii.gz")
    assert volume.shape == (6, 5, 4) and spacing == pytest.approx((2.5, 1.0, 0.8))  # float32 header
    np.testing.assert_array_equal(volume, data[::-1].transpose(2, 1, 0))  # x flipped to RAS+, then (z, y, x)


def test_folder_with_masks_spacing_and_window(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    for c in ("healthy", "tumour"):
        for i in range(5):
            vol = rng.normal(40, 300, (8, 8, 8)).astype(np.float32)
            _save(tmp_path / "vols" / c / f"p{i}.nii.gz", vol, (1.0, 1.0, 3.0))
            if c == "tumour" and i < 3:
                mask = np.zeros((8, 8, 8), dtype=np.uint8)
                mask[2:4, 3:5, 1:6] = 1
                _save(tmp_path / "vols" / c / f"p{i}_mask.nii.gz", mask, (1.0, 1.0, 3.0))
    bundle = load_niftifolder(_request(tmp_path, val=0.2, test=0.2, window=[-100, 200]))
    check_bundle("niftifolder", bundle)
    assert bundle.modality == "volume" and bundle.spatial == (8, 8, 8) and bundle.class_names == ("healthy", "tumour")
    assert len(bundle.train) + len(bundle.val) + len(bundle.test) == 10
    assert "voxel spacing 3x1x1 (D x H x W) for 10" in bundle.notes and "masks for 3 of 10" in bundle.notes
    assert 0.0 <= float(bundle.train.x.min()) and float(bundle.train.x.max()) <= 1.0
    everything = [s for s in (bundle.train, bundle.val, bundle.test)]
    masked = {i: m for s in everything for i, m in zip(s.ids, s.masks)}
    expected = np.zeros((8, 8, 8), dtype=bool)
    expected[1:6, 3:5, 2:4] = True  # the stored (x, y, z) box as (z, y, x)
    np.testing.assert_array_equal(masked["tumour/p0.nii.gz"].numpy(), expected)
    assert not masked["healthy/p0.nii.gz"].any()
    resized = load_niftifolder(_request(tmp_path, image_size=4))
    assert resized.spatial == (4, 4, 4) and "before trilinear resizing to 4^3" in resized.notes


def test_mismatched_masks_and_bad_windows_are_refused(tmp_path: Path) -> None:
    for c in ("a", "b"):
        _save(tmp_path / "vols" / c / "v.nii", np.zeros((4, 4, 4), np.float32), (1, 1, 1))
    _save(tmp_path / "vols" / "a" / "v_mask.nii", np.zeros((4, 4, 5), np.uint8), (1, 1, 1))
    with pytest.raises(XaibenchError, match=r"v_mask\.nii: mask of shape \(5, 4, 4\) for a volume of shape"):
        load_niftifolder(_request(tmp_path))
    (tmp_path / "vols" / "a" / "v_mask.nii").unlink()
    with pytest.raises(TypeError, match="window must be"):
        load_niftifolder(_request(tmp_path, window=[5, 1]))
