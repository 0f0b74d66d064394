"""The captum methods' parameter values, checked before anything runs (``MethodSpec.check``).

One rule per parameter name, whichever method takes it: the channel reduction, the baseline or
fill, the counts (integers with a least value), the positive finite numbers, the flags, and the
noise tunnels' draws (:func:`xaibench_captum.stochastic.noise_tunnel_args`,
:func:`~xaibench_captum.stochastic.check_tunnel_method`). A finer rule that depends on the input
(an image cut into at least two superpixels, :func:`xaibench_captum.superpixels.checked_segments`;
an occlusion window inside the input) is checked when the method runs.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from xaibench.scoring.fills import FILLS
from xaibench.contract.validate import is_integer, is_number
from xaibench_captum.stochastic import check_noise_tunnel, check_tunnel_method

#: The channel reductions of :func:`xaibench.scoring.maps.reduce_channels`.
REDUCTIONS = ("sum", "abs", "max_abs")
#: The fewest superpixels LIME and KernelSHAP explain with: one superpixel gives a constant map (LIME)
#: and no coalition between the empty and the full one (KernelSHAP's kernel weights are then NaN).
MIN_SUPERPIXELS = 2
#: Count parameters and their least value (KernelSHAP's ``n_samples: 0`` stands for the SHAP package's default).
COUNTS = {"n_steps": 1, "n_samples": 1, "window": 1, "patch": 1, "n_segments": MIN_SUPERPIXELS}
#: Parameters that are finite numbers > 0.
POSITIVE = ("stdev", "compactness", "kernel_width")


def params_check(zero_samples: bool) -> Callable[[Mapping[str, Any]], None]:
    """The ``MethodSpec.check`` of a captum method; ``zero_samples``: ``n_samples: 0`` is allowed (KernelSHAP)."""
    counts = {**COUNTS, "n_samples": 0} if zero_samples else COUNTS

    def check(params: Mapping[str, Any]) -> None:
        """Raise ValueError (one line) for the first value outside its rule (module doc)."""
        if "reduce" in params and params["reduce"] not in REDUCTIONS:
            raise ValueError(f"reduce must be one of {', '.join(REDUCTIONS)}, got {params['reduce']!r}")
        for key in ("baseline", "fill"):
            if key in params and params[key] not in FILLS:
                raise ValueError(f"{key} must be one of {', '.join(FILLS)}, got {params[key]!r}")
        for key, least in counts.items():
            if key in params and not (is_integer(params[key]) and params[key] >= least):
                raise ValueError(f"{key} must be an integer >= {least}, got {params[key]!r}")
        if params.get("stride") is not None and not (is_integer(params["stride"]) and params["stride"] >= 1):
            raise ValueError(f"stride must be an integer >= 1 (or null: the window), got {params['stride']!r}")
        for key in POSITIVE:
            if key in params and not (is_number(params[key]) and params[key] > 0):
                raise ValueError(f"{key} must be a finite number > 0, got {params[key]!r}")
        if "per_pixel" in params and not isinstance(params["per_pixel"], bool):
            raise ValueError(f"per_pixel must be true or false, got {params['per_pixel']!r}")
        if "noise_level" in params:
            check_tunnel_method(params)
        check_noise_tunnel(params)

    return check
