"""Reading and resizing image files with Pillow (and pydicom for DICOM), with errors that name the file.

Full bit depth is kept; nothing is clipped. 8-bit files (PNG, JPEG, TIFF, BMP; grayscale,
palette or RGB) are read with Pillow and scaled by 1/255 as before. Files with more than
8 bits per sample (16-bit PNG and TIFF, grayscale or RGB; Pillow's ``convert("L")`` would
clip them and it reads 16-bit RGB as 8-bit) are decoded at their own depth with OpenCV
(installed with grad-cam) and scaled by their dtype's range, the rule of
:mod:`xaibench.inputs` (uint16: ``x / 65535``). DICOM files (``.dcm``, needs ``pip install
pydicom``, the ``dicom`` extra) give their modality values: ``RescaleSlope * stored +
RescaleIntercept`` (Hounsfield units for CT), unscaled, MONOCHROME1 negated so that brighter
is higher; multi-frame files are refused.

Images are resized with area (box) interpolation, the resampling that keeps the
mean intensity of every output pixel; masks are resized the same way and then
thresholded at 0.5, so a mask pixel is set when most of its area was lesion; region
maps hold discrete levels and are resized with nearest neighbour.
"""
from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from xaibench.errors import XaibenchError
from xaibench.inputs import scaled_array

#: Pillow mode per channel count.
MODES = {1: "L", 3: "RGB"}


def read_bytes(path: Path, sha256: str | None = None) -> bytes:
    """The file's bytes, checked against ``sha256`` when given (hashing what is read anyway costs little)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise XaibenchError(f"{path}: file not found") from None
    if sha256 is not None and hashlib.sha256(data).hexdigest() != sha256.lower():
        raise XaibenchError(f"{path}: sha256 differs from the manifest: the file is corrupt or was modified; "
                            f"restore it from the release")
    return data


def open_image(path: Path, data: bytes | None = None) -> Image.Image:
    """A fully decoded Pillow image; a corrupt or truncated file raises a :class:`XaibenchError` naming it."""
    try:
        img = Image.open(io.BytesIO(read_bytes(path) if data is None else data))
        img.load()  # decoding is lazy: truncation only shows here
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise XaibenchError(f"{path}: cannot decode the image ({exc}): the file is corrupt or truncated") from None
    return img


@dataclass(frozen=True)
class Pixels:
    """A decoded image deeper than 8 bits or from DICOM: ``values`` float32 ``(H, W, C)``, C 1 or 3."""

    values: np.ndarray

    @property
    def size(self) -> tuple[int, int]:
        """(width, height), as Pillow's ``Image.size``."""
        return int(self.values.shape[1]), int(self.values.shape[0])


def _deep(img: Image.Image, data: bytes) -> bool:
    """Whether the file stores more than 8 bits per sample (Pillow would drop or clip them)."""
    if img.format == "PNG":
        return data[24] > 8  # IHDR bit depth: 8-byte signature, 4 length, 4 "IHDR", 4 width, 4 height
    if img.format == "TIFF":
        bits = img.tag_v2.get(258, 8)
        return max(bits if isinstance(bits, tuple) else (bits,)) > 8
    return img.mode in ("I", "I;16", "I;16B", "F")


def _decode_deep(path: Path, data: bytes) -> Pixels:
    import cv2

    arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if arr is None:
        raise XaibenchError(f"{path}: OpenCV cannot decode its high-bit-depth pixels; save it as 16-bit PNG or TIFF")
    if arr.ndim == 3:
        arr = arr[..., 2::-1] if arr.shape[2] >= 3 else arr[..., :1]  # OpenCV's BGR(A) -> RGB, alpha dropped
    else:
        arr = arr[..., None]
    return Pixels(scaled_array(arr, f"{path}: pixels"))


def _dicom(path: Path, data: bytes) -> Pixels:
    try:
        import pydicom
        from pydicom.pixels import apply_modality_lut
    except ImportError:
        raise XaibenchError(f"{path}: reading DICOM needs pydicom: pip install pydicom "
                            f"(or the xaibench[dicom] extra)") from None
    try:
        ds = pydicom.dcmread(io.BytesIO(data))
        stored = ds.pixel_array
    except Exception as exc:  # pydicom raises InvalidDicomError, AttributeError, ValueError on broken files
        raise XaibenchError(f"{path}: cannot read it as DICOM ({type(exc).__name__}: {exc})") from None
    rgb = int(getattr(ds, "SamplesPerPixel", 1)) == 3
    if stored.ndim != (3 if rgb else 2):
        raise XaibenchError(f"{path}: DICOM pixel data has shape {stored.shape}; one 2D frame per file is supported")
    values = np.asarray(apply_modality_lut(stored, ds) if not rgb else stored, dtype=np.float64)
    if getattr(ds, "PhotometricInterpretation", "") == "MONOCHROME1":
        values = -values
    return Pixels(np.ascontiguousarray(values if rgb else values[..., None], dtype=np.float32))


def read_image(path: Path) -> Image.Image | Pixels:
    """A decoded image at full depth: a Pillow image for 8-bit files, :class:`Pixels` for deeper ones and DICOM."""
    data = read_bytes(path)
    if path.suffix.lower() == ".dcm":
        return _dicom(path, data)
    img = open_image(path, data)
    return _decode_deep(path, data) if _deep(img, data) else img


def image_channels(img: Image.Image | Pixels) -> int:
    """1 for grayscale files (modes L, I, I;16, 1, LA), else 3."""
    if isinstance(img, Pixels):
        return int(img.values.shape[2])
    return 1 if img.mode in ("1", "L", "LA", "I", "I;16", "F") else 3


#: ITU-R 601-2 luma weights, as Pillow's ``convert("L")`` uses for 8-bit RGB.
LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def _deep_array(px: Pixels, channels: int, size: int | None) -> np.ndarray:
    v = px.values
    if v.shape[2] != channels:
        v = v @ LUMA[:, None] if channels == 1 else np.repeat(v, 3, axis=2)
    planes = [Image.fromarray(np.ascontiguousarray(v[..., c], dtype=np.float32), mode="F") for c in range(channels)]
    if size is not None and px.size != (size, size):
        planes = [p.resize((size, size), Image.Resampling.BOX) for p in planes]
    return np.stack([np.asarray(p, dtype=np.float32) for p in planes])


def to_array(img: Image.Image | Pixels, channels: int, size: int | None) -> np.ndarray:
    """``(C, H, W)`` float32, resized to ``size x size`` with area interpolation.

    8-bit images are in [0, 1]; deeper ones follow the module docstring (never clipped).
    """
    if isinstance(img, Pixels):
        return _deep_array(img, channels, size)
    img = img.convert(MODES[channels])
    if size is not None and img.size != (size, size):
        img = img.resize((size, size), Image.Resampling.BOX)
    arr = np.asarray(img, dtype=np.float32) / 255.0
    return arr[None] if channels == 1 else np.ascontiguousarray(arr.transpose(2, 0, 1))


def read_mask(path: Path, shape: tuple[int, int], data: bytes | None = None) -> np.ndarray:
    """A boolean mask at native resolution (any nonzero pixel is lesion); its size must match the image's."""
    img = open_image(path, data)
    if img.size[::-1] != shape:
        raise XaibenchError(f"{path}: mask is {img.size[0]}x{img.size[1]} but its image is {shape[1]}x{shape[0]} "
                            f"(width x height); masks must have their image's size")
    return np.asarray(img.convert("L")) > 0


def merged_mask(paths: list[Path], shape: tuple[int, int]) -> np.ndarray:
    """The OR of several masks of one image (one file per lesion)."""
    merged = np.zeros(shape, dtype=bool)
    for path in paths:
        merged |= read_mask(path, shape)
    return merged


def resize_mask(mask: np.ndarray, size: int | None) -> np.ndarray:
    """Area-resize a boolean mask and threshold at 0.5."""
    if size is None or mask.shape == (size, size):
        return mask
    img = Image.fromarray(mask.astype(np.float32), mode="F").resize((size, size), Image.Resampling.BOX)
    return np.asarray(img) >= 0.5


def read_levels(path: Path, shape: tuple[int, int], offset: int, size: int | None) -> np.ndarray:
    """A region map of integer levels (stored pixel value minus ``offset``), nearest-resized, int8."""
    img = open_image(path)
    if img.size[::-1] != shape:
        raise XaibenchError(f"{path}: region map is {img.size[0]}x{img.size[1]} but its image is "
                            f"{shape[1]}x{shape[0]} (width x height)")
    img = img.convert("L")
    if size is not None and img.size != (size, size):
        img = img.resize((size, size), Image.Resampling.NEAREST)
    return (np.asarray(img, dtype=np.int16) - offset).astype(np.int8)
