"""Issue 14, cases 5, 6 and 10: integer inputs, full-bit-depth image files and DICOM, and MedMNIST provenance."""
from __future__ import annotations

import hashlib
from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile
import torch
from conftest import TinyPlugin, load_tiny
from PIL import Image
from xaibench_medical import medmnist_releases
from xaibench_medical.imagefolder import load_imagefolder
from xaibench_medical.medmnist import load_medmnist

from xaibench import hookimpl
from xaibench.base.errors import XaibenchError
from xaibench.data.inputs import as_float32, conform_bundle
from xaibench.contract.plugins import load_harness
from xaibench.running.runner import Runner, RunOptions
from xaibench.contract.specs import DatasetRequest, DatasetSpec
from xaibench.storage.store import Store
from xaibench.suites.suite import load_suite


@pytest.mark.parametrize(("dtype", "lo", "hi"), [(torch.uint8, 0, 255), (torch.int8, -128, 127),
                                                 (torch.int16, -32768, 32767), (torch.uint16, 0, 65535)])
def test_integer_inputs_are_scaled_by_their_dtype_range(dtype: torch.dtype, lo: int, hi: int) -> None:
    x = torch.tensor([lo, hi, 0, 100]).to(dtype)
    expected = torch.tensor([(v - lo) / (hi - lo) for v in (lo, hi, 0, 100)], dtype=torch.float32)
    out = as_float32(x, "x")
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, expected)


def test_floats_are_cast_and_wide_integers_refused() -> None:
    x64 = torch.tensor([0.1, -3.0, 1e6], dtype=torch.float64)
    assert as_float32(x64, "x").dtype == torch.float32 and as_float32(x64, "x").tolist() == x64.float().tolist()
    for dtype in (torch.int32, torch.int64):
        with pytest.raises(XaibenchError, match=f"train inputs are {str(dtype)[6:]}: no image convention"):
            as_float32(torch.zeros(2, dtype=dtype), "train inputs")


class Uint8Data(TinyPlugin):
    """The tiny dataset returned as uint8 images (0..255) with (N, 1) uint8 labels, as a user's loader might."""

    @hookimpl
    def xaibench_register_datasets(self, register):  # type: ignore[no-untyped-def]
        def load(request):  # type: ignore[no-untyped-def]
            b = load_tiny(request)
            dtype = getattr(torch, dict(request.params).get("dtype", "uint8"))
            scale = torch.iinfo(dtype).max

            def conv(s):  # type: ignore[no-untyped-def]
                return type(s)(x=(s.x.clamp(0, 1) * scale).round().to(dtype), y=s.y[:, None].to(torch.uint8),
                               ids=s.ids, masks=s.masks)

            return type(b)(train=conv(b.train), val=conv(b.val), test=conv(b.test), class_names=b.class_names,
                           modality="image")

        register(DatasetSpec(name="tiny-int", load=load, modality="image", has_masks=True, description="uint8"))


@pytest.mark.parametrize("dtype", ["uint8", "int32"])
def test_case6_uint8_dataset_runs_and_int32_is_one_line(tmp_path: Path, dtype: str) -> None:
    path = tmp_path / "suite.yaml"
    path.write_text(f"name: ints\nsamples: 8\ndatasets: [{{name: tiny-int, params: {{dtype: {dtype}}}}}]\n"
                    "models: [tiny-cnn]\nmethods: [input-times-one]\nmetrics: [dic]\n")
    runner = Runner(load_harness([("ints", Uint8Data())]), load_suite(path), Store(tmp_path / "r.sqlite"),
                    RunOptions(progress=False))
    if dtype == "int32":
        with pytest.raises(XaibenchError, match="dataset 'tiny-int': train inputs are int32: no image convention"):
            runner.run()
        return
    assert not runner.run().failed
    bundle = runner.bundle(runner.datasets[0])
    raw = load_tiny(DatasetRequest(params={}, seed=0, image_size=None, data_root=None))
    expected = (raw.train.x.clamp(0, 1) * 255).round() / 255
    torch.testing.assert_close(bundle.train.x, expected)
    assert bundle.train.y.dtype == torch.int64 and bundle.train.y.shape == (64,)


def test_conform_bundle_leaves_float32_alone() -> None:
    b = load_tiny(DatasetRequest(params={}, seed=0, image_size=None, data_root=None))
    assert conform_bundle("tiny", b).train.x is b.train.x


# -- image files ------------------------------------------------------------------------------------

def _request(root: Path, size: int | None = None) -> DatasetRequest:
    return DatasetRequest(params={"path": "f", "val": 0.25, "test": 0.25}, seed=0, image_size=size,
                          data_root=str(root))


def _folder(root: Path, write, images: list[np.ndarray], ext: str) -> dict[str, np.ndarray]:  # type: ignore[no-untyped-def]
    out = {}
    for k, img in enumerate(images):
        label = f"c{k % 2}"
        (root / "f" / label).mkdir(parents=True, exist_ok=True)
        path = root / "f" / label / f"{k}{ext}"
        write(path, img)
        out[f"{label}/{k}{ext}"] = img
    return out


def _all(bundle) -> dict[str, np.ndarray]:  # type: ignore[no-untyped-def]
    return {i: x.numpy() for s in (bundle.train, bundle.val, bundle.test) for i, x in zip(s.ids, s.x)}


def _gray16(n: int = 8) -> list[np.ndarray]:
    """16-bit ultrasound-like images: most values far above 255 (convert("L") would clip 97% of them to 1.0)."""
    rng = np.random.default_rng(0)
    return [rng.integers(300, 65536, (12, 12)).astype(np.uint16) for _ in range(n)]


@pytest.mark.parametrize("ext", [".png", ".tif"])
def test_case5_16bit_grayscale_keeps_full_depth(tmp_path: Path, ext: str) -> None:
    images = _folder(tmp_path, lambda p, a: Image.fromarray(a).save(p), _gray16(), ext)
    got = _all(load_imagefolder(_request(tmp_path)))
    for i, img in images.items():
        np.testing.assert_allclose(got[i][0], img / 65535.0, rtol=1e-6)
    assert max(float((v == 1.0).mean()) for v in got.values()) < 0.01


@pytest.mark.parametrize("ext", [".png", ".tif"])
def test_16bit_rgb_keeps_full_depth_and_channel_order(tmp_path: Path, ext: str) -> None:
    rng = np.random.default_rng(1)
    rgb = [rng.integers(0, 65536, (10, 10, 3)).astype(np.uint16) for _ in range(8)]

    def write(p: Path, a: np.ndarray) -> None:
        if ext == ".png":
            cv2.imwrite(str(p), a[..., ::-1])  # OpenCV writes BGR
        else:
            tifffile.imwrite(p, a, photometric="rgb")

    images = _folder(tmp_path, write, rgb, ext)
    got = _all(load_imagefolder(_request(tmp_path)))
    for i, img in images.items():
        np.testing.assert_allclose(got[i], img.transpose(2, 0, 1) / 65535.0, rtol=1e-6)


def test_16bit_resize_is_the_area_mean(tmp_path: Path) -> None:
    img = np.array([[0, 65535, 1000, 3000]] * 4, dtype=np.uint16)
    images = _folder(tmp_path, lambda p, a: Image.fromarray(a).save(p), [img] * 8, ".png")
    got = _all(load_imagefolder(_request(tmp_path, size=2)))
    expected = np.array([[65535 / 2, 2000]] * 2) / 65535
    for i in images:
        np.testing.assert_allclose(got[i][0], expected, rtol=1e-5)


def test_8bit_png_unchanged(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    images = _folder(tmp_path, lambda p, a: Image.fromarray(a).save(p),
                     [rng.integers(0, 256, (9, 9)).astype(np.uint8) for _ in range(8)], ".png")
    got = _all(load_imagefolder(_request(tmp_path)))
    for i, img in images.items():
        np.testing.assert_allclose(got[i][0], img / 255.0, rtol=1e-6)


def _write_dicom(path: Path, stored: np.ndarray, slope: float, intercept: float, signed: bool,
                 photometric: str = "MONOCHROME2") -> None:
    """A minimal CT image written with pydicom itself."""
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID, ds.Modality = CTImageStorage, meta.MediaStorageSOPInstanceUID, "CT"
    ds.Rows, ds.Columns = stored.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, photometric
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, int(signed)
    ds.RescaleSlope, ds.RescaleIntercept = str(slope), str(intercept)
    ds.PixelData = stored.astype(np.int16 if signed else np.uint16).tobytes()
    ds.save_as(path, enforce_file_format=True)


def test_dicom_applies_rescale_slope_and_intercept(tmp_path: Path) -> None:
    pytest.importorskip("pydicom")
    rng = np.random.default_rng(3)
    stored = [rng.integers(0, 4096, (8, 8)) for _ in range(8)]
    images = _folder(tmp_path, lambda p, a: _write_dicom(p, a, 1.0, -1024.0, False), stored, ".dcm")
    got = _all(load_imagefolder(_request(tmp_path)))
    for i, img in images.items():
        np.testing.assert_allclose(got[i][0], img * 1.0 - 1024.0)  # Hounsfield units, unclipped


def test_dicom_monochrome1_is_negated(tmp_path: Path) -> None:
    pytest.importorskip("pydicom")
    stored = [np.arange(64).reshape(8, 8) + k for k in range(8)]
    images = _folder(tmp_path, lambda p, a: _write_dicom(p, a, 2.0, 10.0, True, "MONOCHROME1"), stored, ".dcm")
    got = _all(load_imagefolder(_request(tmp_path)))
    for i, img in images.items():
        np.testing.assert_allclose(got[i][0], -(img * 2.0 + 10.0))


# -- case 10: MedMNIST provenance ----------------------------------------------------------------------

def _npz(root: Path, labels_shape: str) -> Path:
    rng = np.random.default_rng(0)
    arrays = {}
    for split in ("train", "val", "test"):
        y = np.arange(12) % 2
        arrays[f"{split}_images"] = rng.integers(0, 256, (12, 28, 28), dtype=np.uint8)
        arrays[f"{split}_labels"] = y if labels_shape == "(N,)" else y[:, None]
    (root / "medmnist").mkdir(parents=True, exist_ok=True)
    path = root / "medmnist" / "breastmnist.npz"
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize("labels_shape", ["(N,)", "(N, 1)"])
def test_case10_resaved_medmnist_loads_with_a_visible_note(tmp_path: Path, labels_shape: str) -> None:
    path = _npz(tmp_path, labels_shape)
    md5 = hashlib.md5(path.read_bytes()).hexdigest()
    bundle = load_medmnist(DatasetRequest(params={"flag": "breastmnist"}, seed=0, image_size=None,
                                          data_root=str(tmp_path)))
    pinned = medmnist_releases.MD5["breastmnist.npz"]
    assert (f"**breastmnist.npz is NOT the official release**: MD5 {md5}, the release's is {pinned}"
            in bundle.notes)
    assert bundle.train.y.tolist() == (np.arange(12) % 2).tolist()


def test_case10_official_release_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _npz(tmp_path, "(N, 1)")
    md5 = hashlib.md5(path.read_bytes()).hexdigest()
    monkeypatch.setitem(medmnist_releases.MD5, "breastmnist.npz", md5)
    bundle = load_medmnist(DatasetRequest(params={"flag": "breastmnist"}, seed=0, image_size=None,
                                          data_root=str(tmp_path)))
    assert f"breastmnist.npz is the official release (MD5 {md5})" in bundle.notes
