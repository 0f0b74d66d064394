"""Any folder of ``<class>/<name>.<ext>`` images: how a user benchmarks their own data (e.g. seed 001's skin set).

Optional per image, beside it or in parallel folders with the same ``<class>/`` layout:

- masks ``<name>_mask.<ext>`` (and ``<name>_mask_1.<ext>``, ... OR-merged), read by the rule of
  :mod:`xaibench_medical.masks`; in ``masks_dir`` also ``<class>/<name>.<ext>``. Images without a
  mask get an empty one (localization metrics are undefined, NaN, there), so the notes say how
  many have one; a mask without an image is skipped and counted.
- region maps ``<name>_regions.png`` (or ``regions_dir/<class>/<name>.png``) whose pixel
  values are relevance levels after subtracting ``region_offset``: seed 001's skin-layer
  levels 3..-1 are stored as 4..0 with ``region_offset: 1``. The graded hit rate
  normalises by ``region_top_level`` (default: the highest level found).
- bounding boxes: ``boxes`` names a box file under the data root in one of the layouts of
  :mod:`xaibench_medical.boxes` (``box_format``: cub, voc, coco or csv; inferred from the name).
  Images without a box get an empty region (NaN scores). With both masks and boxes,
  ``ground_truth: masks`` or ``boxes`` chooses which the localization metrics score.
- patients: ``group_pattern`` is a regular expression whose first group captures the patient
  id from a file name (``"^(P\\d+)_"``): k-fold cross-validation keeps a patient in one fold.

What a folder holds besides images and masks (decided as torchvision's ``ImageFolder`` and a
person would; docs/data-formats.md): hidden files and folders (a leading ``.``: ``.DS_Store``,
macOS's ``._name`` resource forks, ``.ipynb_checkpoints``), ``__MACOSX``, ``Thumbs.db`` and
``desktop.ini`` are skipped (``ImageFolder`` would make ``.ipynb_checkpoints`` a class); so are
files of other types, files beside the class folders and subfolders of a class folder. Extensions
match in any case (``.JPG``); symbolic links are followed. Every file is read upright by its EXIF
orientation (:mod:`xaibench_medical.imageio`). What was skipped or converted, and why, is counted
in the dataset's notes, which the run header and the leaderboard show.
"""
from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path, PurePosixPath

import numpy as np

from xaibench.base.errors import XaibenchError
from xaibench.contract.specs import DataBundle, DatasetRequest
from xaibench_medical import boxes as box_files
from xaibench_medical import common
from xaibench_medical.imageio import Report, image_channels, read_image, read_levels, resize_mask, to_array
from xaibench_medical.masks import merged_mask

SOURCE = common.Source(
    name="image folder",
    layout=("<path>/<class>/<name>.<ext> (png, jpg, jpeg, tif, tiff, bmp; dcm with pydicom), optional <name>_mask.png and "
            "<name>_regions.png beside each image or in parallel masks_dir/regions_dir folders"),
    release="your own data: set params.path to the folder, relative to the data root",
)
EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".dcm")
REGIONS_SUFFIX = "_regions"
#: What operating systems and archivers leave in folders (lower case), besides hidden names (a leading dot).
SYSTEM_NAMES = frozenset({"__macosx", "thumbs.db", "ehthumbs.db", "desktop.ini", "icon\r"})


def _hidden(p: Path) -> bool:
    return p.name.startswith(".") or p.name.lower() in SYSTEM_NAMES


def _entries(folder: Path, report: Report) -> tuple[list[Path], list[Path]]:
    """(sub-folders, image files) of ``folder``; anything else is counted in ``report`` as skipped."""
    dirs, files = [], []
    for p in sorted(folder.iterdir()):
        if _hidden(p):
            report.add("skipped hidden or system entries", p)
        elif p.is_dir():
            dirs.append(p)
        elif p.suffix.lower() in EXTENSIONS:
            files.append(p)
        else:
            report.add("skipped files of other types", p)
    return dirs, files


def _masks_in(folder: Path | None, report: Report) -> dict[Path, list[Path]]:
    """``masks_dir`` indexed by ``<class>/<name>`` (its files ``<name>.<ext>`` and ``<name>_mask[_k].<ext>``)."""
    index: dict[Path, list[Path]] = {}
    for d in [] if folder is None else _entries(folder, report)[0]:
        for f in _entries(d, report)[1]:
            m = common.MASK_STEM.match(f.stem)
            index.setdefault(Path(d.name) / (m["stem"] if m else f.stem), []).append(f)
    return index


def _parallel(folder: Path | None, rel: Path, names: tuple[str, ...]) -> Path | None:
    """The first of ``folder/<class>/<name>`` that exists, for image ``rel``."""
    if folder is None:
        return None
    return next((folder / rel.parent / n for n in names if (folder / rel.parent / n).exists()), None)


def load_imagefolder(request: DatasetRequest) -> DataBundle:
    """The user's ``<class>/<name>.<ext>`` folder (``params.path``, under the data root) with optional masks, regions, boxes.

    ``request.params``: ``path`` (required), ``channels`` (1 or 3; default: from the images),
    ``val``/``test`` shares of a seeded stratified split (0.15, 0.25), ``seed``, ``masks_dir``,
    ``regions_dir``, ``region_offset``, ``region_top_level``, ``boxes``, ``box_format``,
    ``ground_truth`` (``masks`` or ``boxes``) and ``group_pattern`` (see the module docstring).
    Classes are the sorted sub-folder names; ``x`` float32 ``(N, C, S, S)`` (``S``: the suite's
    ``image_size``, else the images' common size), 8-bit files in [0, 1], deeper ones scaled by their
    bit depth (:mod:`xaibench_medical.imageio`). Raises ``TypeError`` without ``path`` or for an unknown
    parameter, :class:`~xaibench.base.errors.XaibenchError` for fewer than two class folders, an unreadable
    image or a box file naming no image of the folder.
    """
    p = common.params_of(request, {"path": None, "channels": None, "val": 0.15, "test": 0.25, "seed": None,
                            "masks_dir": None, "regions_dir": None, "region_offset": 0, "region_top_level": None,
                            "boxes": None, "box_format": None, "ground_truth": None, "group_pattern": None})
    if p["path"] is None:
        raise TypeError("imagefolder needs a 'path' parameter: the folder of <class>/<name>.<ext> images")
    folder = common.locate(request, SOURCE, p["path"], ())
    masks_dir = None if p["masks_dir"] is None else common.locate(request, SOURCE, p["masks_dir"], ())
    regions_dir = None if p["regions_dir"] is None else common.locate(request, SOURCE, p["regions_dir"], ())
    report = Report()
    class_dirs = _entries(folder, report)[0] if folder.is_dir() else []
    for f in _entries(folder, Report())[1] if folder.is_dir() else []:
        report.add("skipped images outside the class folders", f)
    if len(class_dirs) < 2:
        raise XaibenchError(f"{folder}: expected at least two class folders. Layout: {SOURCE.layout}")
    class_names = tuple(d.name for d in class_dirs)
    items, beside_masks, beside_regions = [], {}, {}
    for k, d in enumerate(class_dirs):
        subdirs, files = _entries(d, report)
        for sub in subdirs:
            report.add("skipped subfolders of class folders", sub)
        for f in files:
            m = common.MASK_STEM.match(f.stem)
            if m:
                beside_masks.setdefault(f.parent / m["stem"], []).append(f)
            elif f.stem.endswith(REGIONS_SUFFIX):
                beside_regions[f.parent / f.stem[: -len(REGIONS_SUFFIX)]] = f
            else:
                items.append((f, k))
    if not items:
        raise XaibenchError(f"{folder}: no images ({', '.join(EXTENSIONS)}) in its class folders")
    parallel_masks = _masks_in(masks_dir, report)
    stems = {f.with_suffix("") for f, _ in items}
    for stem, paths in beside_masks.items():
        for path in paths if stem not in stems else []:
            report.add("skipped masks without an image", path)
    for key, paths in parallel_masks.items():
        for path in paths if not any(f.relative_to(folder).parent / f.stem == key for f, _ in items) else []:
            report.add("skipped masks without an image", path)
    images = [read_image(f, report) for f, _ in items]
    channels = int(p["channels"] or max(image_channels(img) for img in images))
    if channels not in (1, 3):
        raise TypeError(f"channels must be 1 or 3, got {channels}")
    size, offset = request.image_size, int(p["region_offset"])
    box_path = None if p["boxes"] is None else common.locate(request, SOURCE, p["boxes"], ())
    listed = {} if box_path is None else box_files.match(box_files.read_boxes(box_path, p["box_format"]),
                                                         [f.relative_to(folder).as_posix() for f, _ in items], box_path)
    ids, xs, masks, regions, box_masks = [], [], [], [], []
    n_masked = 0
    for (f, _), img in zip(items, images):
        rel = f.relative_to(folder)
        ids.append(rel.as_posix())
        xs.append(to_array(img, channels, size))
        shape = img.size[::-1]
        stem = f.with_suffix("")
        mask_paths = beside_masks.get(stem) or parallel_masks.get(rel.parent / f.stem, [])
        n_masked += bool(mask_paths)
        masks.append(resize_mask(merged_mask(mask_paths, shape, report), size))
        if box_path is not None:
            box_masks.append(box_files.rasterise(listed.get(ids[-1], []), shape, size, ids[-1]))
        region_path = beside_regions.get(stem) or _parallel(regions_dir, rel, (f"{f.stem}{REGIONS_SUFFIX}.png",
                                                                               f"{f.stem}.png"))
        regions.append(None if region_path is None else read_levels(region_path, shape, offset, size, report))
    x = common.stack_same_size(xs, ids, "imagefolder")
    y = np.asarray([k for _, k in items])
    region_arr, top = None, None
    if any(r is not None for r in regions):
        missing = [i for i, r in zip(ids, regions) if r is None]
        if missing:
            raise XaibenchError(f"{folder}: region maps are given for some images but not for {missing[0]} "
                                f"({len(missing)} missing); give one per image or none")
        region_arr = np.stack(regions)
        top = int(region_arr.max()) if p["region_top_level"] is None else int(p["region_top_level"])
    truth = _ground_truth(p["ground_truth"], n_masked, box_path)
    described = f"masks for {n_masked} of {len(ids)} images"
    if truth == "boxes":
        masks, n_masked = box_masks, len(listed)
        described = (f"bounding boxes for {n_masked} of {len(ids)} images ({sum(map(len, listed.values()))} boxes "
                     f"from {box_path.name}; a pixel is in a box when its centre is)")
    seed = request.seed if p["seed"] is None else int(p["seed"])
    splits = common.stratified_split(y, float(p["val"]), float(p["test"]), seed)
    notes = (f"image folder {folder.name}: {common.class_counts(y, class_names)}; {channels}-channel"
             f"{'' if size is None else f', area-resized to {size}px'}; {described}"
             f"{'' if region_arr is None else f'; region maps, top level {top}'}; seeded stratified split"
             f"{'; ' + report.summary() if report.files else ''}")
    bundle = common.split_bundle(x, y, ids, splits, class_names, notes, masks=np.stack(masks) if n_masked else None,
                                 regions=region_arr, region_top_level=top, ground_truth=truth)
    return bundle if p["group_pattern"] is None else replace(bundle, groups=_groups(ids, str(p["group_pattern"])))


def _groups(ids: list[str], pattern: str) -> dict[str, str]:
    """Sample id -> patient id: the first group of ``pattern`` (a regular expression) searched in the file name."""
    try:
        rx = re.compile(pattern)
    except re.error as exc:
        raise TypeError(f"group_pattern {pattern!r} is not a regular expression: {exc}") from None
    if rx.groups < 1:
        raise TypeError(f"group_pattern {pattern!r} needs one (group) that captures the patient id")
    out = {}
    for i in ids:
        m = rx.search(PurePosixPath(i).name)
        if m is None or not m.group(1):
            raise XaibenchError(f"{i}: group_pattern {pattern!r} finds no patient id in its file name")
        out[i] = m.group(1)
    return out


def _ground_truth(asked: str | None, n_masked: int, box_path: Path | None) -> str:
    """"masks" or "boxes": what the localization metrics score; both present needs ``ground_truth`` to say which."""
    if asked not in (None, "masks", "boxes"):
        raise TypeError(f"ground_truth must be 'masks' or 'boxes', got {asked!r}")
    if asked == "boxes" and box_path is None:
        raise TypeError("ground_truth: boxes needs a 'boxes' file")
    if asked is None and n_masked and box_path is not None:
        raise TypeError("this folder has masks and a 'boxes' file: set ground_truth to 'masks' or 'boxes'")
    return asked or ("boxes" if box_path is not None else "masks")
