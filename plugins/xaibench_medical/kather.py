"""Kather 2016 colorectal histology textures (seed 000's HMT): 8 classes of 150x150 RGB tiles, no masks.

Without masks only faithfulness metrics apply; the runner skips localization cells
and says why. There is no official split: a seeded stratified one.
"""
from __future__ import annotations

import re

import numpy as np

from xaibench.data.download import Release
from xaibench.base.errors import XaibenchError
from xaibench.contract.specs import DataBundle, DatasetRequest
from xaibench_medical import common
from xaibench_medical.imageio import open_image, to_array

FOLDER = "Kather_texture_2016_image_tiles_5000"
SOURCE = common.Source(
    name="Kather 2016 (HMT)",
    layout=f"{FOLDER}/<NN_CLASS>/*.tif, e.g. {FOLDER}/01_TUMOR/1A11_CRC-Prim-HE-07_022.tif_Row_601_Col_151.tif",
    release=("Kather et al., Sci Rep 6:27988 (2016), https://zenodo.org/record/53169 "
             "(Kather_texture_2016_image_tiles_5000.zip)"),
    # sha256 as pinned by TensorFlow Datasets for the same file (colorectal_histology,
    # tensorflow_datasets/url_checksums/colorectal_histology.txt; 258098431 bytes).
    downloads=(Release(
        url=f"https://zenodo.org/record/53169/files/{FOLDER}.zip", filename=f"{FOLDER}.zip", extract=True,
        checksum="sha256:936d0b95ae0f04f1f7b18a2b7e8c55776c3e887d102f645bcee752d1a6626a32", provides=FOLDER),),
)
_CLASS_DIR = re.compile(r"^\d+_(?P<name>\w+)$")
EXTENSIONS = (".tif", ".tiff", ".png", ".jpg")


def load_kather(request: DatasetRequest) -> DataBundle:
    """Kather 2016 colorectal histology tiles (Kather et al., Sci. Rep. 2016): 5,000 RGB tiles, 8 classes, no masks.

    ``request.params``: ``path``, ``val``/``test`` shares of a seeded stratified split (0.1, 0.2),
    ``seed``, ``max_per_class`` (a seeded subset per class). ``x`` float32 ``(N, 3, S, S)`` in [0, 1]
    (150 px tiles unless the suite sets ``image_size``). With ``request.download`` the release zip is
    fetched and checked against its pinned sha256 first. Raises
    :class:`~xaibench.base.errors.XaibenchError` naming the layout when the class folders are missing.
    """
    p = common.params_of(request, {"path": None, "val": 0.1, "test": 0.2, "seed": None, "max_per_class": None})
    folder = common.locate(request, SOURCE, p["path"], (FOLDER, f"kather2016/{FOLDER}"))
    entries = folder.iterdir() if folder.is_dir() else iter(())
    class_dirs = sorted(d for d in entries if d.is_dir() and _CLASS_DIR.match(d.name))
    if len(class_dirs) < 2:
        raise XaibenchError(f"{folder}: expected class folders named <NN_CLASS> (01_TUMOR, ...). "
                            f"Layout: {SOURCE.layout}")
    class_names = tuple(_CLASS_DIR.match(d.name)["name"].lower() for d in class_dirs)  # type: ignore[index]
    files, labels = [], []
    for k, d in enumerate(class_dirs):
        found = sorted(f for f in d.iterdir() if f.suffix.lower() in EXTENSIONS)
        if not found:
            raise XaibenchError(f"{d}: no image tiles ({', '.join(EXTENSIONS)})")
        files += found
        labels += [k] * len(found)
    y_all = np.asarray(labels)
    seed = request.seed if p["seed"] is None else int(p["seed"])
    cap = p["max_per_class"]
    keep = common.stratified_subset(y_all, None if cap is None else int(cap) * len(class_dirs), seed)
    ids = [f"{files[i].parent.name}/{files[i].name}" for i in keep]
    xs = [to_array(open_image(files[i]), 3, request.image_size) for i in keep]
    y = y_all[keep]
    x = common.stack_same_size(xs, ids, "kather2016")
    splits = common.stratified_split(y, float(p["val"]), float(p["test"]), seed)
    notes = (f"colorectal cancer histology tiles (Kather 2016), RGB {x.shape[-1]}px; "
             f"{common.class_counts(y, class_names)}; "
             f"no lesion masks: localization metrics are skipped; seeded stratified split (no official one)")
    return common.split_bundle(x, y, ids, splits, class_names, notes)
