"""A folder of NIfTI volumes, ``<class>/<name>.nii[.gz]``: users' own CT/MRI volumes with optional masks.

Read with nibabel (the ``nifti`` extra: ``pip install xaibench[nifti]``). Each volume is
reoriented to the closest canonical (RAS+) orientation, so every volume of a folder shares
its axes, and laid out as ``(D, H, W) = (z, y, x)`` voxels: axial slices along ``D``. Its
voxel spacing (the header's zooms, in the file's units, usually mm) is recorded in the
notes, per distinct spacing; resizing to ``size``^3 (the suite's ``image_size``) changes it,
and the notes say so. Values are kept as stored (``get_fdata``: scale slope and intercept
applied, CT in Hounsfield units), unless ``window: [low, high]`` maps ``low..high``
linearly to [0, 1] and clips outside it (a CT window, asked for explicitly).

Masks: ``<name>_mask.nii[.gz]`` beside a volume (any voxel > 0.5 is relevant), of the
volume's shape; volumes without one get an empty mask (localization is NaN there) and the
notes say how many have one. Splits are seeded and stratified by class.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from xaibench.base.errors import XaibenchError
from xaibench.contract.specs import DataBundle, DatasetRequest
from xaibench_medical import common

SOURCE = common.Source(
    name="NIfTI folder",
    layout="<path>/<class>/<name>.nii or .nii.gz, optional <name>_mask.nii[.gz] beside each volume",
    release="your own data: set params.path to the folder, relative to the data root",
)
SUFFIXES = (".nii.gz", ".nii")


def _stem(path: Path) -> str | None:
    return next((path.name[: -len(s)] for s in SUFFIXES if path.name.endswith(s)), None)


def read_volume(path: Path) -> tuple[np.ndarray, tuple[float, float, float]]:
    """``(D, H, W)`` float32 voxels in canonical (RAS+) orientation and their ``(D, H, W)`` spacing.

    Raises XaibenchError when nibabel is missing, the file is unreadable or not 3D.
    """
    try:
        import nibabel
    except ImportError:
        raise XaibenchError("reading NIfTI volumes needs nibabel: pip install 'xaibench[nifti]'") from None
    try:
        image = nibabel.as_closest_canonical(nibabel.load(str(path)))
        data = np.asarray(image.get_fdata(dtype=np.float32))
    except Exception as exc:  # nibabel's many ways to fail on a corrupt or foreign file
        raise XaibenchError(f"{path}: cannot read it as NIfTI ({type(exc).__name__}: {exc})") from None
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise XaibenchError(f"{path}: a {data.ndim}D image of shape {data.shape}; expected one 3D volume")
    sx, sy, sz = (float(z) for z in image.header.get_zooms()[:3])
    return np.ascontiguousarray(data.transpose(2, 1, 0)), (sz, sy, sx)


def _resized(volume: np.ndarray, size: int | None, mask: bool) -> np.ndarray:
    if size is None or volume.shape == (size,) * 3:
        return volume
    t = torch.from_numpy(volume.astype(np.float32))[None, None]
    out = F.interpolate(t, size=(size,) * 3, mode="nearest" if mask else "trilinear",
                        **({} if mask else {"align_corners": False}))[0, 0].numpy()
    return out > 0.5 if mask else out


def _window(volume: np.ndarray, window: Any) -> np.ndarray:
    if window is None:
        return volume
    low, high = (float(v) for v in window)
    if not high > low:
        raise TypeError(f"window must be [low, high] with high > low, got {window}")
    return np.clip((volume - low) / (high - low), 0.0, 1.0)


def load_niftifolder(request: DatasetRequest) -> DataBundle:
    """Volumes ``(N, 1, D, H, W)`` and masks from a ``<class>/<name>.nii[.gz]`` folder (params: ``path``,
    ``val``, ``test``, ``seed``, ``window``); different shapes need ``image_size``."""
    p = common.params_of(request, {"path": None, "val": 0.15, "test": 0.25, "seed": None, "window": None})
    if p["path"] is None:
        raise TypeError("niftifolder needs a 'path' parameter: the folder of <class>/<name>.nii[.gz] volumes")
    folder = common.locate(request, SOURCE, p["path"], ())
    class_dirs = sorted(d for d in folder.iterdir() if d.is_dir()) if folder.is_dir() else []
    if len(class_dirs) < 2:
        raise XaibenchError(f"{folder}: expected at least two class folders. Layout: {SOURCE.layout}")
    items = [(f, k) for k, d in enumerate(class_dirs) for f in sorted(d.iterdir())
             if _stem(f) is not None and not _stem(f).endswith("_mask")]  # type: ignore[union-attr]
    if not items:
        raise XaibenchError(f"{folder}: no NIfTI volumes (.nii, .nii.gz) in its class folders")
    size = request.image_size
    ids, xs, masks, spacings, n_masked = [], [], [], {}, 0
    for f, _ in items:
        volume, spacing = read_volume(f)
        spacings.setdefault(spacing, []).append(f.name)
        mask_path = next((f.parent / f"{_stem(f)}_mask{s}" for s in SUFFIXES
                          if (f.parent / f"{_stem(f)}_mask{s}").exists()), None)
        mask = np.zeros(volume.shape, dtype=bool)
        if mask_path is not None:
            m, _ = read_volume(mask_path)
            if m.shape != volume.shape:
                raise XaibenchError(f"{mask_path}: mask of shape {m.shape} for a volume of shape {volume.shape}")
            mask, n_masked = m > 0.5, n_masked + 1
        ids.append(f.relative_to(folder).as_posix())
        xs.append(_resized(_window(volume, p["window"]), size, mask=False)[None])
        masks.append(_resized(mask, size, mask=True))
    x = common.stack_same_size(xs, ids, "niftifolder")
    y = np.asarray([k for _, k in items])
    class_names = tuple(d.name for d in class_dirs)
    seed = request.seed if p["seed"] is None else int(p["seed"])
    splits = common.stratified_split(y, float(p["val"]), float(p["test"]), seed)
    spacing_note = "; ".join(f"{'x'.join(f'{s:g}' for s in sp)} (D x H x W) for {len(names)}"
                             for sp, names in spacings.items())
    window = "" if p["window"] is None else f"; window {list(p['window'])} mapped to [0, 1]"
    notes = (f"NIfTI folder {folder.name}: {common.class_counts(y, class_names)}; voxel spacing {spacing_note}"
             f"{'' if size is None else f' before trilinear resizing to {size}^3'}{window}"
             f"; masks for {n_masked} of {len(ids)} volumes; seeded stratified split")
    return common.split_bundle(x, y, ids, splits, class_names, notes, masks=np.stack(masks) if n_masked else None,
                               modality="volume")
