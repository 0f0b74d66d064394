"""Exact incremental inference for occlusion: recompute only the cone a patch changes.

Krypton (Nakandala, Kumar & Papakonstantinou, "Incremental and Approximate Inference for
Faster Occlusion-based Deep CNN Explanations", SIGMOD 2019, Sec. 3, incremental CNN inference,
its exact part). The model is traced with ``torch.fx`` and run once on the unoccluded input,
caching every node's activation. An occluded input differs from it in one box; each node's
dirty box per patch position follows from its inputs' boxes (convolutions and pools by their
kernel, stride, padding and dilation; elementwise ops, BatchNorm with running statistics and
residual adds by the union). A node whose box stays below :data:`DENSE_FRACTION` of its map is
recomputed on a fixed-size window per position (the largest box over the positions, its offset
clamped into the map), from the cached activation overlaid with its inputs' updated windows,
zero- (convolution, average pool) or -inf- (max pool) padded where the operator pads. Every
other node (global pooling, flatten, linear, any operator not listed above, or a box too large)
runs densely on the batch of occluded activations, and so does the rest of the graph. Where
Krypton's approximate mode truncates a patch's growth (projective-field thresholding), this
module computes densely instead: the result is the model's exact output for every position, up
to float rounding.
"""
from __future__ import annotations

import math
import operator
from dataclasses import dataclass
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

#: A node whose window exceeds this fraction of its map's area is computed densely, with everything after it:
#: a window costs its area's fraction of the dense operator plus the gather of its input region, so near the
#: map's size the dense operator is cheaper (on the 2-core CPU, 0.6 and 0.8 timed equal within noise).
DENSE_FRACTION = 0.8

_CONV = {nn.Conv1d: F.conv1d, nn.Conv2d: F.conv2d, nn.Conv3d: F.conv3d}
_MAXPOOL = {nn.MaxPool1d: F.max_pool1d, nn.MaxPool2d: F.max_pool2d, nn.MaxPool3d: F.max_pool3d}
_AVGPOOL = {nn.AvgPool1d: F.avg_pool1d, nn.AvgPool2d: F.avg_pool2d, nn.AvgPool3d: F.avg_pool3d}
_POINTWISE_MODULES = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.GELU, nn.SiLU, nn.Sigmoid, nn.Tanh, nn.Hardswish,
                      nn.Hardsigmoid, nn.Hardtanh, nn.Mish, nn.Identity, nn.Dropout, nn.Dropout1d, nn.Dropout2d,
                      nn.Dropout3d, nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
_POINTWISE_FUNCTIONS = {operator.add, operator.iadd, operator.mul, operator.imul, operator.sub, operator.truediv,
                        torch.add, torch.mul, torch.sub, torch.relu, torch.sigmoid, torch.tanh, F.relu, F.relu6,
                        F.gelu, F.silu, F.leaky_relu, F.hardtanh, F.hardswish}
_POINTWISE_METHODS = {"relu", "sigmoid", "tanh", "add", "mul", "sub", "contiguous"}
_INPLACE_FUNCTIONS = {operator.iadd, operator.imul, operator.isub, operator.itruediv}


@dataclass(frozen=True)
class Sliding:
    """A convolution or pool as a sliding window: kernel, stride, padding and dilation per spatial axis."""

    kernel: tuple[int, ...]
    stride: tuple[int, ...]
    padding: tuple[int, ...]
    dilation: tuple[int, ...]
    pad_value: float
    apply: Callable[[torch.Tensor], torch.Tensor]  # the operator without padding


@dataclass
class Window:
    """A node's activations for a batch of positions: the cached map except ``value`` at ``offsets``."""

    value: torch.Tensor  # (B, C, *size)
    offsets: torch.Tensor  # (B, d) long


def _tuple(v: Any, d: int) -> tuple[int, ...]:
    return tuple(v) if isinstance(v, (tuple, list)) else (int(v),) * d


def _sliding(module: nn.Module, d: int) -> Sliding | None:
    """The window geometry of a supported convolution or pool (None: not one we recompute locally)."""
    kind = type(module)
    if kind in _CONV and module.padding_mode == "zeros" and not isinstance(module.padding, str):
        fn, m = _CONV[kind], module
        return Sliding(_tuple(m.kernel_size, d), _tuple(m.stride, d), _tuple(m.padding, d), _tuple(m.dilation, d),
                       0.0, lambda r: fn(r, m.weight, m.bias, m.stride, 0, m.dilation, m.groups))
    if kind in _MAXPOOL and not module.ceil_mode and not module.return_indices:
        fn, m = _MAXPOOL[kind], module
        k, s = _tuple(m.kernel_size, d), _tuple(m.stride or m.kernel_size, d)
        dil = _tuple(m.dilation, d)
        return Sliding(k, s, _tuple(m.padding, d), dil, -math.inf, lambda r: fn(r, k, s, 0, dil))
    if kind in _AVGPOOL and not module.ceil_mode and module.count_include_pad and module.divisor_override is None:
        fn, m = _AVGPOOL[kind], module
        k, s = _tuple(m.kernel_size, d), _tuple(m.stride or m.kernel_size, d)
        return Sliding(k, s, _tuple(m.padding, d), (1,) * d, 0.0, lambda r: fn(r, k, s, 0))
    return None


def _is_pointwise(node: Any, modules: dict[str, nn.Module]) -> bool:
    if node.op == "call_module":  # a BatchNorm without running statistics normalises by the batch's: not pointwise
        module = modules[node.target]
        return isinstance(module, _POINTWISE_MODULES) and getattr(module, "running_mean", 0) is not None
    if node.op == "call_function":
        return node.target in _POINTWISE_FUNCTIONS
    return node.op == "call_method" and node.target in _POINTWISE_METHODS


def _inplace(node: Any, modules: dict[str, nn.Module]) -> bool:
    if node.op == "call_module":
        return bool(getattr(modules[node.target], "inplace", False))
    if node.op == "call_function":
        return node.target in _INPLACE_FUNCTIONS or bool(node.kwargs.get("inplace", False))
    return node.op == "call_method" and node.target.endswith("_") and not node.target.endswith("__")


def call(node: Any, modules: dict[str, nn.Module], args: tuple, kwargs: dict, fresh: bool = False) -> Any:
    """Run one graph node on ``args``; unless they are ``fresh`` (used by this node only), tensors are copied
    first for an in-place operator, so that cached and shared activations stay intact."""
    if not fresh and _inplace(node, modules):
        args = tuple(a.clone() if isinstance(a, torch.Tensor) else a for a in args)
    if node.op == "call_module":
        return modules[node.target](*args, **kwargs)
    if node.op == "call_function":
        return node.target(*args, **kwargs)
    return getattr(args[0], node.target)(*args[1:], **kwargs)


def read(base: torch.Tensor, rep: Window, start: torch.Tensor, size: tuple[int, ...], pad: float) -> torch.Tensor:
    """The boxes ``[start, start + size)`` of each position's activations ``(B, C, *size)``, ``pad`` outside the map.

    ``base`` ``(C, *S)`` is the cached map; inside ``rep``'s window the updated values replace it.
    """
    wsize = tuple(rep.value.shape[2:])
    if wsize == size and torch.equal(rep.offsets, start):
        return rep.value
    spatial = tuple(base.shape[1:])
    starts, offsets = start.tolist(), rep.offsets.tolist()
    before = [max(0, -min(s[k] for s in starts)) for k in range(len(size))]
    after = [max(0, max(s[k] for s in starts) + size[k] - spatial[k]) for k in range(len(size))]
    if any(before) or any(after):
        base = F.pad(base, [p for k in reversed(range(len(size))) for p in (before[k], after[k])], value=pad)
    out = torch.empty((len(starts), base.shape[0]) + size, dtype=base.dtype, device=base.device)
    for b, (s, o) in enumerate(zip(starts, offsets)):
        out[b] = base[(slice(None),) + tuple(slice(i + e, i + e + n) for i, e, n in zip(s, before, size))]
        lo = [max(i, j) for i, j in zip(s, o)]
        hi = [min(i + n, j + w) for i, n, j, w in zip(s, size, o, wsize)]
        if all(h > lo_ for lo_, h in zip(lo, hi)):
            out[(b, slice(None)) + tuple(slice(x - i, y - i) for x, y, i in zip(lo, hi, s))] = rep.value[
                (b, slice(None)) + tuple(slice(x - j, y - j) for x, y, j in zip(lo, hi, o))]
    return out


def materialize(base: torch.Tensor, rep: Window) -> torch.Tensor:
    """Each position's full activations ``(B, C, *S)``: the cached map with the window written in."""
    size = tuple(rep.value.shape[2:])
    dense = base.unsqueeze(0).repeat(rep.value.shape[0], *(1,) * base.dim())
    for b, o in enumerate(rep.offsets.tolist()):
        dense[(b, slice(None)) + tuple(slice(i, i + n) for i, n in zip(o, size))] = rep.value[b]
    return dense


@dataclass
class Step:
    """How one node is computed for occluded inputs: ``"clean"`` (as cached), ``"window"`` or ``"dense"``."""

    mode: str
    lo: torch.Tensor | None = None  # (P, d) first dirty index per position (window nodes)
    hi: torch.Tensor | None = None  # (P, d) one past the last dirty index
    size: tuple[int, ...] = ()
    offsets: torch.Tensor | None = None  # (P, d) the window's start per position
    sliding: Sliding | None = None


def _window_step(lo: torch.Tensor, hi: torch.Tensor, spatial: tuple[int, ...], sliding: Sliding | None) -> Step:
    lo, hi = torch.minimum(lo, hi), hi
    limit = torch.tensor(spatial, device=lo.device)
    lo, hi = lo.clamp(min=0), torch.minimum(hi, limit)
    size = tuple(max(1, min(s, int(w))) for s, w in zip(spatial, (hi - lo).amax(0).tolist()))
    if math.prod(size) > DENSE_FRACTION * math.prod(spatial):
        return Step("dense")
    offsets = torch.minimum(lo, limit - torch.tensor(size, device=lo.device))
    return Step("window", lo, hi, size, offsets, sliding)


def plan(graph: Any, modules: dict[str, nn.Module], base: dict[Any, Any], lo: torch.Tensor, hi: torch.Tensor,
         ) -> dict[Any, Step]:
    """Each node's :class:`Step` for the positions whose input boxes are ``[lo, hi)`` ``(P, d)``."""
    d = lo.shape[1]
    steps: dict[Any, Step] = {}
    for node in graph.nodes:
        if node.op == "placeholder":  # the occluded box itself: each position's patch, clipped to the input
            size = tuple(int(w) for w in (hi - lo).amax(0).tolist())
            limit = torch.tensor(base[node].shape[2:], device=lo.device) - torch.tensor(size, device=lo.device)
            steps[node] = Step("window", lo, hi, size, torch.minimum(lo, limit))
            continue
        inputs = [a for a in node.all_input_nodes if steps[a].mode != "clean"]
        value = base.get(node)
        if node.op == "output" or not inputs:
            steps[node] = Step("clean" if not inputs else "dense")
            continue
        local = (isinstance(value, torch.Tensor) and value.dim() == d + 2
                 and all(steps[a].mode == "window" for a in inputs))
        sliding = _sliding(modules[node.target], d) if local and node.op == "call_module" else None
        spatial = tuple(value.shape[2:]) if local else ()
        if sliding is not None and len(inputs) == 1 and node.args[0] is inputs[0]:
            k, s, p, dil = (torch.tensor(v, device=lo.device) for v in
                            (sliding.kernel, sliding.stride, sliding.padding, sliding.dilation))
            a = steps[inputs[0]]
            steps[node] = _window_step(-torch.div(-(a.lo + p - dil * (k - 1)), s, rounding_mode="floor"),
                                       torch.div(a.hi - 1 + p, s, rounding_mode="floor") + 1, spatial, sliding)
        elif local and _is_pointwise(node, modules) and _pointwise_args_fit(node, inputs, base, value):
            steps[node] = _window_step(torch.stack([steps[a].lo for a in inputs]).amin(0),
                                       torch.stack([steps[a].hi for a in inputs]).amax(0), spatial, None)
        else:
            steps[node] = Step("dense")
    return steps


def _pointwise_args_fit(node: Any, inputs: list[Any], base: dict[Any, Any], value: torch.Tensor) -> bool:
    """Dirty inputs of the output's shape, and constants that do not vary over space (they broadcast to a window)."""
    if any(tuple(base[a].shape) != tuple(value.shape) for a in inputs):
        return False
    others = [base[a] for a in node.all_input_nodes if a not in inputs]
    d = value.dim() - 2
    return all(not isinstance(c, torch.Tensor) or all(s == 1 for s in c.shape[-d:]) for c in others)


def trace(model: nn.Module) -> Any:
    """``model`` as a ``torch.fx`` graph module with one input, or None where it cannot be traced symbolically."""
    import torch.fx

    try:
        gm = torch.fx.symbolic_trace(model)
    except Exception:  # data-dependent control flow, unsupported Python: the caller takes the dense path
        return None
    return gm if sum(n.op == "placeholder" for n in gm.graph.nodes) == 1 else None


def run_cached(gm: Any, modules: dict[str, nn.Module], x: torch.Tensor) -> dict[Any, Any]:
    """Every node's value on ``x`` (the unoccluded pass whose activations the occluded ones reuse)."""
    from torch.fx.node import map_arg

    env: dict[Any, Any] = {}
    for node in gm.graph.nodes:
        if node.op == "placeholder":
            env[node] = x
        elif node.op == "get_attr":
            env[node] = operator.attrgetter(node.target)(gm)
        elif node.op == "output":
            env[node] = map_arg(node.args[0], env.__getitem__)
        else:
            env[node] = call(node, modules, map_arg(node.args, env.__getitem__), map_arg(node.kwargs, env.__getitem__))
    return env


def occluded_input(x: torch.Tensor, fill: torch.Tensor, step: Step, sl: slice) -> Window:
    """The input windows of positions ``sl``: ``x`` ``(C, *S)`` with ``fill`` over each position's patch."""
    start = step.offsets[sl]
    value = torch.empty((start.shape[0], x.shape[0]) + step.size, dtype=x.dtype, device=x.device)
    for b, (o, lo, hi) in enumerate(zip(start.tolist(), step.lo[sl].tolist(), step.hi[sl].tolist())):
        value[b] = x[(slice(None),) + tuple(slice(i, i + n) for i, n in zip(o, step.size))]
        patch = tuple(slice(i, j) for i, j in zip(lo, hi))
        value[(b, slice(None)) + tuple(slice(i - j, k - j) for i, k, j in zip(lo, hi, o))] = fill[(slice(None),) + patch]
    return Window(value, start)


def run_occluded(gm: Any, modules: dict[str, nn.Module], steps: dict[Any, Step], base: dict[Any, Any], n: int,
                 inputs: Window, sl: slice) -> Any:
    """The model's output for sample ``n`` occluded at positions ``sl`` (a batch), reusing ``base``'s activations."""
    from torch.fx.node import map_arg

    reps: dict[Any, Any] = {}
    dense: dict[Any, Any] = {}

    def full(a: Any) -> Any:
        if steps[a].mode == "clean":
            return base[a]
        if a not in dense:
            dense[a] = materialize(base[a][n], reps[a]) if isinstance(reps[a], Window) else reps[a]
        return dense[a]

    for node in gm.graph.nodes:
        step = steps[node]
        fresh = all(len(a.users) == 1 and steps[a].mode != "clean" for a in node.all_input_nodes)
        if node.op == "placeholder":
            reps[node] = inputs
        elif node.op == "output":
            return map_arg(node.args[0], full)
        elif step.mode == "dense":
            reps[node] = call(node, modules, map_arg(node.args, full), map_arg(node.kwargs, full), fresh)
        elif step.mode == "window":
            start = step.offsets[sl]

            def region(a: Any) -> Any:
                return base[a] if steps[a].mode == "clean" else read(base[a][n], reps[a], start, step.size, 0.0)

            if step.sliding is None:
                out = call(node, modules, map_arg(node.args, region), map_arg(node.kwargs, region), fresh)
            else:
                g = step.sliding
                size = tuple((w - 1) * s + d * (k - 1) + 1 for w, s, d, k in zip(step.size, g.stride, g.dilation, g.kernel))
                first = start * torch.tensor(g.stride, device=start.device) - torch.tensor(g.padding, device=start.device)
                out = g.apply(read(base[node.args[0]][n], reps[node.args[0]], first, size, g.pad_value))
            reps[node] = Window(out, start)
    raise AssertionError("a traced graph ends in an output node")


def patch_boxes(spatial: tuple[int, ...], window: tuple[int, ...], stride: tuple[int, ...],
                device: torch.device | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """captum ``Occlusion``'s patches over ``spatial``: first and one-past-last indices ``(P, d)``.

    Patches start at ``i * stride`` for ``i`` up to ``ceil((S - window) / stride)``; the last may be clipped.
    """
    counts = [-(-(s - w) // t) + 1 for s, w, t in zip(spatial, window, stride)]
    grids = torch.meshgrid(*(torch.arange(c, device=device) * t for c, t in zip(counts, stride)), indexing="ij")
    lo = torch.stack([g.flatten() for g in grids], 1)
    return lo, torch.minimum(lo + torch.tensor(window, device=device), torch.tensor(spatial, device=device))


def occlusion_deltas(model: nn.Module, x: torch.Tensor, fill: torch.Tensor, target: torch.Tensor, lo: torch.Tensor,
                     hi: torch.Tensor, batch: int) -> torch.Tensor | None:
    """``f(x)[target] - f(x occluded)[target]`` ``(N, P)`` for the patches ``[lo, hi)`` ``(P, d)``, incrementally.

    ``x`` and ``fill`` are ``(N, C, *S)`` (every channel is occluded by ``fill``), ``target`` ``(N,)`` the
    classes, ``batch`` positions per pass. None where the model cannot be traced by ``torch.fx`` or its
    traced graph's output is not ``(N, K)`` and equal to the model's own.
    """
    gm = trace(model)
    if gm is None:
        return None
    modules = dict(gm.named_modules())
    with torch.inference_mode():
        base = run_cached(gm, modules, x)
        out = base[next(n for n in gm.graph.nodes if n.op == "output")]
        if not (isinstance(out, torch.Tensor) and out.dim() == 2 and torch.equal(out, model(x))):
            return None
        steps = plan(gm.graph, modules, base, lo, hi)
        first = steps[next(n for n in gm.graph.nodes if n.op == "placeholder")]
        deltas = torch.empty(x.shape[0], lo.shape[0], dtype=out.dtype, device=x.device)
        for n in range(x.shape[0]):
            t = int(target[n])
            for begin in range(0, lo.shape[0], batch):
                sl = slice(begin, begin + batch)
                logits = run_occluded(gm, modules, steps, base, n, occluded_input(x[n], fill[n], first, sl), sl)
                deltas[n, sl] = out[n, t] - logits[:, t]
    return deltas


def spread(deltas: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor, spatial: tuple[int, ...]) -> torch.Tensor:
    """captum's occlusion attribution ``(N, *S)``: each pixel's mean of ``deltas`` ``(N, P)`` over its patches."""
    total = torch.zeros((deltas.shape[0],) + spatial, dtype=deltas.dtype, device=deltas.device)
    covered = torch.zeros(spatial, dtype=deltas.dtype, device=deltas.device)
    for p, (a, b) in enumerate(zip(lo.tolist(), hi.tolist())):
        box = tuple(slice(i, j) for i, j in zip(a, b))
        total[(slice(None),) + box] += deltas[:, p].view((-1,) + (1,) * len(spatial))
        covered[box] += 1
    return total / covered


def occlusion_attribution(model: nn.Module, x: torch.Tensor, fill: torch.Tensor, target: torch.Tensor,
                          window: tuple[int, ...], stride: tuple[int, ...], batch: int) -> torch.Tensor | None:
    """captum ``Occlusion``'s attribution ``(N, *S)`` (one channel), incrementally; None where it cannot be traced.

    Arguments as :func:`occlusion_deltas`; ``window`` and ``stride`` per spatial axis (see :func:`patch_boxes`).
    """
    lo, hi = patch_boxes(tuple(x.shape[2:]), window, stride, x.device)
    deltas = occlusion_deltas(model, x, fill, target, lo, hi, batch)
    return None if deltas is None else spread(deltas, lo, hi, tuple(x.shape[2:]))
