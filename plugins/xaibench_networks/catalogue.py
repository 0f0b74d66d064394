"""The networks this plugin names, as plain data (no torch, timm or MONAI import): registering reads them."""
from __future__ import annotations

_RELEASES = "https://github.com/rwightman/pytorch-image-models/releases/download"

#: timm's ImageNet-1k weights of the ``timm/<arch>`` short forms: ``arch -> (file URL, classifier module)``, as
#: ``timm.models.get_pretrained_cfg(arch)`` gives them (``url``, ``classifier``); pinned here so that registering
#: imports no timm (tests/test_networks.py checks they equal timm's). Each file name carries its SHA-256 prefix.
TIMM_IMAGENET = {
    "efficientnet_b0": (f"{_RELEASES}/v0.1-weights/efficientnet_b0_ra-3dd342df.pth", "classifier"),
    "efficientnet_b3": (f"{_RELEASES}/v0.1-weights/efficientnet_b3_ra2-cf984f9c.pth", "classifier"),
    "mobilenetv3_small_050": (f"{_RELEASES}/v0.1-weights/mobilenetv3_small_050_lambc-4b7bbe87.pth", "classifier"),
    "resnet10t": (f"{_RELEASES}/v0.1-rsb-weights/resnet10t_176_c3-f3215ab1.pth", "fc"),
    "resnet50": (f"{_RELEASES}/v0.1-rsb-weights/resnet50_a1_0-14fe96d1.pth", "fc"),
    "convnext_atto": (f"{_RELEASES}/v0.1-rsb-weights/convnext_atto_d2-01bb0f51.pth", "head.fc"),
}

#: modality -> MONAI's ``spatial_dims``.
SPATIAL_DIMS = {"image": 2, "volume": 3}

#: Suite name -> (``monai.networks.nets`` constructor, the keyword names of its (spatial dims, in channels,
#: classes), its default CAM layer).
NETS: dict[str, tuple[str, tuple[str, str, str], str]] = {
    "densenet121": ("DenseNet121", ("spatial_dims", "in_channels", "out_channels"), "class_layers.relu"),
    "densenet169": ("DenseNet169", ("spatial_dims", "in_channels", "out_channels"), "class_layers.relu"),
    **{f"resnet{d}": (f"resnet{d}", ("spatial_dims", "n_input_channels", "num_classes"), "layer4")
       for d in (10, 18, 34, 50)},
    "seresnet50": ("SEResNet50", ("spatial_dims", "in_channels", "num_classes"), "layer4"),
    "efficientnet-bn": ("EfficientNetBN", ("spatial_dims", "in_channels", "num_classes"), "_bn1"),
}


#: Suite name -> (``monai.networks.nets`` segmentation constructor, the harness's defaults for its required or
#: CPU-sized parameters, its default CAM layer in words). Three 2x downsamplings where the architecture lets one
#: choose, so the bottleneck is 1/8 of the input: 8x8 at 64 px, 4x4x4 at 32^3.
SEG_NETS: dict[str, tuple[str, dict[str, object], str]] = {
    "unet": ("UNet", {"channels": (16, 32, 64, 128), "strides": (2, 2, 2), "num_res_units": 2},
             "the bottleneck, the innermost SkipConnection's submodule (1/8)"),
    "attention-unet": ("AttentionUnet", {"channels": (16, 32, 64, 128), "strides": (2, 2, 2)},
                       "the bottleneck, the innermost AttentionLayer's submodule (1/8)"),
    "dynunet": ("DynUNet", {"kernel_size": (3, 3, 3, 3), "strides": (1, 2, 2, 2), "upsample_kernel_size": (2, 2, 2),
                            "filters": (32, 64, 128, 256)}, "bottleneck (1/8)"),
    "basicunet": ("BasicUNet", {}, "down_4, the bottleneck (1/16: MONAI's BasicUNet always downsamples 4 times)"),
    "segresnet": ("SegResNet", {}, "the last of down_layers, the bottleneck (1/8)"),
}
