"""scikit-learn's bundled handwritten digits (8x8, 1,797 images), upsampled; no download.

The UCI optical-recognition digits (Alpaydin & Kaynak 1998) ship inside
scikit-learn (``sklearn.datasets.load_digits``): the only handwritten-digit
set available offline, which seed 003's occlusion study needs. Pixel values
0..16 are scaled to [0, 1] and the images resized bilinearly to the suite's
``image_size``. Splits are stratified by class and seeded; a sample's id is its
index in the bundled set, so it is the same whatever the split sizes.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from xaibench.contract.specs import DataBundle, DatasetRequest, Samples

CLASS_NAMES = tuple(str(d) for d in range(10))


def load(size: int) -> tuple[torch.Tensor, np.ndarray]:
    """All 1,797 images ``(N, 1, size, size)`` in [0, 1] and their labels."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = torch.from_numpy(bunch.images.astype(np.float32) / 16.0)[:, None]
    if size != x.shape[-1]:
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False).clamp(0.0, 1.0)
    return x.contiguous(), bunch.target.astype(np.int64)


def stratified_split(y: np.ndarray, fractions: tuple[float, float], seed: int) -> tuple[np.ndarray, ...]:
    """Indices of train/val/test, each class divided in the same proportions (val and test fractions given)."""
    from sklearn.model_selection import train_test_split

    val_fraction, test_fraction = fractions
    index = np.arange(len(y))
    rest, test = train_test_split(index, test_size=test_fraction, stratify=y, random_state=seed)
    train, val = train_test_split(rest, test_size=val_fraction / (1 - test_fraction), stratify=y[rest],
                                  random_state=seed)
    return np.sort(train), np.sort(val), np.sort(test)


def load_bundle(request: DatasetRequest) -> DataBundle:
    """Stratified, seeded train/val/test splits (default 70/10/20 %) of the 1,797 digits at ``size`` px."""
    p = dict(request.params)
    size = int(p.pop("size", request.image_size or 32))
    val_fraction, test_fraction = float(p.pop("val_fraction", 0.1)), float(p.pop("test_fraction", 0.2))
    seed = int(p.pop("seed", request.seed))
    if p:
        raise TypeError(f"unknown parameter(s) {', '.join(sorted(p))}; known: size, val_fraction, test_fraction, seed")
    if size < 8:
        raise ValueError(f"size must be >= 8 (the images are 8x8), got {size}")
    x, y = load(size)
    splits = {}
    for split, index in zip(("train", "val", "test"), stratified_split(y, (val_fraction, test_fraction), seed)):
        splits[split] = Samples(x=x[index], y=torch.from_numpy(y[index]), ids=tuple(f"digits-{i:04d}" for i in index))
    return DataBundle(**splits, class_names=CLASS_NAMES, modality="image",
                      notes=f"scikit-learn's bundled 8x8 handwritten digits (UCI), upsampled to {size} px; no masks")
