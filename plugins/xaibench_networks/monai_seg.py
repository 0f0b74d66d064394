"""MONAI's segmentation networks (``monai.networks.nets``), 2D or 3D from the dataset's modality.

``spatial_dims`` is 2 for ``image`` data and 3 for ``volume`` data, ``in_channels`` the
data's, ``out_channels`` the segmentation classes (``K = 1``: one sigmoid logit per pixel).
Each returns ``(N, K, *spatial)`` logits at the input's size. The parameters MONAI requires
without a default (UNet's and AttentionUnet's ``channels``/``strides``, DynUNet's kernels
and strides) get the defaults of :data:`~xaibench_networks.catalogue.SEG_NETS`: three 2x
downsamplings, sized for a CPU; DynUNet's follow nnU-Net's rule (3x3 kernels, stride 1 then
2 per level, filters doubling from 32; Isensee et al., Nature Methods 2021). Suite ``params``
go to MONAI's constructor over them (``channels``, ``strides``, ``num_res_units``,
``init_filters`` ...): a MONAI bundle's ``models/model.pt`` of the same configuration loads
as the suite's ``checkpoint:``.

Default CAM layer: the bottleneck, the deepest and most contextual features, where
Seg-Grad-CAM explains a UNet (Vinogradova et al., AAAI 2020), found from the built network
(the depth follows the suite's ``strides``):

- UNet: the innermost ``SkipConnection``'s submodule (its bottom layer);
- AttentionUnet: the innermost ``AttentionLayer``'s submodule (its bottom ``ConvBlock``);
- DynUNet: ``bottleneck``; BasicUNet: ``down_4`` (1/16 of the input: 4x4 at 64 px);
  SegResNet: the last of ``down_layers``.

The last decoder stage is not the default: the logits are a 1x1 convolution of its maps,
so a Grad-CAM there gives back the predicted logit map.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from xaibench.contract.outputs import unwrap
from xaibench_networks.catalogue import SEG_NETS, SPATIAL_DIMS
from xaibench_networks.monai_nets import monai_networks

#: Parameters the plugin sets itself, refused in a suite's ``params``.
_OWN = {"spatial_dims", "in_channels", "out_channels", "deep_supervision"}


def monai_segmenter(name: str) -> Callable[..., nn.Module]:
    """The builder of ``monai/<name>`` (a key of :data:`~xaibench_networks.catalogue.SEG_NETS`)."""
    constructor, defaults, _ = SEG_NETS[name]

    def build(num_classes: int, in_channels: int, modality: str, **options: Any) -> nn.Module:
        """MONAI's segmenter with ``spatial_dims`` from ``modality`` and ``num_classes`` output channels.

        Raises ``TypeError`` (the runner adds the suite's file:line) for a parameter the harness sets
        itself (``deep_supervision``: the harness trains and explains the full-resolution output), and
        :class:`XaibenchError` for signal data or MONAI missing.
        """
        nets = monai_networks(name, options, _OWN, "the full-resolution output alone", modality, "segments")
        return getattr(nets, constructor)(spatial_dims=SPATIAL_DIMS[modality], in_channels=in_channels,
                                          out_channels=num_classes, **{**defaults, **options})

    build.__name__ = f"build_monai_{name.replace('-', '_')}"
    return build


def _innermost(model: nn.Module) -> nn.Module:
    """The bottom of MONAI's recursive UNet or AttentionUnet: ``model.model`` is ``(down, layer, up)`` and each
    layer (``SkipConnection``, ``AttentionLayer``) holds the next level as ``submodule``, the last level the
    bottom block."""
    node = unwrap(model).model
    while True:
        sub = node[1].submodule
        if not (isinstance(sub, nn.Sequential) and len(sub) > 1 and hasattr(sub[1], "submodule")):
            return sub
        node = sub


#: ``monai/<name>`` -> its CAM layer finder (see the module's notes).
_LAYERS: dict[str, Callable[[nn.Module], nn.Module]] = {
    "unet": _innermost,
    "attention-unet": _innermost,
    "dynunet": lambda model: unwrap(model).bottleneck,
    "basicunet": lambda model: unwrap(model).down_4,
    "segresnet": lambda model: unwrap(model).down_layers[-1],
}


def monai_segmenter_layer(name: str) -> Callable[[nn.Module], nn.Module]:
    """The default CAM layer finder of ``monai/<name>``: its bottleneck (see the module's notes)."""
    return _LAYERS[name]
