"""MedMNIST: any flag (pathmnist, breastmnist, dermamnist, ...) from a local ``.npz`` with its official splits.

The release files hold ``{train,val,test}_images`` (uint8, ``(N, H, W)`` or
``(N, H, W, 3)``) and ``{split}_labels`` (``(N, 1)``); ``<flag>.npz`` is 28 px and
``<flag>_<size>.npz`` the MedMNIST+ sizes 64, 128 and 224. Multi-label flags
(chestmnist) are refused: the harness explains one class per sample.

MedMNIST-3D (``load_medmnist3d``): the six 3D flags (organmnist3d, nodulemnist3d,
adrenalmnist3d, fracturemnist3d, vesselmnist3d, synapsemnist3d), ``(N, D, H, W)`` uint8
volumes of 28^3 (``<flag>.npz``) or 64^3 (``<flag>_64.npz``), read as ``(N, 1, D, H, W)``
in [0, 1] (MedMNIST's own ``img / 255``) with the release's class names. A 3D flag given
to the 2D dataset (or a 2D flag to the 3D one) is refused: its ``(N, 28, 28, 28)`` array
would otherwise read as 28-channel images.
"""
from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from xaibench.storage.cache import file_digest
from xaibench.data.download import Release
from xaibench.base.errors import XaibenchError
from xaibench.contract.specs import DataBundle, DatasetRequest
from xaibench_medical.common import SPLITS, Source, locate, params_of, samples, stratified_subset
from xaibench_medical.medmnist_releases import CLASSES_3D, MD5, MD5_3D, ZENODO

_KEYS = "with keys train_images, train_labels, val_images, val_labels, test_images, test_labels"
_RELEASE = "Yang et al., Sci Data 10:41 (2023), https://zenodo.org/records/10519652 (or `pip install medmnist`)"


def _downloads(md5: dict[str, str]) -> tuple[Release, ...]:
    return tuple(Release(url=f"{ZENODO}/{name}?download=1", filename=f"medmnist/{name}", checksum=f"md5:{digest}")
                 for name, digest in md5.items())


SOURCE = Source(name="MedMNIST", layout=f"medmnist/<flag>.npz (28 px) or medmnist/<flag>_<size>.npz, {_KEYS}",
                release=_RELEASE, downloads=_downloads(MD5))
SOURCE_3D = Source(name="MedMNIST-3D", layout=f"medmnist/<flag>.npz (28^3) or medmnist/<flag>_64.npz (64^3), {_KEYS}",
                   release=_RELEASE, downloads=_downloads(MD5_3D))


def _resize(images: np.ndarray, size: int | None) -> np.ndarray:
    """``(N, C, *spatial)`` float32 in [0, 1]; area interpolation when shrinking, (tri)linear when enlarging."""
    x = torch.from_numpy(images).float().div_(255.0)
    if size is None or x.shape[-1] == size:
        return x.numpy()
    mode = "area" if size < x.shape[-1] else {4: "bilinear", 5: "trilinear"}[x.dim()]
    extra = {} if mode == "area" else {"align_corners": False}
    return F.interpolate(x, size=(size,) * (x.dim() - 2), mode=mode, **extra).numpy()


def release_note(path: Path, name: str) -> str:
    """Whether the local file is the official release: its MD5 against the pinned one (a note, not an error)."""
    pinned = MD5.get(name) or MD5_3D.get(name)
    if pinned is None:
        return f"{path.name}: no pinned checksum to compare"
    digest = file_digest(path, "md5")
    if digest == pinned:
        return f"{path.name} is the official release (MD5 {digest})"
    return (f"**{path.name} is NOT the official release**: MD5 {digest}, the release's is {pinned} "
            f"(re-saved or modified; results may not compare with published ones)")


def load_medmnist(request: DatasetRequest) -> DataBundle:
    """A 2D MedMNIST flag (params ``flag``, ``size``, ``path``, ``class_names``, ``max_per_split``, ``seed``)."""
    return _load(request, volumes=False)


def load_medmnist3d(request: DatasetRequest) -> DataBundle:
    """A MedMNIST-3D flag as volumes ``(N, 1, D, H, W)``; the same params as :func:`load_medmnist` (size 28 or 64)."""
    return _load(request, volumes=True)


def _load(request: DatasetRequest, volumes: bool) -> DataBundle:
    p = params_of(request, {"flag": None, "size": 28, "path": None, "class_names": None, "max_per_split": None,
                            "seed": None})
    dataset = "medmnist3d" if volumes else "medmnist"
    if not p["flag"]:
        raise TypeError(f"{dataset} needs a 'flag' parameter, e.g. params: "
                        f"{{flag: {'nodulemnist3d' if volumes else 'breastmnist'}}}")
    flag, size = str(p["flag"]), int(p["size"])
    if (flag in CLASSES_3D) != volumes:
        raise TypeError(f"{flag} is a {'2D' if volumes else '3D'} MedMNIST flag: use the "
                        f"{'medmnist' if volumes else 'medmnist3d'} dataset"
                        + (f" (3D flags: {', '.join(CLASSES_3D)})" if volumes else ""))
    name = f"{flag}.npz" if size == 28 else f"{flag}_{size}.npz"
    path = locate(request, SOURCE_3D if volumes else SOURCE, p["path"], (f"medmnist/{name}", name))
    try:
        with np.load(path) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:  # np.load's ways to fail on a bad file
        raise XaibenchError(f"{path}: cannot read it as a MedMNIST .npz ({exc}); the file is corrupt or "
                            f"truncated") from None
    missing = [f"{s}_{k}" for s in SPLITS for k in ("images", "labels") if f"{s}_{k}" not in arrays]
    if missing:
        raise XaibenchError(f"{path}: missing key(s) {', '.join(missing)}. Expected layout: {SOURCE.layout}")
    labels = {s: arrays[f"{s}_labels"].reshape(len(arrays[f"{s}_labels"]), -1) for s in SPLITS}
    if any(v.shape[1] != 1 for v in labels.values()):
        raise XaibenchError(f"{path}: labels have {labels['train'].shape[1]} columns: multi-label flags are not "
                            f"supported (one class per sample)")
    num_classes = int(max(v.max() for v in labels.values())) + 1
    class_names = p["class_names"] or (CLASSES_3D[flag] if volumes else [str(k) for k in range(num_classes)])
    if len(class_names) != num_classes:
        raise TypeError(f"class_names has {len(class_names)} names but {path.name} has {num_classes} classes")
    seed = request.seed if p["seed"] is None else int(p["seed"])
    cap = p["max_per_split"]
    parts = {}
    for s in SPLITS:
        images, y = arrays[f"{s}_images"], labels[s][:, 0].astype(np.int64)
        if images.ndim not in ((4,) if volumes else (3, 4)) or len(images) != len(y):
            raise XaibenchError(f"{path}: {s}_images has shape {images.shape}; expected "
                                f"{'(N, D, H, W)' if volumes else '(N, H, W) or (N, H, W, 3)'} "
                                f"with N = len({s}_labels) = {len(y)}")
        keep = stratified_subset(y, None if cap is None else int(cap), seed)
        images = images[keep]
        images = images[:, None] if images.ndim == 3 or volumes else images.transpose(0, 3, 1, 2)
        parts[s] = samples(_resize(images, request.image_size), y[keep], [f"{flag}/{s}/{i:06d}" for i in keep])
    counts = np.bincount(parts["train"].y.numpy(), minlength=num_classes)
    return DataBundle(**parts, class_names=tuple(str(c) for c in class_names),
                      modality="volume" if volumes else "image",
                      notes=(f"MedMNIST {flag} ({Path(name).stem}), {release_note(path, name)}, official "
                             f"train/val/test splits"
                             f"{'' if cap is None else f' subsampled to at most {cap} per split'}; "
                             f"train classes {counts.tolist()}; no masks: localization metrics are skipped"))
