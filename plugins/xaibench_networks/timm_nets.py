"""timm's convolutional networks by architecture name (Wightman, PyTorch Image Models, 2019).

``timm.create_model(arch, num_classes=K, in_chans=C, pretrained=False, **options)``: the
harness trains it from seeded random weights, loads the user's checkpoint (a state dict
or a ``.safetensors`` file of the same architecture), or starts from timm's published
ImageNet weights (``weights: imagenet`` on a ``timm/<arch>`` short form, fetched only with
``--download`` and checked against the SHA-256 prefix in their file name).

The CAM layer is the module of the network's last feature stage, ``feature_info[-1]``
(timm's own record of where each stage's maps are, at the stride the head pools): the
last convolutional stage before global pooling. A network whose last stage does not give
``(N, C, H, W)`` maps (ViT, DeiT, MLP-Mixer, Swin's channels-last tokens) is refused:
xaibench benchmarks saliency methods for CNNs.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from xaibench.base.errors import XaibenchError, did_you_mean
from xaibench.contract.outputs import unwrap
from xaibench_networks.extras import require

#: Options the plugin sets itself, refused in a suite's ``params`` with what to use instead.
_OWN = {"pretrained": "published weights come from `weights: imagenet` on a timm/<arch> model (with --download) "
                      "or your file as `checkpoint:`",
        "in_chans": "the dataset's channels are used",
        "features_only": "the harness needs the classifier"}

#: (arch, in_chans) -> None for a convolutional architecture, else why not (probed once per process).
_CHECKED: dict[tuple[str, int], str | None] = {}


def stage(model: nn.Module) -> str:
    """Dotted name of the module of ``model``'s last feature stage (timm's ``feature_info[-1]["module"]``)."""
    info = getattr(unwrap(model), "feature_info", None)
    if not info:
        raise XaibenchError(f"{type(unwrap(model)).__name__} has no timm feature_info: it was not built by timm")
    return str(info[-1]["module"])


def cam_layer(model: nn.Module) -> nn.Module:
    """The default CAM layer of a timm network: its last feature stage (:func:`stage`)."""
    return unwrap(model).get_submodule(stage(model))


def _not_convolutional(model: nn.Module, arch: str, in_chans: int) -> str | None:
    """Why ``model`` is not a CNN for the harness (its last stage's output on a probe is not ``(1, C, H, W)``), or None.

    The probe is one zero input at the architecture's own input size (ViTs accept no other).
    """
    key = (arch, in_chans)
    if key not in _CHECKED:
        info = model.feature_info[-1]
        size = tuple(model.pretrained_cfg.get("input_size", (3, 224, 224)))[1:]
        seen: list[tuple[int, ...]] = []
        layer = model.get_submodule(info["module"])
        handle = layer.register_forward_hook(lambda _m, _i, out: seen.append(tuple(out.shape)))
        try:
            with torch.no_grad():
                model.eval()(torch.zeros(1, in_chans, *size))
        finally:
            handle.remove()
            model.train()
        shape = seen[-1] if seen else ()
        ok = len(shape) == 4 and shape[1] == info["num_chs"]
        _CHECKED[key] = None if ok else (
            f"its last feature stage {info['module']!r} gives {tuple(shape)} for a {'x'.join(map(str, size))} "
            f"input, not (N, {info['num_chs']}, H, W) maps")
    return _CHECKED[key]


def build_timm(num_classes: int, in_channels: int, modality: str, arch: str | None = None,
               **options: Any) -> nn.Module:
    """``timm.create_model(arch, num_classes=num_classes, in_chans=in_channels, pretrained=False, **options)``.

    ``options`` go to timm unchanged (``output_stride: 8`` for finer CAM maps where the
    architecture supports it, ``drop_rate``, ``drop_path_rate`` ...). Raises ``TypeError``
    (the runner adds the suite's file:line) without ``arch`` or with an option the harness
    sets itself, and :class:`XaibenchError` for an architecture timm does not know, a
    non-convolutional one, or timm missing (with the pip command).
    """
    if arch is None:
        raise TypeError("params: arch is required: a timm architecture name such as efficientnet_b0, "
                        "convnext_atto or resnet18 (timm.list_models() lists them)")
    own = sorted(set(options) & set(_OWN))
    if own:
        raise TypeError(f"params: {own[0]} is not a timm option here: {_OWN[own[0]]}")
    timm = require("timm", "timm", f"model timm (arch {arch})")
    if not timm.is_model(arch):
        raise XaibenchError(f"timm has no architecture {arch!r}{did_you_mean(arch, timm.list_models())}; "
                            f"timm.list_models('*pattern*') lists them")
    model = timm.create_model(arch, num_classes=num_classes, in_chans=in_channels, pretrained=False, **options)
    why = _not_convolutional(model, arch, in_channels)
    if why:
        raise XaibenchError(f"timm architecture {arch!r} is not a convolutional network ({why}): xaibench "
                            f"benchmarks saliency methods on CNNs; pass a convolutional timm architecture "
                            f"(efficientnet_b0, convnext_atto, resnet18, regnetx_002 ...)")
    return model


def timm_builder(arch: str) -> Callable[..., nn.Module]:
    """The builder of the short form ``timm/<arch>``: :func:`build_timm` with ``arch`` fixed."""
    def build(num_classes: int, in_channels: int, modality: str, **options: Any) -> nn.Module:
        if "arch" in options:
            raise TypeError(f"params: arch is fixed by the model name timm/{arch}; use the model `timm` "
                            f"with params: {{arch: ...}} for another architecture")
        return build_timm(num_classes, in_channels, modality, arch, **options)

    build.__name__ = f"build_timm_{arch}"
    build.__doc__ = f"timm's {arch}: :func:`build_timm` with ``arch={arch!r}``."
    return build
