"""Registers the real medical datasets; each is read from the data root (``--data-root`` / ``XAIBENCH_DATA``)."""
from __future__ import annotations

from typing import Callable

from xaibench import hookimpl
from xaibench.contract.lazy import lazy
from xaibench.contract.specs import DatasetSpec

BUSI_CITATION = ("Al-Dhabyani W., Gomaa M., Khaled H., Fahmy A., Dataset of breast ultrasound images, "
                 "Data in Brief 28, 2020")
KATHER_CITATION = ("Kather J.N. et al., Multi-class texture analysis in colorectal cancer histology, "
                   "Scientific Reports 6, 27988, 2016")
MEDMNIST_CITATION = ("Yang J. et al., MedMNIST v2 - A large-scale lightweight benchmark for 2D and 3D biomedical image "
                     "classification, Scientific Data 10, 41, 2023")
MNIST_CITATION = ("LeCun Y., Bottou L., Bengio Y., Haffner P., Gradient-based learning applied to document "
                  "recognition, 1998")


@hookimpl
def xaibench_register_datasets(register: Callable[[DatasetSpec], None]) -> None:
    """Registers this plugin's real-data datasets (read from the data root) with ``register`` (the ``xaibench_register_datasets`` hook), importing no torch."""
    register(DatasetSpec(
        name="busi", load=lazy("xaibench_medical.busi:load_busi"),
        modality="image", has_masks=True, citation=BUSI_CITATION,
        description="breast ultrasound, benign/malignant/normal, lesion masks (original release or busi256 copy)",
    ))
    register(DatasetSpec(
        name="kather2016", load=lazy("xaibench_medical.kather:load_kather"),
        modality="image", has_masks=False, citation=KATHER_CITATION,
        description="colorectal histology textures, 8 classes of 150x150 RGB tiles, no masks",
    ))
    register(DatasetSpec(
        name="medmnist", load=lazy("xaibench_medical.medmnist:load_medmnist"),
        modality="image", has_masks=False, citation=MEDMNIST_CITATION,
        description="any MedMNIST flag from a local <flag>.npz, official splits, no masks",
    ))
    register(DatasetSpec(
        name="medmnist3d", load=lazy("xaibench_medical.medmnist:load_medmnist3d"),
        modality="volume", has_masks=False,
        citation=MEDMNIST_CITATION,
        description="a MedMNIST-3D flag (organ, nodule, adrenal, fracture, vessel, synapse) from a local "
                    "<flag>.npz, 28^3 or 64^3 volumes, official splits, no masks",
    ))
    register(DatasetSpec(
        name="imagefolder", load=lazy("xaibench_medical.imagefolder:load_imagefolder"),
        modality="image", has_masks=True, has_regions=True,
        description="your own <class>/<name>.<ext> images, optional masks and graded region maps",
    ))
    register(DatasetSpec(
        name="niftifolder", load=lazy("xaibench_medical.nifti:load_niftifolder"),
        modality="volume", has_masks=True,
        description="your own <class>/<name>.nii[.gz] volumes (nibabel, the nifti extra), optional "
                    "<name>_mask.nii[.gz] masks, voxel spacing recorded",
    ))
    register(DatasetSpec(
        name="mnist", load=lazy("xaibench_medical.mnist:load_mnist"),
        modality="image", has_masks=False, citation=MNIST_CITATION,
        description="MNIST digits, 28x28, official split; --download fetches it (torchvision's MD5s)",
    ))
