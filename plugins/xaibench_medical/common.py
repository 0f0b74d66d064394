"""What every real dataset shares: finding its folder, seeded stratified splits, building the bundle."""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from xaibench.data.download import Release, install
from xaibench.base.errors import XaibenchError
from xaibench.storage.paths import under_root
from xaibench.contract.specs import DataBundle, DatasetRequest, Samples

SPLITS = ("train", "val", "test")
#: Mask files beside their image: ``<name>_mask.png``, plus ``<name>_mask_1.png``, ... for further lesions.
MASK_STEM = re.compile(r"^(?P<stem>.*)_mask(_\d+)?$")


@dataclass(frozen=True)
class Source:
    """How a dataset is laid out on disk and where its public release lives (for the missing-data error).

    ``downloads`` are the release files ``--download`` may fetch, each pinned by a checksum;
    a source without any is never fetched (we do not fetch unverified data).
    """

    name: str
    layout: str
    release: str
    downloads: tuple[Release, ...] = ()


def params_of(request: DatasetRequest, known: Mapping[str, Any]) -> dict[str, Any]:
    """The request's parameters over ``known`` defaults; unknown names raise ``TypeError`` (a suite error)."""
    given = dict(request.params)
    unknown = sorted(set(given) - set(known))
    if unknown:
        raise TypeError(f"unknown parameter(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    return {**known, **given}


def locate(request: DatasetRequest, source: Source, path: str | None, candidates: Sequence[str]) -> Path:
    """The dataset's folder or file: ``path``, else the first of ``candidates`` found, under the data root.

    A suite's ``path`` must stay inside the data root (:func:`xaibench.storage.paths.under_root`);
    a missing dataset raises an error that names the expected layout and the public release,
    unless ``request.download`` is set and one of ``source.downloads`` provides it: then that
    release is fetched, verified and unpacked into the data root (:mod:`xaibench.data.download`).
    """
    wanted = [path] if path is not None else list(candidates)
    release = next((r for r in source.downloads if r.provides in wanted), None)
    offer = (f" Or pass --download to fetch {release.filename} ({release.checksum.partition(':')[0]}-verified) "
             f"into the data root." if release else "")
    if not request.data_root:
        raise XaibenchError(
            f"{source.name} is read from a data root, and none was given: pass --data-root DIR or set "
            f"XAIBENCH_DATA. Expected layout under it: {source.layout}. Public release: {source.release}.{offer}")
    root = Path(request.data_root).expanduser()
    if request.download:
        root.mkdir(parents=True, exist_ok=True)
    tried = ([under_root(root, path, f"{source.name} path", must_exist=False)] if path is not None
             else [root / c for c in candidates])
    found = next((p for p in tried if p.exists()), None)
    if found is not None:
        return found
    missing = f"{source.name} not found (looked for {', '.join(str(p) for p in tried)})"
    if not request.download:
        raise XaibenchError(f"{missing}. Expected layout: {source.layout}. Public release: {source.release}.{offer}")
    if release is None:
        raise XaibenchError(
            f"{missing}, and --download cannot fetch it: xaibench knows no release of it with a pinned checksum "
            f"and never fetches unverified data. Get it by hand from {source.release} and place it as: "
            f"{source.layout}")
    provided = install(release, root, request.mirror)
    if not provided.exists():
        raise XaibenchError(f"{release.filename} was fetched and verified but {provided} is not in it: "
                            f"expected layout {source.layout}")
    return next(p for p in tried if p.exists())


def stratified_split(y: np.ndarray, val: float, test: float, seed: int) -> dict[str, np.ndarray]:
    """Seeded per-class split into train/val/test indices, each split shuffled.

    Callers sort samples by id first, so a split depends only on the set of files and the seed.
    """
    if not (0 <= val < 1 and 0 < test < 1 and val + test < 1):
        raise TypeError(f"val and test must be fractions with val + test < 1, got val={val}, test={test}")
    rng = np.random.default_rng(seed)
    parts: dict[str, list[np.ndarray]] = {s: [] for s in SPLITS}
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        idx = idx[rng.permutation(len(idx))]
        n_test, n_val = round(test * len(idx)), round(val * len(idx))
        parts["test"].append(idx[:n_test])
        parts["val"].append(idx[n_test : n_test + n_val])
        parts["train"].append(idx[n_test + n_val :])
    return {s: rng.permutation(np.concatenate(parts[s])) for s in SPLITS}


def stratified_subset(y: np.ndarray, n: int | None, seed: int) -> np.ndarray:
    """At most ``n`` indices keeping class proportions (all of them, in order, when ``n`` is None or large)."""
    if n is None or n >= len(y):
        return np.arange(len(y))
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(y, return_counts=True)
    take = np.maximum(1, np.round(counts * n / len(y)).astype(int))
    keep = [np.sort(rng.permutation(np.flatnonzero(y == c))[:k]) for c, k in zip(classes, take)]
    return np.sort(np.concatenate(keep))


def samples(x: np.ndarray, y: np.ndarray, ids: Sequence[str], masks: np.ndarray | None = None,
            regions: np.ndarray | None = None) -> Samples:
    """The :class:`~xaibench.contract.specs.Samples` of numpy arrays: ``x`` float32 ``(N, C, *spatial)``, ``y`` int64 ``(N,)``,
    ``ids`` (one stable string each), optional ``masks`` bool ``(N, *spatial)`` and ``regions`` int8 ``(N, *spatial)``.
    """
    return Samples(
        x=torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)),
        y=torch.from_numpy(np.asarray(y, dtype=np.int64)),
        ids=tuple(ids),
        masks=None if masks is None else torch.from_numpy(np.ascontiguousarray(masks, dtype=bool)),
        regions=None if regions is None else torch.from_numpy(np.ascontiguousarray(regions, dtype=np.int8)),
    )


def split_bundle(x: np.ndarray, y: np.ndarray, ids: Sequence[str], splits: Mapping[str, np.ndarray],
                 class_names: Sequence[str], notes: str, masks: np.ndarray | None = None,
                 regions: np.ndarray | None = None, region_top_level: int | None = None,
                 modality: str = "image", ground_truth: str = "masks") -> DataBundle:
    """A bundle of ``modality`` from arrays of all samples and the split indices (``ground_truth``: what
    ``masks`` are)."""
    ids_arr = np.asarray(ids, dtype=object)
    parts = {
        s: samples(x[i], y[i], ids_arr[i].tolist(), None if masks is None else masks[i],
                   None if regions is None else regions[i])
        for s, i in splits.items()
    }
    return DataBundle(**parts, class_names=tuple(class_names), modality=modality,
                      region_top_level=region_top_level, notes=notes, ground_truth=ground_truth)


def stack_same_size(arrays: Sequence[np.ndarray], ids: Sequence[str], what: str) -> np.ndarray:
    """Stack per-sample arrays, or say which files differ in size and that ``image_size`` fixes it."""
    shapes = {a.shape for a in arrays}
    if len(shapes) > 1:
        first = arrays[0].shape
        odd = next(i for i, a in zip(ids, arrays) if a.shape != first)
        raise XaibenchError(f"{what}: images have different sizes ({ids[0]} is {first[-2:]}, {odd} is "
                            f"{next(a.shape for a in arrays if a.shape != first)[-2:]}); set image_size in the suite")
    return np.stack(arrays)


def class_counts(y: np.ndarray, class_names: Sequence[str]) -> str:
    """``"<n> <class>, ..."`` for the notes: how many of the labels ``y`` (int, ``(N,)``) fall in each class."""
    counts = np.bincount(y, minlength=len(class_names))
    return ", ".join(f"{n} {c}" for c, n in zip(class_names, counts))
