"""Registers the embedded datasets: synthetic lesion images and volumes (the default medical data), MNIST-1D, digits."""
from __future__ import annotations

from typing import Callable

from xaibench import hookimpl
from xaibench.contract.lazy import lazy
from xaibench.contract.specs import DataBundle, DatasetRequest, DatasetSpec, Samples
from xaibench_datasets import synthetic

SPLITS = ("train", "val", "test")


def load_synthetic(request: DatasetRequest) -> DataBundle:
    """Three independently seeded splits; sample ``i`` of a split never depends on the split's size."""
    import torch

    p = dict(request.params)
    size = int(p.pop("size", request.image_size or 64))
    sizes = {"train": int(p.pop("n_train", 600)), "val": int(p.pop("n_val", 150)), "test": int(p.pop("n_test", 300))}
    shortcut = float(p.pop("shortcut", 0.0))
    seed = int(p.pop("seed", request.seed))
    if p:
        raise TypeError(f"unknown parameter(s) {', '.join(sorted(p))}; known: size, n_train, n_val, n_test, shortcut, seed")
    splits = {}
    for k, split in enumerate(SPLITS):
        data = synthetic.generate(sizes[split], size, seed * len(SPLITS) + k, shortcut=shortcut)
        splits[split] = Samples(
            x=torch.from_numpy(data["x"]),
            y=torch.from_numpy(data["y"]),
            ids=tuple(f"lesion{size}-s{seed}-{split}-{i:05d}" for i in range(sizes[split])),
            masks=torch.from_numpy(data["masks"]),
            regions=torch.from_numpy(data["regions"]),
        )
    return DataBundle(
        **splits, class_names=synthetic.CLASS_NAMES, modality="image",
        region_top_level=synthetic.REGION_TOP_LEVEL,
        notes=("synthetic ultrasound-like images generated offline with exact lesion masks; class = lesion shape "
               "and texture; burned-in marks outside lesions as distractors"
               + (f"; shortcut {shortcut}: marks correlate with the malignant class" if shortcut else "")),
    )


@hookimpl
def xaibench_register_datasets(register: Callable[[DatasetSpec], None]) -> None:
    """Registers this plugin's built-in generated datasets with ``register`` (the ``xaibench_register_datasets`` hook), importing no torch."""
    register(DatasetSpec(
        name="synthetic-lesions",
        load=load_synthetic,
        deterministic=True,
        modality="image",
        has_masks=True,
        has_regions=True,
        description="ultrasound-like images, normal/benign/malignant, exact lesion masks and graded region maps",
    ))
    register(DatasetSpec(
        name="mnist1d", load=lazy("xaibench_datasets.mnist1d:load_bundle"),
        modality="signal", has_masks=False, deterministic=True,
        description="MNIST-1D: 40-point 1D digit signals, ten classes, generated offline (seed 000)",
        citation="Greydanus, Scaling Down Deep Learning, arXiv 2011.14439, 2020",
    ))
    register(DatasetSpec(
        name="digits", load=lazy("xaibench_datasets.digits:load_bundle"),
        modality="image", has_masks=False, deterministic=True,
        description="scikit-learn's bundled 8x8 handwritten digits upsampled to image_size (seed 003)",
        citation="Alpaydin & Kaynak, Optical Recognition of Handwritten Digits, UCI 1998 (scikit-learn load_digits)",
    ))
    register(DatasetSpec(
        name="synthetic-volumes", load=lazy("xaibench_datasets.volumes:load_bundle"),
        deterministic=True, modality="volume", has_masks=True,
        has_regions=True,
        description="CT/MRI-like 32^3 volumes, normal/benign/malignant by lesion shape and texture, exact 3D masks",
    ))
