"""What pytorch-grad-cam's FullGrad covers: the ``covers`` function of the ``fullgrad`` spec.

FullGrad (Srinivas & Fleuret, NeurIPS 2019, Sec. 3, Eq. 2 and 5) adds to the input-gradient map the
bias-gradient maps of every layer with a bias. pytorch-grad-cam 1.5.7 collects the biases of
``nn.Conv2d`` and ``nn.BatchNorm2d`` layers only (``FullGrad.__init__``'s ``layer_with_2D_bias``);
a network whose biases sit also in other layer types (LayerNorm and GroupNorm in ConvNeXt or MONAI
blocks, InstanceNorm, a custom module's bias) would get a map that silently drops those terms.
``nn.Linear`` biases carry no spatial map and are not part of the FullGrad image (Eq. 5).
"""
from __future__ import annotations

from torch import nn

#: The bias-carrying layer types pytorch-grad-cam's FullGrad collects, and the one whose bias has no spatial map.
COLLECTED = (nn.Conv2d, nn.BatchNorm2d, nn.Linear)


def fullgrad_covers(model: nn.Module) -> str | None:
    """None where every bias of ``model`` is in a Conv2d, BatchNorm2d or Linear layer, else the reason (one line)."""
    dropped: dict[str, list[str]] = {}
    for name, module in model.named_modules():
        bias = getattr(module, "bias", None)
        if isinstance(bias, nn.Parameter) and type(module) not in COLLECTED:
            dropped.setdefault(type(module).__name__, []).append(name)
    if not dropped:
        return None
    uses = "; ".join(f"{kind} ({', '.join(names[:3])}{f', ... ({len(names)} layers)' if len(names) > 3 else ''})"
                     for kind, names in dropped.items())
    return ("FullGrad (pytorch-grad-cam) sums the bias-gradients of Conv2d and BatchNorm2d layers only; this network "
            f"has biases in {uses}")
