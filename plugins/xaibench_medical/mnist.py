"""MNIST handwritten digits (28 x 28, 10 classes; seed 003's data), from the data root or ``--download``.

The four IDX files of the release (``mnist/<name>.gz``) are fetched with ``--download``
from torchvision's first mirror and checked against torchvision's MD5s
(``torchvision.datasets.MNIST.resources``); the offline default of seed 003's study
stays scikit-learn's bundled 8 x 8 digits (``digits``). The official 60,000 / 10,000
train / test split is kept; the validation split is cut from the training images.
"""
from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from xaibench.data.download import Release
from xaibench.base.errors import XaibenchError
from xaibench.contract.specs import DataBundle, DatasetRequest
from xaibench_medical import common

#: The release files by role, with torchvision's MD5s (``torchvision.datasets.MNIST.resources``, pinned here so
#: that registering the dataset imports no torchvision; a test checks they equal torchvision's).
FILES = {"train_images": ("train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
         "train_labels": ("train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432"),
         "test_images": ("t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3"),
         "test_labels": ("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c")}
#: torchvision's first MNIST mirror (``torchvision.datasets.MNIST.mirrors[0]``).
MIRROR = "https://ossci-datasets.s3.amazonaws.com/mnist/"
SOURCE = common.Source(
    name="MNIST",
    layout="mnist/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz (the release's four IDX files, gzipped)",
    release="LeCun et al. 1998, http://yann.lecun.com/exdb/mnist/ (mirror: torchvision's)",
    downloads=tuple(Release(url=f"{MIRROR}{name}", filename=f"mnist/{name}",
                            checksum=f"md5:{md5}") for name, md5 in FILES.values()),
)
#: IDX magic numbers: unsigned bytes, 3 dimensions (images) or 1 (labels).
_MAGIC = {3: 2051, 1: 2049}


def read_idx(path: Path, dims: int) -> np.ndarray:
    """A gzipped IDX file of unsigned bytes with ``dims`` dimensions (the MNIST format) as a uint8 array."""
    with gzip.open(path, "rb") as f:
        data = f.read()
    header = np.frombuffer(data, ">u4", count=1 + dims)
    if len(header) < 1 + dims or int(header[0]) != _MAGIC[dims]:
        raise XaibenchError(f"{path}: not an MNIST IDX file with {dims} dimension(s)")
    shape = tuple(int(n) for n in header[1:])
    body = np.frombuffer(data, np.uint8, offset=4 * (1 + dims))
    if body.size != int(np.prod(shape)):
        raise XaibenchError(f"{path}: truncated ({body.size} bytes for shape {shape})")
    return body.reshape(shape)


def load_mnist(request: DatasetRequest) -> DataBundle:
    """MNIST (LeCun et al. 1998) from the four IDX files under ``<data root>/mnist/``: 28 x 28 grey digits, 10 classes.

    ``request.params``: ``n_train`` / ``n_test`` (seeded stratified subsets; default all 60,000 /
    10,000), ``val`` (the share of the training images held out, 0.1), ``seed``. ``x`` float32
    ``(N, 1, 28, 28)`` in [0, 1]; no masks. The official test split is kept. Raises
    :class:`~xaibench.base.errors.XaibenchError` naming the missing file (and ``--download``, which fetches
    it checked against torchvision's MD5).
    """
    p = common.params_of(request, {"n_train": None, "n_test": None, "val": 0.1, "seed": None})
    seed = request.seed if p["seed"] is None else int(p["seed"])
    arrays = {role: read_idx(common.locate(request, SOURCE, None, (f"mnist/{name}",)), 3 if "images" in role else 1)
              for role, (name, _) in FILES.items()}
    parts = {}
    for split, cap in (("train", p["n_train"]), ("test", p["n_test"])):
        y = arrays[f"{split}_labels"].astype(np.int64)
        keep = common.stratified_subset(y, None if cap is None else int(cap), seed)
        parts[split] = (arrays[f"{split}_images"][keep], y[keep], [f"{split}/{i:05d}" for i in keep])
    x_train, y_train, ids_train = parts["train"]
    x_test, y_test, ids_test = parts["test"]
    from sklearn.model_selection import train_test_split

    train_idx, val_idx = train_test_split(np.arange(len(y_train)), test_size=float(p["val"]), stratify=y_train,
                                          random_state=seed)
    x = np.concatenate([x_train, x_test])[:, None].astype(np.float32) / 255.0
    if request.image_size is not None and request.image_size != 28:
        raise TypeError(f"MNIST is 28 x 28: set image_size to 28 or leave it out, got {request.image_size}")
    n = len(y_train)
    splits = {"train": np.sort(train_idx), "val": np.sort(val_idx), "test": np.arange(n, n + len(y_test))}
    notes = (f"MNIST 28x28 grayscale, official split: {n} training images (a {p['val']:g} validation share cut "
             f"from them), {len(y_test)} test images; {common.class_counts(y_test, [str(k) for k in range(10)])} "
             f"in the test split; no masks: localization metrics are skipped")
    return common.split_bundle(x, np.concatenate([y_train, y_test]), ids_train + ids_test, splits,
                               [str(k) for k in range(10)], notes)
