"""Reading and resizing image files with Pillow, with errors that name the file.

Images are resized with area (box) interpolation, the resampling that keeps the
mean intensity of every output pixel; masks are resized the same way and then
thresholded at 0.5, so a mask pixel is set when most of its area was lesion; region
maps hold discrete levels and are resized with nearest neighbour.
"""
from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from xaibench.errors import XaibenchError

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


def image_channels(img: Image.Image) -> int:
    """1 for grayscale files (modes L, I, I;16, 1, LA), else 3."""
    return 1 if img.mode in ("1", "L", "LA", "I", "I;16", "F") else 3


def to_array(img: Image.Image, channels: int, size: int | None) -> np.ndarray:
    """``(C, H, W)`` float32 in [0, 1], resized to ``size x size`` with area interpolation."""
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
