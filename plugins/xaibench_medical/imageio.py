"""Reading and resizing image files with Pillow (and pydicom for DICOM), with errors that name the file.

Full bit depth is kept; nothing is clipped. 8-bit files (PNG, JPEG, TIFF, BMP; grayscale,
palette or RGB) are read with Pillow and scaled by 1/255 as before. Files with more than
8 bits per sample (16-bit PNG and TIFF, grayscale or RGB; Pillow's ``convert("L")`` would
clip them and it reads 16-bit RGB as 8-bit) are decoded at their own depth with OpenCV
(installed with grad-cam) and scaled by their dtype's range, the rule of
:mod:`xaibench.data.inputs` (uint16: ``x / 65535``). DICOM files (``.dcm``, needs ``pip install
pydicom``, the ``dicom`` extra) give their modality values: ``RescaleSlope * stored +
RescaleIntercept`` (Hounsfield units for CT), unscaled, MONOCHROME1 negated so that brighter
is higher; multi-frame files are refused.

Files are read as a viewer shows them: the EXIF (or TIFF) Orientation tag is applied
(``PIL.ImageOps.exif_transpose``; the same transposition for 16-bit pixels decoded by OpenCV,
which ignores the tag when reading unchanged), to images, masks and region maps alike. A file
with several frames (multi-page TIFF, animated GIF, PNG or WebP) is refused; a phone's
multi-picture JPEG (MPO) is read as its primary image, as viewers show it. Alpha is dropped
where every pixel is opaque; an image with transparent pixels is refused (a model would see
the colour stored under them, a viewer the background). CMYK is converted to RGB by Pillow;
ICC profiles are not applied (pixel values as stored, as torchvision and MONAI read them).
What was converted is counted in a :class:`Report` for the dataset's notes.

Images are resized with area (box) interpolation, the resampling that keeps the
mean intensity of every output pixel; masks are resized the same way and then
thresholded at 0.5, so a mask pixel is set when most of its area was lesion; region
maps hold discrete levels and are resized with nearest neighbour. How a mask file
becomes a region is :mod:`xaibench_medical.masks`'s rule.
"""
from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from xaibench.base.errors import XaibenchError
from xaibench.data.inputs import scaled_array

#: Pillow mode per channel count.
MODES = {1: "L", 3: "RGB"}


#: The EXIF and TIFF Orientation tag.
ORIENTATION = 0x0112
#: Orientation value -> the transposition that shows the stored pixels upright, as ``ImageOps.exif_transpose``
#: does (checked against it in tests/test_folder_reading.py): 6 is "rotate 90 degrees clockwise to view".
UPRIGHT = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
           5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
           8: Image.Transpose.ROTATE_90}


@dataclass
class Report:
    """What reading a folder skipped or converted: reason -> the files concerned, in the order met."""

    files: dict[str, list[str]] = field(default_factory=dict)

    def add(self, reason: str, path: Path | str) -> None:
        """Count ``path`` under ``reason`` (a phrase such as ``"skipped: hidden or system files"``)."""
        self.files.setdefault(reason, []).append(str(path))

    def summary(self) -> str:
        """``"reason: n (e.g. file); ..."`` in the order the reasons were met; "" when nothing was."""
        return "; ".join(f"{reason}: {len(paths)} (e.g. {Path(paths[0]).name})" for reason, paths in self.files.items())


def read_bytes(path: Path, sha256: str | None = None) -> bytes:
    """The file's bytes, checked against ``sha256`` when given (hashing what is read anyway costs little).

    A broken symbolic link, a missing or an unreadable file raises a :class:`XaibenchError` naming it."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        broken = path.is_symlink()
        raise XaibenchError(f"{path}: {'a symbolic link to a missing file' if broken else 'file not found'}"
                            f"{': point the link at the file or remove it' if broken else ''}") from None
    except OSError as exc:
        raise XaibenchError(f"{path}: cannot be read ({exc.strerror or exc}): fix its permissions or remove it") \
            from None
    if sha256 is not None and hashlib.sha256(data).hexdigest() != sha256.lower():
        raise XaibenchError(f"{path}: sha256 differs from the manifest: the file is corrupt or was modified; "
                            f"restore it from the release")
    return data


def decode(path: Path, data: bytes) -> Image.Image:
    """The file's pixels as stored, fully decoded; one frame only (a multi-picture JPEG: its primary image)."""
    try:
        img = Image.open(io.BytesIO(data))
        img.load()  # decoding is lazy: truncation only shows here
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise XaibenchError(f"{path}: cannot decode the image ({exc}): the file is corrupt or truncated") from None
    frames = int(getattr(img, "n_frames", 1))
    if frames > 1 and img.format != "MPO":
        raise XaibenchError(f"{path}: holds {frames} frames ({img.format}: a multi-page or animated file); one image "
                            f"per file is read: save each frame as its own file")
    return img


def _orientation(img: Image.Image) -> int:
    """The image's Orientation tag (1: stored upright; an unknown value counts as 1, as Pillow does)."""
    value = img.getexif().get(ORIENTATION, 1)
    return int(value) if value in UPRIGHT else 1


def upright(img: Image.Image, path: Path, report: Report | None = None) -> Image.Image:
    """``img`` as a viewer shows it: its EXIF orientation applied (``ImageOps.exif_transpose``), counted in ``report``."""
    if _orientation(img) == 1:
        return img
    if report is not None:
        report.add("turned upright by their EXIF orientation", path)
    return ImageOps.exif_transpose(img)


def open_image(path: Path, data: bytes | None = None, report: Report | None = None) -> Image.Image:
    """A fully decoded Pillow image, upright as a viewer shows it (``ImageOps.exif_transpose``); a corrupt or
    truncated file, or one of several frames, raises a :class:`XaibenchError` naming it."""
    return upright(decode(path, read_bytes(path) if data is None else data), path, report)


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


def _upright_values(values: np.ndarray, orientation: int) -> np.ndarray:
    """``(H, W, C)`` pixels transposed as :data:`UPRIGHT` says for ``orientation``."""
    if orientation == 1:
        return values
    planes = [Image.fromarray(np.ascontiguousarray(values[..., c], dtype=np.float32), mode="F")
              .transpose(UPRIGHT[orientation]) for c in range(values.shape[2])]
    return np.stack([np.asarray(p, dtype=np.float32) for p in planes], axis=2)


def _opaque(img: Image.Image, path: Path, report: Report | None) -> Image.Image:
    """``img`` without its alpha channel, which must be opaque everywhere; else a :class:`XaibenchError`."""
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode not in ("RGBA", "LA", "PA", "La", "RGBa"):
        return img
    low = img.getchannel("A").getextrema()[0]
    if low < 255:
        raise XaibenchError(f"{path}: has transparent pixels (alpha down to {low}): a model would see the colour "
                            f"stored under them, a viewer the background; flatten it onto the background you mean "
                            f"and save it without alpha")
    if report is not None:
        report.add("opaque alpha channel dropped", path)
    return img.convert("L" if img.mode in ("LA", "La") else "RGB")


def read_image(path: Path, report: Report | None = None) -> Image.Image | Pixels:
    """A decoded image at full depth, upright as a viewer shows it: a Pillow image for 8-bit files, :class:`Pixels`
    for deeper ones and DICOM. Refused with a :class:`XaibenchError` naming the file: several frames, transparent
    pixels, a corrupt or unreadable file. Conversions are counted in ``report``."""
    data = read_bytes(path)
    if path.suffix.lower() == ".dcm":
        return _dicom(path, data)
    img = decode(path, data)
    if _deep(img, data):
        turn = _orientation(img)
        if turn != 1 and report is not None:
            report.add("turned upright by their EXIF orientation", path)
        return Pixels(_upright_values(_decode_deep(path, data).values, turn))
    img = _opaque(upright(img, path, report), path, report)
    if img.mode == "CMYK" and report is not None:
        report.add("converted from CMYK to RGB (Pillow)", path)
    return img


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


def resize_mask(mask: np.ndarray, size: int | None) -> np.ndarray:
    """Area-resize a boolean mask and threshold at 0.5."""
    if size is None or mask.shape == (size, size):
        return mask
    img = Image.fromarray(mask.astype(np.float32), mode="F").resize((size, size), Image.Resampling.BOX)
    return np.asarray(img) >= 0.5


def read_levels(path: Path, shape: tuple[int, int], offset: int, size: int | None,
                report: Report | None = None) -> np.ndarray:
    """A region map of integer levels (stored pixel value minus ``offset``), upright, nearest-resized, int8."""
    img = open_image(path, report=report)
    if img.size[::-1] != shape:
        raise XaibenchError(f"{path}: region map is {img.size[0]}x{img.size[1]} but its image is "
                            f"{shape[1]}x{shape[0]} (width x height)")
    img = img.convert("L")
    if size is not None and img.size != (size, size):
        img = img.resize((size, size), Image.Resampling.NEAREST)
    return (np.asarray(img, dtype=np.int16) - offset).astype(np.int8)
