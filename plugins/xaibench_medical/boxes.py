"""Bounding boxes as localization ground truth: four file layouts read, matched to images, rasterised.

A box is ``(x, y, w, h)`` in the image's own pixels as a viewer shows them (its EXIF
orientation applied, as annotation tools and detectron2's ``read_image`` do), continuous
coordinates with ``(0, 0)`` at the top-left corner of the top-left pixel. Layouts (``box_format``,
inferred from the file when not given):

- ``cub``: CUB-200-2011's ``bounding_boxes.txt`` (``<image_id> <x> <y> <w> <h>``) with
  ``images.txt`` (``<image_id> <class>/<name>``) beside it (Wah et al., CNS-TR-2011-001);
- ``voc``: Pascal VOC XML, one file or a folder of them (``<filename>``, ``<object><bndbox>``
  with 1-based inclusive ``xmin..xmax``, i.e. ``x = xmin - 1``, ``w = xmax - xmin + 1``;
  Everingham et al., IJCV 2010), read with ``defusedxml`` (no entity expansion);
- ``coco``: COCO instances JSON (``bbox = [x, y, w, h]``), read with ``pycocotools``
  (Lin et al., ECCV 2014);
- ``csv``: a header row with ``image, x, y, w, h`` and optionally ``label``, any further
  columns ignored; ChestX-ray14's ``BBox_List_2017.csv`` header is read as such (Wang et al., CVPR 2017).

An image's region is the union of its boxes, rasterised on the (resized) pixel grid: a
pixel is inside when its centre is. Only metrics defined on a box region score it
(``MetricSpec.box_ground_truth``); the others say they need masks.
"""
from __future__ import annotations

import contextlib
import csv
import io
from pathlib import Path, PurePosixPath

import numpy as np

from xaibench.base.errors import XaibenchError

FORMATS = ("cub", "voc", "coco", "csv")
Box = tuple[float, float, float, float]


def format_of(path: Path) -> str:
    """The layout of a box file by its name: ``.xml`` or a folder: voc, ``.json``: coco, ``.csv``: csv, ``.txt``: cub."""
    if path.is_dir() or path.suffix.lower() == ".xml":
        return "voc"
    kind = {".json": "coco", ".csv": "csv", ".txt": "cub"}.get(path.suffix.lower())
    if kind is None:
        raise XaibenchError(f"{path}: cannot tell the box layout from its name; set box_format to one of "
                            f"{', '.join(FORMATS)}")
    return kind


def read_boxes(path: Path, box_format: str | None = None) -> dict[str, list[Box]]:
    """Boxes per image name (a relative path or a file name, as the file gives it).

    Raises :class:`XaibenchError` for an unknown layout, a malformed line or element, and a
    box with a non-positive width or height (one line naming the file and the entry).
    """
    kind = box_format or format_of(path)
    if kind not in FORMATS:
        raise XaibenchError(f"box_format must be one of {', '.join(FORMATS)}, got {kind!r}")
    reader = {"cub": _cub, "voc": _voc, "coco": _coco, "csv": _csv}[kind]
    out: dict[str, list[Box]] = {}
    for name, box, where in reader(path):
        if not (box[2] > 0 and box[3] > 0 and all(np.isfinite(box))):
            raise XaibenchError(f"{where}: box {box} of {name}: width and height must be positive and finite")
        out.setdefault(name, []).append(box)
    return out


def _floats(values: list[str], where: str) -> Box:
    try:
        x, y, w, h = (float(v) for v in values)
    except ValueError:
        raise XaibenchError(f"{where}: expected four numbers x, y, w, h, got {values}") from None
    return x, y, w, h


def _cub(path: Path) -> list[tuple[str, Box, str]]:
    index = path.with_name("images.txt")
    if not index.is_file():
        raise XaibenchError(f"{path}: CUB boxes name images by id; {index.name} (<id> <class>/<name>) must be beside it")
    names = {}
    for n, line in enumerate(index.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            image_id, _, name = line.strip().partition(" ")
            names[image_id] = name.strip()
    out = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        where = f"{path}:{n}"
        if len(parts) != 5 or parts[0] not in names:
            raise XaibenchError(f"{where}: expected '<image_id> <x> <y> <w> <h>' with an id of {index.name}")
        out.append((names[parts[0]], _floats(parts[1:], where), where))
    return out


def _voc(path: Path) -> list[tuple[str, Box, str]]:
    from defusedxml import ElementTree

    files = sorted(path.glob("*.xml")) if path.is_dir() else [path]
    out = []
    for f in files:
        try:
            root = ElementTree.parse(f).getroot()
        except Exception as exc:  # ParseError and defusedxml's refusals of entities
            raise XaibenchError(f"{f}: not a Pascal VOC annotation: {exc}") from None
        name = (root.findtext("filename") or "").strip()
        if not name:
            raise XaibenchError(f"{f}: no <filename>")
        for k, obj in enumerate(root.iter("object")):
            b = obj.find("bndbox")
            values = [b.findtext(t) if b is not None else None for t in ("xmin", "ymin", "xmax", "ymax")]
            if None in values:
                raise XaibenchError(f"{f}: object {k} has no complete <bndbox> (xmin, ymin, xmax, ymax)")
            x0, y0, x1, y1 = _floats(values, f"{f}: object {k}")  # type: ignore[arg-type]
            out.append((name, (x0 - 1, y0 - 1, x1 - x0 + 1, y1 - y0 + 1), f"{f}: object {k}"))
    return out


def _coco(path: Path) -> list[tuple[str, Box, str]]:
    try:
        from pycocotools.coco import COCO
    except ImportError:
        raise XaibenchError("COCO box files are read with pycocotools: pip install 'xaibench[coco]'") from None
    with contextlib.redirect_stdout(io.StringIO()):  # COCO() prints its progress
        try:
            coco = COCO(str(path))
        except (ValueError, KeyError, TypeError) as exc:
            raise XaibenchError(f"{path}: not a COCO annotation file: {exc}") from None
    out = []
    for ann in coco.loadAnns(coco.getAnnIds()):
        if ann["image_id"] not in coco.imgs or len(ann.get("bbox", ())) != 4:
            raise XaibenchError(f"{path}: annotation {ann.get('id')} has no bbox [x, y, w, h] or an unknown image_id")
        name = coco.imgs[ann["image_id"]]["file_name"]
        out.append((name, _floats([str(v) for v in ann["bbox"]], f"{path}: annotation {ann.get('id')}"),
                    f"{path}: annotation {ann.get('id')}"))
    return out


#: ChestX-ray14's ``BBox_List_2017.csv`` header: ``Image Index, Finding Label, Bbox [x, y, w, h]``.
_CSV_ALIASES = {"image index": "image", "finding label": "label", "bbox [x": "x", "h]": "h"}


def _csv(path: Path) -> list[tuple[str, Box, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    if not rows:
        raise XaibenchError(f"{path}: empty; expected a header 'image, x, y, w, h[, label]'")
    header = [_CSV_ALIASES.get(c.strip().lower(), c.strip().lower()) for c in rows[0]]
    missing = [c for c in ("image", "x", "y", "w", "h") if c not in header]
    if missing:
        raise XaibenchError(f"{path}: the header lacks {', '.join(missing)}; expected 'image, x, y, w, h[, label]'")
    col = {c: header.index(c) for c in ("image", "x", "y", "w", "h")}
    out = []
    for n, row in enumerate(rows[1:], 2):
        if not any(c.strip() for c in row):
            continue
        where = f"{path}:{n}"
        if len(row) < len(header):
            raise XaibenchError(f"{where}: {len(row)} columns, the header has {len(header)}")
        out.append((row[col["image"]].strip(), _floats([row[col[c]] for c in "xywh"], where), where))
    return out


def match(boxes: dict[str, list[Box]], ids: list[str], source: Path) -> dict[str, list[Box]]:
    """Boxes per image id (``<class>/<name>``), matched by the relative path, else by the file name.

    Raises :class:`XaibenchError` when a file name is shared by two images (ambiguous) or
    when no box names any image (a path mismatch, which would leave every score NaN).
    """
    by_name: dict[str, str] = {}
    for i in ids:
        name = PurePosixPath(i).name
        if name in by_name:
            by_name[name] = ""  # ambiguous: only the relative path can name it
        else:
            by_name[name] = i
    out: dict[str, list[Box]] = {}
    for key, bs in boxes.items():
        target = key if key in ids else by_name.get(PurePosixPath(key.replace("\\", "/")).name)
        if target == "":
            raise XaibenchError(f"{source}: box entry {key!r} names a file that occurs in several class folders; "
                                f"name it by its <class>/<name> path")
        if target is not None:
            out.setdefault(target, []).extend(bs)
    if boxes and not out:
        raise XaibenchError(f"{source}: none of its {len(boxes)} image names (e.g. {next(iter(boxes))!r}) is an image "
                            f"of the folder (e.g. {ids[0]!r})")
    return out


def rasterise(boxes: list[Box], shape: tuple[int, int], size: int | None, image: str) -> np.ndarray:
    """The union of ``boxes`` on an image of ``shape`` (H, W) resized to ``size x size``: ``(S, S)`` bool.

    A pixel is inside when its centre, mapped back to the original image, lies in
    ``[x, x + w) x [y, y + h)``. Raises :class:`XaibenchError` for a box outside the image.
    """
    h0, w0 = shape
    sh, sw = (h0, w0) if size is None else (size, size)
    cy = (np.arange(sh) + 0.5) * h0 / sh
    cx = (np.arange(sw) + 0.5) * w0 / sw
    out = np.zeros((sh, sw), dtype=bool)
    for x, y, w, h in boxes:
        if x < 0 or y < 0 or x + w > w0 + 1e-6 or y + h > h0 + 1e-6:
            raise XaibenchError(f"{image}: box (x={x:g}, y={y:g}, w={w:g}, h={h:g}) leaves the {w0}x{h0} image "
                                f"(as a viewer shows it, EXIF orientation applied): give boxes in those pixels")
        out |= ((cy >= y) & (cy < y + h))[:, None] & ((cx >= x) & (cx < x + w))[None, :]
    return out
