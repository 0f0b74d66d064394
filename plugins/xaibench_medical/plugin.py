"""Registers the real medical datasets; each is read from the data root (``--data-root`` / ``XAIBENCH_DATA``)."""
from __future__ import annotations

from typing import Callable

from xaibench import hookimpl
from xaibench.specs import DatasetSpec
from xaibench_medical import busi, imagefolder, kather, medmnist, mnist, nifti


@hookimpl
def xaibench_register_datasets(register: Callable[[DatasetSpec], None]) -> None:
    register(DatasetSpec(
        name="busi", load=busi.load_busi, modality="image", has_masks=True, citation=busi.CITATION,
        description="breast ultrasound, benign/malignant/normal, lesion masks (original release or busi256 copy)",
    ))
    register(DatasetSpec(
        name="kather2016", load=kather.load_kather, modality="image", has_masks=False, citation=kather.CITATION,
        description="colorectal histology textures, 8 classes of 150x150 RGB tiles, no masks",
    ))
    register(DatasetSpec(
        name="medmnist", load=medmnist.load_medmnist, modality="image", has_masks=False, citation=medmnist.CITATION,
        description="any MedMNIST flag from a local <flag>.npz, official splits, no masks",
    ))
    register(DatasetSpec(
        name="medmnist3d", load=medmnist.load_medmnist3d, modality="volume", has_masks=False,
        citation=medmnist.CITATION,
        description="a MedMNIST-3D flag (organ, nodule, adrenal, fracture, vessel, synapse) from a local "
                    "<flag>.npz, 28^3 or 64^3 volumes, official splits, no masks",
    ))
    register(DatasetSpec(
        name="imagefolder", load=imagefolder.load_imagefolder, modality="image", has_masks=True, has_regions=True,
        description="your own <class>/<name>.<ext> images, optional masks and graded region maps",
    ))
    register(DatasetSpec(
        name="niftifolder", load=nifti.load_niftifolder, modality="volume", has_masks=True,
        description="your own <class>/<name>.nii[.gz] volumes (nibabel, the nifti extra), optional "
                    "<name>_mask.nii[.gz] masks, voxel spacing recorded",
    ))
    register(DatasetSpec(
        name="mnist", load=mnist.load_mnist, modality="image", has_masks=False, citation=mnist.CITATION,
        description="MNIST digits, 28x28, official split; --download fetches it (torchvision's MD5s)",
    ))
