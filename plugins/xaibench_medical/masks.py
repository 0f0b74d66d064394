"""The rule that turns a mask file into a region, checked on every mask; what breaks it is converted or refused.

A mask file marks one region (a lesion, or several lesions of one image OR-merged) on its image,
as an annotation tool exports it and a viewer shows it:

1. It is decoded and turned upright by its EXIF orientation, like its image
   (:func:`xaibench_medical.imageio.upright`); a file of several frames is refused.
2. **Alpha**: where the alpha channel is not opaque everywhere, the mask was drawn on a
   transparent layer: the region is where alpha >= 128 (of 255), whatever the colour. An opaque
   alpha channel is ignored.
3. **Colour**: a colour file whose pixels are all grey (R = G = B) is read as grey. A colour
   file with exactly two colours, one of them black, marks the other colour (a red lesion on
   black). Any other colour file is colour-coded (several classes, or an overlay on the image)
   and refused. A colour JPEG that is not grey within 24 levels is refused (its compression
   noise invents colours).
4. **Grey values** ``v``: a lossless file (PNG, TIFF, BMP, ...) must hold at most one value
   besides 0, and that value is the region: 0/1, 0/255 and 0/65535 masks read alike. More
   levels (a label map, an anti-aliased soft brush) are refused. A JPEG mask (8-bit) is
   lossy: its region is ``v >= 128``, half its range (compression noise around 0 and 255
   falls on the right side).
5. **Size**: a mask must cover its image. One of another size with the image's aspect ratio
   (exported at another resolution) is resized to the image's size (area interpolation,
   thresholded at 0.5); any other size is refused.

Conversions are counted in the dataset's :class:`~xaibench_medical.imageio.Report`; every refusal is
one :class:`~xaibench.base.errors.XaibenchError` naming the file and the fix.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from xaibench.base.errors import XaibenchError
from xaibench_medical.imageio import Report, decode, read_bytes, upright

#: Formats whose compression changes pixel values.
LOSSY = ("JPEG", "MPO")
#: Largest difference between the channels of a pixel of a grey JPEG (chroma noise).
JPEG_GREY_TOLERANCE = 24
ALPHA_MODES = ("RGBA", "LA", "PA")


def _note(report: Report | None, reason: str, path: Path) -> None:
    if report is not None:
        report.add(reason, path)


def _grey(img: Image.Image, path: Path, lossy: bool, report: Report | None) -> np.ndarray:
    """Rule 3: the grey values of a mask (for a single colour on black: its region, 0/1)."""
    if img.mode in ("1", "L") or img.mode.startswith("I"):
        return np.asarray(img)
    rgb = np.asarray(img.convert("RGB")).astype(np.int16)
    spread = int((rgb.max(2) - rgb.min(2)).max())
    if spread <= (JPEG_GREY_TOLERANCE if lossy else 0):
        return rgb.mean(2).round().astype(np.uint8)
    if lossy:
        raise XaibenchError(f"{path}: a colour JPEG mask (channels differ by up to {spread}): compression noise "
                            f"makes its colours unreliable; save the mask as a PNG, lesion white on black")
    colours = np.unique(rgb.reshape(-1, 3), axis=0)
    if len(colours) == 2 and (colours == 0).all(1).any():
        _note(report, "single-colour masks on black: the colour is the region", path)
        return (rgb != 0).any(2)
    shown = ", ".join(str(tuple(int(v) for v in c)) for c in colours[:4]) + (", ..." if len(colours) > 4 else "")
    raise XaibenchError(f"{path}: a colour-coded mask with {len(colours)} colours ({shown}): a mask marks one region; "
                        f"save the lesion in one colour (white) on black, one file per image")


def region(img: Image.Image, path: Path, lossy: bool, report: Report | None = None) -> np.ndarray:
    """The region an upright mask image marks, ``(H, W)`` bool at the file's size, by rules 2 to 4."""
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in ALPHA_MODES:
        alpha = np.asarray(img.getchannel("A"))
        if alpha.min() < 255:
            _note(report, "masks read from their alpha channel (drawn on a transparent layer)", path)
            return alpha >= 128
        img = img.convert("L" if img.mode == "LA" else "RGB")
    v = _grey(img, path, lossy, report)
    if lossy:  # 8-bit samples
        _note(report, "JPEG masks thresholded at half range (compression noise)", path)
        return v >= 128
    levels = np.unique(v)
    if (levels > 0).sum() > 1:
        shown = ", ".join(str(int(x)) for x in levels[:4]) + (", ..." if len(levels) > 4 else "")
        raise XaibenchError(f"{path}: a mask with {len(levels)} grey levels ({shown}): a label map or an anti-aliased "
                            f"(soft) drawing; a mask holds 0 and one lesion value: save it with two values "
                            f"(0 and 255)")
    return v > 0


def _fitted(mask: np.ndarray, path: Path, shape: tuple[int, int], report: Report | None) -> np.ndarray:
    """Rule 5: ``mask`` at the image's ``shape`` (H, W)."""
    if mask.shape == shape:
        return mask
    (h, w), (height, width) = mask.shape, shape
    if h * width == w * height:
        _note(report, "masks of another size than their image (same aspect ratio): resized to it", path)
        img = Image.fromarray(mask.astype(np.float32), mode="F").resize((width, height), Image.Resampling.BOX)
        return np.asarray(img) >= 0.5
    hint = " (its transpose fits: is one of the two rotated by an EXIF orientation the other lacks?)" \
        if (h, w) == (width, height) else ""
    raise XaibenchError(f"{path}: mask is {w}x{h} but its image is {width}x{height} (width x height){hint}; masks "
                        f"must cover their image: save it at the image's size")


def read_mask(path: Path, shape: tuple[int, int], data: bytes | None = None,
              report: Report | None = None) -> np.ndarray:
    """The region of mask file ``path`` for an image of ``shape`` (H, W, upright), ``(H, W)`` bool, by the module's
    rule; conversions counted in ``report``; a mask that breaks the rule raises a :class:`XaibenchError`."""
    img = decode(path, read_bytes(path) if data is None else data)
    lossy = img.format in LOSSY
    return _fitted(region(upright(img, path, report), path, lossy, report), path, shape, report)


def merged_mask(paths: list[Path], shape: tuple[int, int], report: Report | None = None) -> np.ndarray:
    """The OR of several masks of one image (one file per lesion), ``(H, W)`` bool."""
    merged = np.zeros(shape, dtype=bool)
    for path in paths:
        merged |= read_mask(path, shape, report=report)
    return merged
