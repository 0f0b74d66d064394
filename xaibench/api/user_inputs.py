"""The boundary of :mod:`xaibench.api` with a user's world: arrays, the model, ids, devices, parameters.

Each function turns what a user passes (torch tensors or numpy arrays, a model, names)
into what the runner's path consumes, or raises :class:`~xaibench.base.errors.XaibenchError`
with one line saying what to change. Nothing here imports torch at module import.
"""
from __future__ import annotations

import functools
import hashlib
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from xaibench.base.errors import XaibenchError

if TYPE_CHECKING:
    import numpy as np
    import torch
    from torch import nn

    from xaibench.contract.plugins import Harness


#: What ``to_pandas`` tells a user without pandas.
PANDAS_HINT = "pandas is not installed: pip install 'xaibench[pandas]'"


@functools.lru_cache(maxsize=1)
def installed() -> Harness:
    """The installed plugins, loaded once per process."""
    from xaibench.contract.plugins import load_harness

    return load_harness()


def pandas_module() -> Any:
    """The pandas module, or one line naming the extra that installs it."""
    try:
        import pandas
    except ImportError:
        raise XaibenchError(PANDAS_HINT) from None
    return pandas


# -- the boundary: a user's arrays ---------------------------------------------------------------
def as_tensor(value: Any, what: str) -> torch.Tensor:
    """``value`` (a torch tensor, numpy array or nested sequence) as a CPU tensor; one line if it is none. A tensor
    made under ``torch.inference_mode()`` (``model(x).argmax(1)`` there) is copied: autograd refuses to save it."""
    import numpy as np
    import torch

    if isinstance(value, torch.Tensor):
        return value.detach().cpu().clone() if value.is_inference() else value.detach().cpu()
    array = np.asarray(value)
    if array.dtype.kind not in "biuf":
        raise XaibenchError(f"{what} must be a torch tensor or numpy array of numbers, got "
                            f"{type(value).__name__} of dtype {array.dtype}")
    return torch.from_numpy(np.ascontiguousarray(array))


def checked_inputs(value: Any) -> torch.Tensor:
    """``(N, C, *spatial)`` float32 inputs; integer images are refused (their scale is the user's to state)."""
    from xaibench.contract.specs import MODALITY_DIMS, MODALITY_SHAPES

    x = as_tensor(value, "inputs")
    if not x.dtype.is_floating_point:
        raise XaibenchError(f"inputs are {str(x.dtype).removeprefix('torch.')}: pass them as the model consumes "
                            f"them, as floats (e.g. x.float() / 255 for 8-bit images the model saw in [0, 1])")
    if x.dim() not in MODALITY_DIMS.values():
        raise XaibenchError(f"inputs have shape {tuple(x.shape)}; expected "
                            f"{' or '.join(MODALITY_SHAPES.values())} (a batch axis and a channel axis first)")
    if x.shape[0] == 0:
        raise XaibenchError("inputs hold no samples (N = 0)")
    if not x.isfinite().all():
        raise XaibenchError("inputs contain NaN or infinite values")
    return x.float()


def modality(x: torch.Tensor) -> str:
    """``"signal"``, ``"image"`` or ``"volume"`` for checked inputs of 3, 4 or 5 axes."""
    from xaibench.contract.specs import MODALITY_DIMS

    return next(m for m, d in MODALITY_DIMS.items() if d == x.dim())


def checked_targets(value: Any, n: int, num_classes: int) -> torch.Tensor:
    """``(N,)`` int64 class indices in ``0..K-1``."""
    import torch

    t = as_tensor([value] * n if isinstance(value, int) else value, "targets")
    if t.dtype.is_floating_point or t.dtype == torch.bool:
        raise XaibenchError(f"targets must be integer class indices, got dtype {str(t.dtype).removeprefix('torch.')}")
    t = t.reshape(-1).long() if t.dim() == 2 and t.shape[1] == 1 else t.long()
    if tuple(t.shape) != (n,):
        raise XaibenchError(f"targets have shape {tuple(t.shape)}; expected ({n},): one class per input")
    if n and (t.min() < 0 or t.max() >= num_classes):
        raise XaibenchError(f"targets must be class indices in 0..{num_classes - 1} (the model has {num_classes} "
                            f"classes), got {int(t.min())}..{int(t.max())}")
    return t


def checked_maps(value: Any, x: torch.Tensor) -> np.ndarray:
    """``(N, *spatial)`` float32 maps, coarser ones upsampled as the runner upsamples a method's maps; a shape
    the runner would refuse from a method (:func:`xaibench.scoring.maps.coarser_fits`: another number of axes, an axis
    larger than the input's, height and width swapped) is refused, never stretched."""
    import numpy as np

    from xaibench.scoring.maps import coarser_fits, expected_maps, upsample

    m = as_tensor(value, "maps")
    n, spatial = x.shape[0], tuple(x.shape[2:])
    if x.dim() == 3 and m.shape == x.shape:
        raise XaibenchError(f"inputs of shape {tuple(x.shape)} are read as signals (N, C, L), and maps of the same "
                            f"shape are not (N, L): for images, add the channel axis (inputs[:, None])")
    if m.dim() != len(spatial) + 1 or m.shape[0] != n or not coarser_fits(tuple(m.shape[1:]), spatial):
        raise XaibenchError(f"maps have shape {tuple(m.shape)} for inputs {tuple(x.shape)}; {expected_maps(n, spatial)}")
    m = upsample(m.float(), spatial)
    if not m.isfinite().all():
        raise XaibenchError("maps contain NaN or infinite values")
    return m.numpy().astype(np.float32)


def checked_annotation(value: Any, x: torch.Tensor, what: str) -> torch.Tensor | None:
    """``(N, *spatial)`` masks (bool) or region maps (int8 levels), or None."""
    import torch

    if value is None:
        return None
    a = as_tensor(value, what)
    want = (x.shape[0], *x.shape[2:])
    if tuple(a.shape) != want:
        raise XaibenchError(f"{what} have shape {tuple(a.shape)}, but the inputs are {tuple(x.shape)}: expected "
                            f"{want}, one per input at the input's size (no channel axis)")
    if what == "masks":
        if a.dtype != torch.bool and not ((a == 0) | (a == 1)).all():
            raise XaibenchError(f"masks must be bool or 0/1, got values in {float(a.min()):g}..{float(a.max()):g}")
        return a.bool()
    if a.dtype.is_floating_point and not (a == a.round()).all():
        raise XaibenchError("region maps must hold integer levels (higher = more relevant)")
    if a.min() < -128 or a.max() > 127:
        raise XaibenchError(f"region levels must lie in -128..127, got {int(a.min())}..{int(a.max())}")
    return a.to(torch.int8)


def sample_ids(value: Sequence[str] | None, x: torch.Tensor) -> tuple[str, ...]:
    """One unique id per input of ``x`` ``(N, C, *spatial)``, as strings: ``value``, or by default each input's
    content: the first 16 hex digits of the SHA-256 of its float32 bytes, so an input keeps its id (and its random
    draws) whatever its position or batch-mates. A repeated input gets ``#2``, ``#3``... in order of appearance."""
    n = int(x.shape[0])
    if value is None:
        seen: dict[str, int] = {}
        ids = []
        for row in x.detach().cpu().float():
            digest = hashlib.sha256(row.contiguous().numpy().tobytes()).hexdigest()[:16]
            seen[digest] = seen.get(digest, 0) + 1
            ids.append(digest if seen[digest] == 1 else f"{digest}#{seen[digest]}")
        return tuple(ids)
    ids = [str(i) for i in value]
    if len(ids) != n:
        raise XaibenchError(f"ids has {len(ids)} entries for {n} inputs; give one id per input")
    if len(set(ids)) != n:
        raise XaibenchError("ids are not unique; give each input its own id")
    return tuple(ids)


def torch_device(name: str) -> torch.device:
    """The device ``name`` after the CLI's check (:func:`xaibench.contract.validate.device`)."""
    import torch

    from xaibench.contract import validate

    validate.device(name)
    return torch.device(name)


def user_model(model: Any, x: torch.Tensor, num_classes: int | None, output: str, output_index: int | None,
           output_key: str | None, device: torch.device) -> tuple[nn.Module, int]:
    """The user's model in eval mode on ``device``, read as ``(N, K)`` logits by the output contract
    (:func:`xaibench.contract.outputs.conform`), and ``K``. Without ``num_classes`` ``K`` is the output's width
    (one logit ``z``: two classes, the sigmoid's, explained as ``z`` for class 1 and ``-z`` for class 0 with
    probabilities ``sigmoid(z)`` and ``1 - sigmoid(z)``: :func:`xaibench.contract.outputs.probability_scale`)."""
    import torch
    from torch import nn

    from xaibench.contract.outputs import OutputForm, conform, select

    if not isinstance(model, nn.Module):
        raise XaibenchError(f"model must be a torch nn.Module, got {type(model).__name__}")
    form = OutputForm(output, output_index, output_key)
    if num_classes is None:
        with torch.no_grad():
            was = model.training
            model.eval()
            try:
                out = select(model(torch.zeros(2, *x.shape[1:])), form)
            finally:
                model.train(was)
        per_pixel = isinstance(out, torch.Tensor) and out.dim() > 2 and out.shape[2:] == x.shape[2:]
        if isinstance(out, torch.Tensor) and (out.dim() == 2 or per_pixel):  # per-pixel: a segmenter, always wrapped
            num_classes = 2 if out.shape[1] == 1 else int(out.shape[1])
            if form == OutputForm() and out.shape[1] == num_classes and not per_pixel:
                return model.eval().to(device), num_classes  # (N, K) logits already: conform would return it as is
        elif not isinstance(out, torch.Tensor):  # a tuple or dict: which element is the class scores is the user's
            items = out.items() if isinstance(out, dict) else enumerate(out) if isinstance(out, (tuple, list)) else ()
            shapes = ", ".join(f"{k}: {tuple(v.shape) if isinstance(v, torch.Tensor) else type(v).__name__}"
                               for k, v in items)
            raise XaibenchError(f"the model returns {type(out).__name__} ({shapes}): pass output_index= (or "
                                f"output_key=) naming its class scores, or num_classes= to have them found")
        else:
            raise XaibenchError(f"the model returns shape {tuple(out.shape)} for 2 inputs; expected class scores "
                                f"(2, K) or per-pixel scores at the input's size (2, K, "
                                f"{', '.join(map(str, x.shape[2:]))}): flatten or pool a classifier's output, "
                                f"upsample a segmenter's")
    conformed = conform(model.eval(), num_classes=num_classes, in_channels=int(x.shape[1]),
                        spatial=tuple(x.shape[2:]), form=form, who="the model", naming="python")
    return conformed.to(device), num_classes


def merged_params(spec: Any, given: Mapping[str, Any] | None, where: str, kind: str) -> dict[str, Any]:
    """``spec.defaults`` overridden by ``given``, each name checked as a suite's parameters are."""
    from xaibench.suites.params import check_plugin_params

    given = dict(given or {})
    check_plugin_params(where, kind, spec.name, spec, given)
    return {**dict(spec.defaults), **given}
