"""MONAI's classification networks (``monai.networks.nets``), 2D or 3D from the dataset's modality.

``spatial_dims`` is 2 for ``image`` data and 3 for ``volume`` data, the input channels are
the data's, the outputs its classes; everything else is MONAI's default (the network of
MONAI's classification tutorials and model-zoo bundles), so a bundle's ``models/model.pt``
(a state dict of the same network) loads as the suite's ``checkpoint:``. Suite ``params``
go to MONAI's constructor unchanged (``dropout_prob``, ``block_config`` ...).

Default CAM layers, each the last place where the network's maps are (N, C, *spatial)
before global pooling, on a module that runs once per forward pass:

- DenseNet: ``class_layers.relu``, the in-place ReLU on ``features.norm5`` (MONAI's own
  Grad-CAM tutorial layer); ``features.norm5`` itself would be overwritten by that ReLU.
- ResNet, SEResNet: ``layer4``.
- EfficientNetBN: ``_bn1``, the head's BatchNorm: its ``_swish`` module runs twice per
  forward pass (after the stem and after the head), so hooks on it see two layers.
"""
from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any

from torch import nn

from xaibench.base.errors import XaibenchError
from xaibench.contract.outputs import unwrap
from xaibench_networks.catalogue import NETS, SPATIAL_DIMS
from xaibench_networks.extras import require

#: Parameters the plugin sets itself, refused in a suite's ``params``.
_OWN = {"spatial_dims", "in_channels", "n_input_channels", "out_channels", "num_classes", "pretrained"}


def monai_networks(name: str, options: Any, own: set[str], also: str, modality: str, verb: str) -> ModuleType:
    """``monai.networks.nets`` for building ``monai/<name>`` on ``modality`` data with suite ``options``.

    Raises ``TypeError`` (the runner adds the suite's file:line) for an option in ``own`` (set by the harness:
    spatial dims, channels, classes, and ``also``), and :class:`XaibenchError` for signal data ("model monai/<name>
    <verb> image (2D) or volume (3D) data") or MONAI missing.
    """
    mine = sorted(set(options) & own)
    if mine:
        raise TypeError(f"params: {mine[0]} is set by the harness (spatial dims from the data's modality, "
                        f"channels and classes from the data; {also})")
    if modality not in SPATIAL_DIMS:
        raise XaibenchError(f"model monai/{name} {verb} image (2D) or volume (3D) data, not {modality} data")
    return require("monai.networks.nets", "monai", f"model monai/{name}")


def monai_builder(name: str) -> Callable[..., nn.Module]:
    """The builder of ``monai/<name>`` (a key of :data:`NETS`)."""
    constructor, (dims_key, channels_key, classes_key), _ = NETS[name]

    def build(num_classes: int, in_channels: int, modality: str, **options: Any) -> nn.Module:
        """MONAI's network with ``spatial_dims`` from ``modality`` (2 for image, 3 for volume data).

        Raises ``TypeError`` (the runner adds the suite's file:line) for a parameter the
        harness sets itself, and :class:`XaibenchError` for signal data or MONAI missing.
        """
        nets = monai_networks(name, options, _OWN, "weights from `checkpoint:`", modality, "takes")
        fixed = {dims_key: SPATIAL_DIMS[modality], channels_key: in_channels, classes_key: num_classes}
        if constructor == "EfficientNetBN":
            fixed |= {"model_name": options.pop("model_name", "efficientnet-b0"), "pretrained": False}
        return getattr(nets, constructor)(**fixed, **options)

    build.__name__ = f"build_monai_{name.replace('-', '_')}"
    return build


def monai_layer(name: str) -> Callable[[nn.Module], nn.Module]:
    """The default CAM layer finder of ``monai/<name>`` (see the module's notes)."""
    path = NETS[name][2]

    def find(model: nn.Module) -> nn.Module:
        return unwrap(model).get_submodule(path)

    return find
