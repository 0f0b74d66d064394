"""Registers the built-in models: small CNNs (1D, 2D, 3D), a small UNet (2D, 3D), torchvision architectures (R3D-18
for volumes) and torchvision's segmentation networks.

Each model names the layer CAM methods explain by default: the output of its last
convolutional block, the coarsest map with the most class-specific features.
"""
from __future__ import annotations

from typing import Callable

from typing import TYPE_CHECKING

from xaibench import hookimpl
from xaibench.contract.lazy import lazy
from xaibench.contract.published import PretrainedWeights
from xaibench.contract.specs import SEGMENTATION_RECIPE, ModelSpec, TrainRecipe
from xaibench_models.segmenters import SEGMENTERS
from xaibench_models.weights import HEADS, IMAGENET, UNUSED

if TYPE_CHECKING:
    from torch import nn

#: The module of the torchvision builders, imported when a model is first built (xaibench.contract.lazy).
ZOO = "xaibench_models.zoo"


def _attr(path: str) -> Callable[[nn.Module], nn.Module]:
    def find(model: nn.Module) -> nn.Module:
        return model.get_submodule(path)

    return find


def _last(path: str) -> Callable[[nn.Module], nn.Module]:
    def find(model: nn.Module) -> nn.Module:
        return list(model.get_submodule(path).children())[-1]

    return find


def _imagenet(name: str, family: str) -> tuple[tuple[str, PretrainedWeights], ...]:
    """``weights: imagenet`` of ``name``: torchvision's file, a new head (:data:`~xaibench_models.weights.HEADS`)."""
    return (("imagenet", PretrainedWeights(
        url=IMAGENET[name], new=HEADS[family], unused=UNUSED.get(family, ()),
        convert=lazy(f"{ZOO}:densenet_keys") if family == "densenet" else None,
        description="torchvision's ImageNet-1k weights (IMAGENET1K_V1), fetched with --download")),)


#: Recipes for the torchvision networks: seed 001's augmentation (small rotations and flips), patience 4.
_TV_RECIPE = TrainRecipe(epochs=12, batch_size=32, lr=1e-3, augment=("hflip", "vflip", "rotate"), patience=4)
_TV = "torchvision {}, trained by the harness from random weights or (weights: imagenet) fine-tuned"
_STEM = ("; params: stem: imagenet (default: 7x7 stride-2 conv + max-pool, CAM layer 1/32 of the input) or "
         "small (3x3 stride-1 conv, no max-pool, as in CIFAR ResNets: CAM layer 1/8, 8x8 at 64 px)")


@hookimpl
def xaibench_register_models(register: Callable[[ModelSpec], None]) -> None:
    """Registers this plugin's built-in models with ``register`` (the ``xaibench_register_models`` hook), importing no torch."""
    register(ModelSpec(
        name="small-cnn",
        build=lazy("xaibench_models.small_cnn:build_small_cnn"),
        modalities=frozenset({"image", "signal", "volume"}),
        target_layer=_last("features"),
        description="three conv-BN-ReLU blocks, global average pooling, linear head",
        recipe=TrainRecipe(epochs=15, batch_size=32, lr=2e-3, augment=("hflip",), patience=5),
    ))
    register(ModelSpec(
        name="cnn1d-shallow",
        build=lazy("xaibench_models.cnn1d:build_cnn1d_shallow"),
        modalities=frozenset({"signal"}),
        target_layer=_last("features"),
        description="MNIST-1D's ConvBase: three stride-2 conv-ReLU layers, linear head over the flattened map",
        recipe=TrainRecipe(epochs=30, batch_size=100, lr=1e-2, augment=("shift",), patience=6),
        citation="Greydanus S., Scaling down deep learning, arXiv:2011.14439, 2020",
    ))
    register(ModelSpec(
        name="r3d-18", build=lazy(f"{ZOO}:build_r3d18"), modalities=frozenset({"volume"}), target_layer=_last("layer4"),
        description="torchvision R3D-18 (3D ResNet-18), weights=None, trained by the harness; params: stem: small "
                    "(default: 3x3x3 stride-1 conv, CAM layer 1/8 per axis) or video (torchvision's 3x7x7 "
                    "stride-1x2x2 stem, CAM layer 1/16 in height and width)",
        recipe=TrainRecipe(epochs=12, batch_size=16, lr=1e-3, augment=("hflip",), patience=4),
        citation="Tran et al., A Closer Look at Spatiotemporal Convolutions for Action Recognition, CVPR 2018",
    ))
    register(ModelSpec(
        name="resnet18",
        build=lazy(f"{ZOO}:resnet", 18),
        modalities=frozenset({"image"}),
        target_layer=_last("layer4"),
        description=_TV.format("ResNet-18") + _STEM,
        recipe=TrainRecipe(epochs=12, batch_size=64, lr=1e-3, augment=("hflip",), patience=4),
        citation="He et al., Deep Residual Learning for Image Recognition, CVPR 2016",
        weights=_imagenet("resnet18", "resnet"),
    ))
    for depth in (50, 101):
        register(ModelSpec(
            name=f"resnet{depth}", build=lazy(f"{ZOO}:resnet", depth), modalities=frozenset({"image"}),
            target_layer=_last("layer4"), description=_TV.format(f"ResNet-{depth}") + _STEM, recipe=_TV_RECIPE,
            citation="He et al., Deep Residual Learning for Image Recognition, CVPR 2016",
            weights=_imagenet(f"resnet{depth}", "resnet"),
        ))
    for depth in (121, 201):
        register(ModelSpec(
            # norm5 (features[-1]) is pytorch-grad-cam's documented DenseNet target: denseblock4's concatenated
            # maps after the final BatchNorm, before the functional ReLU and pooling of forward().
            name=f"densenet{depth}", build=lazy(f"{ZOO}:densenet", depth), modalities=frozenset({"image"}),
            target_layer=_attr("features.norm5"), description=_TV.format(f"DenseNet-{depth}"), recipe=_TV_RECIPE,
            citation="Huang et al., Densely Connected Convolutional Networks, CVPR 2017",
            weights=_imagenet(f"densenet{depth}", "densenet"),
        ))
    register(ModelSpec(
        name="googlenet", build=lazy(f"{ZOO}:build_googlenet"), modalities=frozenset({"image"}),
        target_layer=_attr("inception5b"), description=_TV.format("GoogLeNet (no auxiliary heads)"),
        recipe=_TV_RECIPE, citation="Szegedy et al., Going Deeper with Convolutions, CVPR 2015",
        weights=_imagenet("googlenet", "googlenet"),
    ))
    register(ModelSpec(
        name="mobilenet_v2", build=lazy(f"{ZOO}:build_mobilenet_v2"), modalities=frozenset({"image"}),
        target_layer=_last("features"), description=_TV.format("MobileNetV2"), recipe=_TV_RECIPE,
        citation="Sandler et al., MobileNetV2: Inverted Residuals and Linear Bottlenecks, CVPR 2018",
        weights=_imagenet("mobilenet_v2", "mobilenet_v2"),
    ))
    register(ModelSpec(
        name="vgg16", build=lazy(f"{ZOO}:build_vgg16"), modalities=frozenset({"image"}),
        target_layer=lazy(f"{ZOO}:last_of_type", "features", "ReLU"), description=_TV.format("VGG-16"),
        recipe=_TV_RECIPE,
        citation="Simonyan & Zisserman, Very Deep Convolutional Networks for Large-Scale Image Recognition, ICLR 2015",
        weights=_imagenet("vgg16", "vgg"),
    ))
    _register_segmenters(register)


#: torchvision's segmenters: -> (description, citation).
_TV_SEG = {
    "fcn_resnet50": ("FCN with a dilated ResNet-50 backbone",
                     "Long et al., Fully Convolutional Networks for Semantic Segmentation, CVPR 2015"),
    "deeplabv3_resnet50": ("DeepLabV3 with a dilated ResNet-50 backbone",
                           "Chen et al., Rethinking Atrous Convolution for Semantic Image Segmentation, "
                           "arXiv:1706.05587, 2017"),
    "lraspp_mobilenet_v3_large": ("LR-ASPP with a dilated MobileNetV3-Large backbone",
                                  "Howard et al., Searching for MobileNetV3, ICCV 2019"),
}


def _register_segmenters(register: Callable[[ModelSpec], None]) -> None:
    """Registers the segmentation networks, ``(N, K, *spatial)`` logits at the input's size, importing no torch."""
    register(ModelSpec(
        name="small-unet", build=lazy("xaibench_models.small_unet:build_small_unet"),
        modalities=frozenset({"image", "volume"}), target_layer=_attr("bottleneck"),
        description="segmenter: the harness's small UNet (3 poolings, 16-128 channels, nearest upsampling, skip "
                    "connections), 2D or 3D from the data; params: width, depth; CAM layer: bottleneck (1/8 of "
                    "the input)",
        recipe=SEGMENTATION_RECIPE, provides=frozenset({"segmentation"}),
        citation="Ronneberger et al., U-Net: Convolutional Networks for Biomedical Image Segmentation, MICCAI 2015",
    ))
    for name, (what, citation) in _TV_SEG.items():
        register(ModelSpec(
            name=name, build=lazy("xaibench_models.segmenters:segmenter", name), modalities=frozenset({"image"}),
            target_layer=_attr(SEGMENTERS[name][1]),
            description=f"segmenter: torchvision {what}, weights=None (trained by the harness), dict output: add "
                        f"`output_key: out`; CAM layer: {SEGMENTERS[name][1]} (the backbone's last stage)",
            recipe=SEGMENTATION_RECIPE, citation=citation, provides=frozenset({"segmentation"}),
        ))
