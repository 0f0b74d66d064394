"""The release facts pinned in the plugins (so that registering them imports no torchvision) equal torchvision's."""
from __future__ import annotations

import torchvision

from xaibench_medical import mnist
from xaibench_models import weights

ENUMS = {"resnet18": "ResNet18_Weights", "resnet50": "ResNet50_Weights", "resnet101": "ResNet101_Weights",
         "densenet121": "DenseNet121_Weights", "densenet201": "DenseNet201_Weights", "googlenet": "GoogLeNet_Weights",
         "mobilenet_v2": "MobileNet_V2_Weights", "vgg16": "VGG16_Weights"}


def test_imagenet_urls_are_torchvisions_imagenet1k_v1() -> None:
    assert weights.IMAGENET == {name: torchvision.models.get_weight(f"{enum}.IMAGENET1K_V1").url
                            for name, enum in ENUMS.items()}


def test_mnist_files_and_mirror_are_torchvisions() -> None:
    assert list(mnist.FILES.values()) == [tuple(r) for r in torchvision.datasets.MNIST.resources]
    assert mnist.MIRROR == torchvision.datasets.MNIST.mirrors[0]
    assert [r.checksum for r in mnist.SOURCE.downloads] == [f"md5:{md5}" for _, md5 in torchvision.datasets.MNIST.resources]
