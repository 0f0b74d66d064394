"""SmoothGrad, SmoothGrad-squared and VarGrad: captum's ``NoiseTunnel`` over vanilla gradients, noise relative to the input.

Smilkov et al., SmoothGrad: removing noise by adding noise, arXiv 1706.03825, 2017, Sec. 3: the map is
the mean of the gradients at ``n`` copies of the input with Gaussian noise ``N(0, sigma^2)``, where
``sigma / (x_max - x_min)``, the noise level, is what is chosen: 10-20% works best (their Sec. 4.1,
Fig. 3), and returns diminish beyond ``n = 50`` (Sec. 4.1, Fig. 4). Defaults: noise level 0.15, 50
samples. SmoothGrad-squared (Hooker et al., A Benchmark for Interpretability Methods in Deep Neural
Networks, NeurIPS 2019, Sec. 4) averages the squared gradients; VarGrad (Adebayo et al., Local
Explanation Methods for Deep Neural Networks Lack Sensitivity to Parameter Values, ICLR Workshop
2018, Sec. 2) takes their variance. ``x_max - x_min`` is each sample's own range, so a sample's
``sigma`` does not depend on its batch; its noise comes from its seed (``ctx.sample_seeds``).
"""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from xaibench.base.errors import XaibenchError
from xaibench.scoring.maps import reduce_channels
from xaibench.contract.specs import MethodContext
from xaibench_captum.stochastic import NT_TYPES, check_tunnel_method, tunnel_attribute


def noise_tunnel_method(kind: str) -> Callable[..., torch.Tensor]:
    """The ``explain`` function of one noise tunnel type (``smoothgrad``, ``smoothgrad_sq`` or ``vargrad``)."""
    if kind not in NT_TYPES:
        raise ValueError(f"noise tunnel type must be one of {', '.join(NT_TYPES)}, got {kind!r}")

    def explain(model: nn.Module, x: torch.Tensor, target: torch.Tensor, ctx: MethodContext,
                samples: int = 50, noise_level: float = 0.15, reduce: str = "max_abs") -> torch.Tensor:
        """``(N, *spatial)`` float maps: the channel reduction of the noise tunnel's gradient statistic.

        Raises :class:`XaibenchError` for ``noise_level <= 0`` (or not a number), ``samples < 1`` (or not an
        integer) or a constant sample
        (its range is 0, so the noise level defines no noise).
        """
        from captum.attr import Saliency

        try:
            check_tunnel_method({"samples": samples, "noise_level": noise_level})
        except ValueError as exc:
            raise XaibenchError(f"{kind}: {exc}") from None
        spreads = (x.flatten(1).amax(1) - x.flatten(1).amin(1)).tolist()
        for i, spread in enumerate(spreads):
            if spread == 0:
                raise XaibenchError(f"{kind}: sample {i} is constant; its noise is {noise_level} x its range (0)")
        grads = tunnel_attribute(Saliency(model), x, target, ctx, kind, int(samples),
                                 [noise_level * spread for spread in spreads], abs=False)
        return reduce_channels(grads, reduce)

    explain.__name__ = explain.__qualname__ = kind
    return explain
