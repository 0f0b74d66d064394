"""BUSI: breast ultrasound images (benign / malignant / normal) with lesion masks.

Two layouts are read. The original release, ``Dataset_BUSI_with_GT/<class>/<class> (N).png``
with one or more masks ``<class> (N)_mask.png``, ``<class> (N)_mask_1.png``, ... that are
OR-merged (17 images have several lesions); and the processed copy (``busi256/``, 256x256
grayscale, masks already merged) whose ``manifest.csv`` carries sha256 sums, checked on
every load. Sample ids are ``<class>/<original file name>`` in both layouts, so results
stay comparable across copies. There is no official split: a seeded stratified one.
"""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from xaibench.base.errors import XaibenchError
from xaibench.contract.specs import DataBundle, DatasetRequest
from xaibench_medical import common
from xaibench_medical.imageio import open_image, read_bytes, resize_mask, to_array
from xaibench_medical.masks import merged_mask, read_mask

CLASSES = ("benign", "malignant", "normal")
SOURCE = common.Source(
    name="BUSI",
    layout=("Dataset_BUSI_with_GT/{benign,malignant,normal}/<class> (N).png with <class> (N)_mask.png "
            "(and _mask_1.png, ... for extra lesions), or a processed copy busi256/ with manifest.csv "
            "(columns image, mask, label, source, sha256_image, sha256_mask)"),
    release=("Al-Dhabyani et al., Data in Brief 28:104863 (2020), "
             "https://scholar.cu.edu.eg/?q=afahmy/pages/dataset"),
)
NOTES = ("breast ultrasound (BUSI): grayscale, area-resized to {size}px, lesion masks OR-merged and thresholded "
         "at 0.5; "
         "normal images have empty masks (hit rate undefined there); {counts}; seeded stratified split "
         "(no official one); caveat: burned-in calipers and text are shortcuts a classifier can learn")
#: Resolution of the original release's images (which vary in size) when the suite sets no image_size:
#: that of the processed copy.
ORIGINAL_SIZE = 256


def _processed(folder: Path, size: int | None, verify: bool) -> tuple[list, list, list, list]:
    with open(folder / "manifest.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    need = {"image", "mask", "label", "source", "sha256_image", "sha256_mask"}
    if not rows or not need <= set(rows[0]):
        raise XaibenchError(f"{folder / 'manifest.csv'}: expected columns {', '.join(sorted(need))}")
    xs, ys, ids, masks = [], [], [], []
    for row in sorted(rows, key=lambda r: (r["label"], r["source"])):
        if row["label"] not in CLASSES:
            raise XaibenchError(f"{folder / 'manifest.csv'}: unknown label {row['label']!r} for {row['image']}")
        img_path, mask_path = folder / row["image"], folder / row["mask"]
        img = open_image(img_path, read_bytes(img_path, row["sha256_image"] if verify else None))
        mask = read_mask(mask_path, img.size[::-1], read_bytes(mask_path, row["sha256_mask"] if verify else None))
        xs.append(to_array(img, 1, size))
        masks.append(resize_mask(mask, size))
        ys.append(CLASSES.index(row["label"]))
        ids.append(f"{row['label']}/{row['source']}")
    return xs, ys, ids, masks


def _original(folder: Path, size: int) -> tuple[list, list, list, list]:
    xs, ys, ids, masks = [], [], [], []
    for label in CLASSES:
        class_dir = folder / label
        if not class_dir.is_dir():
            raise XaibenchError(f"{folder}: class folder {label}/ is missing. Expected layout: {SOURCE.layout}")
        files = sorted(p for p in class_dir.iterdir() if p.suffix.lower() == ".png")
        mask_files: dict[str, list[Path]] = {}
        for p in files:
            m = common.MASK_STEM.match(p.stem)
            if m:
                mask_files.setdefault(m["stem"], []).append(p)
        for p in files:
            if common.MASK_STEM.match(p.stem):
                continue
            if p.stem not in mask_files:
                raise XaibenchError(f"{p}: no mask {p.stem}_mask.png beside it (every BUSI image has one)")
            img = open_image(p)
            xs.append(to_array(img, 1, size))
            masks.append(resize_mask(merged_mask(mask_files[p.stem], img.size[::-1]), size))
            ys.append(CLASSES.index(label))
            ids.append(f"{label}/{p.name}")
    return xs, ys, ids, masks


def load_busi(request: DatasetRequest) -> DataBundle:
    """BUSI (Al-Dhabyani et al., Data in Brief 2020) from the data root: 780 grey images, 3 classes, lesion masks.

    ``request.params``: ``path`` (the folder under the data root; default: ``busi256`` or
    ``Dataset_BUSI_with_GT``), ``val`` and ``test`` shares of a seeded stratified split (0.15,
    0.25), ``seed`` (default: the suite's) and ``verify`` (check the processed copy's sha256 sums).
    Returns ``x`` float32 ``(N, 1, S, S)`` in [0, 1] (``S``: the suite's ``image_size``, else 256), bool masks ``(N, S, S)`` (lesions OR-merged;
    empty for ``normal``). Raises :class:`~xaibench.base.errors.XaibenchError` naming the expected layout
    for a missing or empty folder, and for a file whose checksum differs.
    """
    p = common.params_of(request, {"path": None, "val": 0.15, "test": 0.25, "seed": None, "verify": True})
    folder = common.locate(request, SOURCE, p["path"], ("busi256", "Dataset_BUSI_with_GT", "busi/Dataset_BUSI_with_GT"))
    if (folder / "manifest.csv").exists():
        xs, ys, ids, masks = _processed(folder, request.image_size, bool(p["verify"]))
    elif folder.is_dir():
        xs, ys, ids, masks = _original(folder, request.image_size or ORIGINAL_SIZE)
    else:
        raise XaibenchError(f"{folder} is not a BUSI folder. Expected layout: {SOURCE.layout}")
    if not xs:
        raise XaibenchError(f"{folder}: no images found. Expected layout: {SOURCE.layout}")
    y = np.asarray(ys)
    seed = request.seed if p["seed"] is None else int(p["seed"])
    splits = common.stratified_split(y, float(p["val"]), float(p["test"]), seed)
    x = common.stack_same_size(xs, ids, "busi")
    notes = NOTES.format(size=x.shape[-1], counts=common.class_counts(y, CLASSES))
    return common.split_bundle(x, y, ids, splits, CLASSES, notes, masks=np.stack(masks))
