"""Registers timm's and MONAI's networks as models: ``timm`` (any convolutional architecture by
``params: {arch: ...}``), ``timm/<arch>`` short forms with timm's published ImageNet weights, and
``monai/<net>`` (2D or 3D from the data), classifiers and segmenters.

Nothing here imports torch, timm or MONAI: builders and CAM-layer finders are named with
:func:`xaibench.contract.lazy.lazy`, and the libraries load when a network is first built (a missing
one stops the run at its plan with the pip command of its extra).
"""
from __future__ import annotations

from collections.abc import Callable

from xaibench import hookimpl
from xaibench.contract.lazy import lazy
from xaibench.contract.published import PretrainedWeights
from xaibench.contract.specs import SEGMENTATION_RECIPE, ModelSpec, TrainRecipe
from xaibench_networks.catalogue import NETS, SEG_NETS, TIMM_IMAGENET

TIMM = "xaibench_networks.timm_nets"
MONAI = "xaibench_networks.monai_nets"
MONAI_SEG = "xaibench_networks.monai_seg"

_RECIPE = TrainRecipe(epochs=12, batch_size=32, lr=1e-3, augment=("hflip",), patience=4)
_TIMM_CITATION = "Wightman R., PyTorch Image Models, https://github.com/huggingface/pytorch-image-models, 2019"
_MONAI_CITATION = "Cardoso M. J. et al., MONAI: An open-source framework for deep learning in healthcare, " \
                  "arXiv:2211.02701, 2022"
_CAM = "; CAM layer: timm's feature_info[-1], the last convolutional stage before global pooling"

#: ``monai/<name>`` -> (description, citation of the architecture).
_MONAI_NETS = {
    "densenet121": ("DenseNet-121", "Huang et al., Densely Connected Convolutional Networks, CVPR 2017"),
    "densenet169": ("DenseNet-169", "Huang et al., Densely Connected Convolutional Networks, CVPR 2017"),
    **{f"resnet{d}": (f"ResNet-{d} (MedicalNet's 3D ResNet family)",
                      ("He et al., Deep Residual Learning for Image Recognition, CVPR 2016; Chen et al., Med3D, "
                       "arXiv:1904.00625, 2019")) for d in (10, 18, 34, 50)},
    "seresnet50": ("SE-ResNet-50", "Hu et al., Squeeze-and-Excitation Networks, CVPR 2018"),
    "efficientnet-bn": ("EfficientNet with batch norm (params: model_name, default efficientnet-b0)",
                        "Tan & Le, EfficientNet: Rethinking Model Scaling for CNNs, ICML 2019"),
}

#: ``monai/<name>`` segmenters -> (description, citation of the architecture).
_MONAI_SEGMENTERS = {
    "unet": ("UNet with residual units (channels 16-128, strides 2, 2, 2, num_res_units 2)",
             "Ronneberger et al., U-Net, MICCAI 2015; Kerfoot et al., Left-Ventricle Quantification Using Residual "
             "U-Net, STACOM 2018"),
    "attention-unet": ("Attention U-Net (channels 16-128, strides 2, 2, 2)",
                       "Oktay et al., Attention U-Net: Learning Where to Look for the Pancreas, MIDL 2018"),
    "dynunet": ("DynUNet, nnU-Net's network (3x3 kernels, strides 1, 2, 2, 2, filters 32-256)",
                "Isensee et al., nnU-Net: a self-configuring method for deep learning-based biomedical image "
                "segmentation, Nature Methods 2021"),
    "basicunet": ("BasicUNet (MONAI's defaults: features 32, 32, 64, 128, 256, 32)",
                  "Falk et al., U-Net: deep learning for cell counting, detection, and morphometry, Nature Methods "
                  "2019"),
    "segresnet": ("SegResNet (MONAI's defaults: init_filters 8)",
                  "Myronenko, 3D MRI brain tumor segmentation using autoencoder regularization, BrainLes 2018"),
}


@hookimpl
def xaibench_register_models(register: Callable[[ModelSpec], None]) -> None:
    """Registers the timm and MONAI networks with ``register`` (the ``xaibench_register_models`` hook), importing
    neither library: a missing extra stops the plan of a suite that names one, with the pip command."""
    register(ModelSpec(
        name="timm", build=lazy(f"{TIMM}:build_timm"), modalities=frozenset({"image"}),
        target_layer=lazy(f"{TIMM}:cam_layer"),
        description="any convolutional timm architecture, params: {arch: NAME, ...timm options}, trained by the "
                    "harness or loaded from `checkpoint:` (pip install 'xaibench[timm]')" + _CAM,
        recipe=_RECIPE, citation=_TIMM_CITATION))
    for arch, (url, head) in TIMM_IMAGENET.items():
        register(ModelSpec(
            name=f"timm/{arch}", build=lazy(f"{TIMM}:timm_builder", arch), modalities=frozenset({"image"}),
            target_layer=lazy(f"{TIMM}:cam_layer"),
            description=f"timm's {arch} (the model timm with arch {arch}); weights: imagenet starts from timm's "
                        f"ImageNet-1k weights" + _CAM,
            recipe=_RECIPE, citation=_TIMM_CITATION,
            weights=(("imagenet", PretrainedWeights(
                url=url, new=(head,), description=f"timm's ImageNet-1k weights of {arch}, fetched with --download")),)))
    monai = ((f"{MONAI}:monai_builder", f"{MONAI}:monai_layer", _MONAI_NETS, "", "", "a MONAI bundle's "
              "models/model.pt", _RECIPE, frozenset()),
             (f"{MONAI_SEG}:monai_segmenter", f"{MONAI_SEG}:monai_segmenter_layer", _MONAI_SEGMENTERS, "segmenter: ",
              " (Dice + cross-entropy)", "a state dict", SEGMENTATION_RECIPE, frozenset({"segmentation"})))
    for builder, finder, nets, kind, how, checkpoint, recipe, provides in monai:
        for name, (what, citation) in nets.items():
            layer = (NETS.get(name) or SEG_NETS[name])[2]
            register(ModelSpec(
                name=f"monai/{name}", build=lazy(builder, name), modalities=frozenset({"image", "volume"}),
                target_layer=lazy(finder, name),
                description=f"{kind}MONAI's {what}, 2D for image and 3D for volume data, trained by the harness{how} "
                            f"or loaded from `checkpoint:` ({checkpoint}) (pip install 'xaibench[monai]'); CAM layer: "
                            f"{layer}",
                recipe=recipe, citation=f"{citation}; {_MONAI_CITATION}", provides=provides))
