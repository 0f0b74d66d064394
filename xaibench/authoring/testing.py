"""The method conformance kit: what every saliency-method plugin must satisfy.

Plugin authors run it in their own test suites, exactly as xaibench runs it over
every registered method::

    import torch
    from xaibench.authoring.testing import check_method, tiny_model

    def test_my_method_conforms():
        model = tiny_model("image")
        x = torch.rand(3, 1, 16, 16)
        check_method(MY_SPEC, model, x, params={"steps": 4})

``check_method`` raises :class:`AssertionError` with a message naming the broken
rule, and otherwise returns the batch's maps. The rules are the contract the
runner relies on:

- the output is ``(N, *spatial)`` or a coarser map in the same proportions (:func:`xaibench.scoring.maps.coarser_fits`)
  (the runner upsamples it), floating point, finite;
- the same call twice gives the same maps (stochastic methods seed themselves
  from ``ctx.sample_seeds``);
- a sample explained alone gets the map it gets inside a batch (within
  tolerance: batched arithmetic may round differently), unless the spec declares
  ``batch_invariant=False``;
- the maps do not depend on ``ctx.engine_batch``, the batch size of the
  method's own forward passes (a speed setting; within the same tolerance);
- the model is left as found: parameter values, ``requires_grad`` flags,
  ``.grad``, buffers (BatchNorm statistics), train/eval mode, its modules and
  its hooks;
- the input tensor is left as found;
- a method that declares a modality works on it (pass a 1D model and
  ``(N, C, L)`` inputs for "signal", a 2D one and ``(N, C, H, W)`` for "image",
  a 3D one and ``(N, C, D, H, W)`` for "volume": ``tiny_model("volume")``).
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator, Mapping

import numpy as np
import torch
from torch import nn

from xaibench.contract.layers import layers_for
from xaibench.scoring.maps import coarser_fits, expected_maps
from xaibench.contract.specs import MODALITIES, MODALITY_DIMS, MODALITY_SHAPES, MethodContext, MethodSpec, MetricSpec
from xaibench.contract.metric_inputs import MetricBatch, MetricContext, metric_arguments

__all__ = ["check_method", "check_spec", "modality_of", "one_thread", "tiny_layer", "tiny_model"]


@contextmanager
def one_thread() -> Iterator[None]:
    """Run torch with one intra-op thread, then restore the count.

    On tiny models a second thread costs more than it gives, and on a busy machine
    its spin-waiting made the conformance checks about six times slower
    (measured: 68 s vs 11 s for xaibench's own method tests on two shared cores).
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def modality_of(x: torch.Tensor) -> str:
    """``"signal"`` for ``(N, C, L)`` inputs, ``"image"`` for ``(N, C, H, W)``, ``"volume"`` for ``(N, C, D, H, W)``."""
    for modality, dims in MODALITY_DIMS.items():
        if x.dim() == dims:
            return modality
    raise AssertionError(f"inputs must be {' or '.join(MODALITY_SHAPES.values())}, got shape {tuple(x.shape)}")


def check_spec(spec: MethodSpec) -> None:
    """Metadata rules: a name, known modalities, a description, mapping defaults."""
    assert isinstance(spec, MethodSpec), f"expected a MethodSpec, got {type(spec).__name__}"
    assert spec.name and spec.name == spec.name.strip(), f"method name {spec.name!r} is empty or padded"
    assert spec.modalities and set(spec.modalities) <= set(MODALITIES), (
        f"{spec.name}: modalities {sorted(spec.modalities)} must be a non-empty subset of {MODALITIES}")
    assert spec.description, f"{spec.name}: describe what the method computes"
    assert callable(spec.explain), f"{spec.name}: explain is not callable"
    assert isinstance(spec.defaults, Mapping), f"{spec.name}: defaults must be a mapping"


@dataclass(frozen=True)
class _ModelState:
    params: dict[str, tuple[torch.Tensor, bool, torch.Tensor | None]]
    buffers: dict[str, torch.Tensor]
    modes: dict[str, bool]
    modules: tuple[tuple[str, str], ...]
    hooks: dict[str, tuple[int, ...]]


def _hook_counts(m: nn.Module) -> tuple[int, ...]:
    return tuple(len(getattr(m, a)) for a in ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks",
                                              "_backward_pre_hooks") if hasattr(m, a))


def _snapshot(model: nn.Module) -> _ModelState:
    return _ModelState(
        params={k: (v.detach().clone(), v.requires_grad, None if v.grad is None else v.grad.clone())
                for k, v in model.named_parameters()},
        buffers={k: v.detach().clone() for k, v in model.named_buffers()},
        modes={k: m.training for k, m in model.named_modules()},
        modules=tuple((k, type(m).__name__) for k, m in model.named_modules()),
        hooks={k: _hook_counts(m) for k, m in model.named_modules()},
    )


def _assert_untouched(name: str, before: _ModelState, model: nn.Module) -> None:
    after = _snapshot(model)
    assert after.modules == before.modules, f"{name}: changed the model's modules (replaced or added a layer)"
    for k, (value, grad_flag, grad) in before.params.items():
        now_value, now_flag, now_grad = after.params[k]
        assert torch.equal(now_value, value), f"{name}: changed the values of parameter {k!r}"
        assert now_flag == grad_flag, f"{name}: changed requires_grad of parameter {k!r}"
        assert (grad is None) == (now_grad is None) and (grad is None or torch.equal(grad, now_grad)), (
            f"{name}: left gradients in parameter {k!r}.grad")
    for k, value in before.buffers.items():
        assert torch.equal(after.buffers[k], value), f"{name}: changed buffer {k!r} (BatchNorm statistics?)"
    changed = [k or "<model>" for k, mode in before.modes.items() if after.modes[k] != mode]
    assert not changed, f"{name}: changed train/eval mode of {', '.join(changed)}"
    leaked = [k or "<model>" for k, h in before.hooks.items() if after.hooks[k] != h]
    assert not leaked, f"{name}: left hooks registered on {', '.join(leaked)}"


def _context(x: torch.Tensor, layer: nn.Module | None, batch_size: int, seeds: tuple[int, ...],
             data_mean: torch.Tensor | None, masks: torch.Tensor | None,
             engine_batch: int | None = None) -> MethodContext:
    return MethodContext(layer=layer, batch_size=batch_size, sample_seeds=seeds, data_mean=data_mean, masks=masks,
                         engine_batch=engine_batch)


def _maps(spec: MethodSpec, model: nn.Module, x: torch.Tensor, target: torch.Tensor, ctx: MethodContext,
          params: Mapping[str, Any]) -> torch.Tensor:
    with torch.enable_grad():
        out = spec.explain(model, x, target, ctx, **params)
    if not isinstance(out, torch.Tensor):
        out = torch.as_tensor(np.asarray(out))
    return out.detach()


def check_method(
    spec: MethodSpec,
    model: nn.Module,
    x: torch.Tensor,
    target: torch.Tensor | None = None,
    *,
    layer: nn.Module | None = None,
    params: Mapping[str, Any] | None = None,
    batch_size: int = 8,
    seeds: tuple[int, ...] | None = None,
    data_mean: torch.Tensor | None = None,
    masks: torch.Tensor | None = None,
    rtol: float = 1e-3,
    atol: float = 1e-5,
) -> torch.Tensor:
    """Run ``spec`` on ``x`` (at least two samples) and assert every rule of the method contract.

    The model is put in eval mode first, as the runner explains only eval-mode models;
    the checks run under :func:`one_thread`.

    ``params`` override the spec's defaults (use small step or mask counts to keep
    the check fast); ``layer`` is the CAM target layer; ``target`` defaults to the
    model's predicted classes; ``data_mean`` defaults to the batch's per-channel
    mean; ``masks`` default to a centred square for methods that require masks.
    Tolerances apply to the alone-vs-batch comparison, relative to the map's scale.
    """
    with one_thread():
        return _check_method(spec, model, x, target, layer=layer, params=params, batch_size=batch_size,
                             seeds=seeds, data_mean=data_mean, masks=masks, rtol=rtol, atol=atol)


def _check_method(spec: MethodSpec, model: nn.Module, x: torch.Tensor, target: torch.Tensor | None, *,
                  layer: nn.Module | None, params: Mapping[str, Any] | None, batch_size: int,
                  seeds: tuple[int, ...] | None, data_mean: torch.Tensor | None, masks: torch.Tensor | None,
                  rtol: float, atol: float) -> torch.Tensor:
    check_spec(spec)
    modality = modality_of(x)
    assert modality in spec.modalities, (
        f"{spec.name}: declares {sorted(spec.modalities)}; it cannot be checked on {modality} inputs")
    n = x.shape[0]
    assert n >= 2, "check_method needs a batch of at least two samples (alone vs in a batch)"
    assert not spec.takes_layer or layer is not None, f"{spec.name} takes a target layer: pass layer="
    model.eval()
    if target is None:
        with torch.no_grad():
            target = model(x).argmax(1)
    seeds = seeds if seeds is not None else tuple(1000 + 17 * i for i in range(n))
    if data_mean is None:
        data_mean = x.mean(dim=[0] + list(range(2, x.dim())))
    if spec.requires_mask and masks is None:
        masks = torch.zeros((n,) + tuple(x.shape[2:]), dtype=torch.bool)
        masks[(slice(None),) + tuple(slice(s // 4, s - s // 4) for s in x.shape[2:])] = True
    merged = {**dict(spec.defaults), **dict(params or {})}
    x_before = x.clone()
    before = _snapshot(model)

    declared = masks if spec.requires_mask else None  # as the runner: masks only for a method that needs them
    maps = _maps(spec, model, x, target, _context(x, layer, batch_size, seeds, data_mean, declared), merged)
    name = spec.name
    assert torch.equal(x, x_before), f"{name}: modified its input tensor in place"
    _assert_untouched(name, before, model)
    spatial = tuple(x.shape[2:])
    assert maps.dim() == len(spatial) + 1 and maps.shape[0] == n, (
        f"{name}: returned shape {tuple(maps.shape)}; expected ({n}, *spatial) with spatial {spatial} or coarser")
    assert coarser_fits(tuple(maps.shape[1:]), spatial), (
        f"{name}: map {tuple(maps.shape[1:])} for inputs {tuple(x.shape)}: {expected_maps(n, spatial)}")
    assert maps.is_floating_point(), f"{name}: returned dtype {maps.dtype}; expected a float dtype"
    assert torch.isfinite(maps).all(), f"{name}: returned NaN or infinite values"

    again = _maps(spec, model, x, target, _context(x, layer, batch_size, seeds, data_mean, masks), merged)
    assert torch.equal(again, maps), f"{name}: two identical calls gave different maps (seed from ctx.sample_seeds)"

    scale = float(maps.abs().max()) or 1.0
    # the pass batch is a speed setting: 3 cuts the perturbed inputs of any method into other, uneven batches
    other = _maps(spec, model, x, target, _context(x, layer, batch_size, seeds, data_mean, declared, engine_batch=3),
                  merged)
    err = float((other - maps).abs().max())
    assert err <= atol * scale + rtol * scale, (
        f"{name}: ctx.engine_batch=3 changed the maps by {err:.3g} (map scale {scale:.3g}); the batch of the "
        "method's own forward passes must not change its maps")
    for i in (n - 1,) if spec.batch_invariant else ():  # the last sample: its position differs from alone
        alone = _maps(spec, model, x[i : i + 1], target[i : i + 1],
                      _context(x, layer, batch_size, seeds[i : i + 1], data_mean,
                               None if masks is None else masks[i : i + 1]), merged)
        assert alone.shape == maps[i : i + 1].shape, (
            f"{name}: sample {i} alone gave shape {tuple(alone.shape)}, in the batch {tuple(maps[i:i+1].shape)}")
        err = float((alone[0] - maps[i]).abs().max())
        assert err <= atol * scale + rtol * scale, (
            f"{name}: sample {i} explained alone differs from the batch by {err:.3g} "
            f"(map scale {scale:.3g}); per-sample randomness must come from ctx.sample_seeds")
    _assert_untouched(name, before, model)
    return maps


def tiny_model(modality: str, num_classes: int = 3, in_channels: int = 1, seed: int = 0) -> nn.Module:
    """A small conv-BN-ReLU-pool network (random weights, eval mode) for conformance checks.

    Three blocks, so multi-layer methods (SISE) see several resolutions, with
    BatchNorm statistics made non-trivial so that a method which runs the model in
    train mode, or updates the statistics, fails the check.
    """
    if modality not in MODALITIES:
        raise ValueError(f"modality must be one of {MODALITIES}, got {modality!r}")
    conv, norm, pool, gap = layers_for(modality)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        blocks, c = [], in_channels
        for i, out in enumerate((4, 8, 8)):
            layers: list[nn.Module] = [conv(c, out, 3, padding=1), norm(out), nn.ReLU()]
            if i < 2:
                layers.append(pool(2))
            blocks.append(nn.Sequential(*layers))
            c = out
        model = nn.Sequential(nn.Sequential(*blocks), gap(1), nn.Flatten(), nn.Linear(c, num_classes))
        with torch.no_grad():
            for m in model.modules():
                if isinstance(m, norm):
                    m.running_mean.uniform_(-0.1, 0.1)
                    m.running_var.uniform_(0.5, 1.5)
    return model.eval()


def tiny_layer(model: nn.Module) -> nn.Module:
    """The CAM target layer of :func:`tiny_model`: its last block."""
    return model[0][-1]


def score_metric(spec: MetricSpec, ctx: MetricContext, inputs: torch.Tensor | None = None,
                 targets: torch.Tensor | None = None, maps: torch.Tensor | None = None,
                 masks: torch.Tensor | None = None, regions: torch.Tensor | None = None, **params: Any) -> np.ndarray:
    """``spec``'s per-sample scores of one batch through the runner's path: only its declared needs reach it.

    ``inputs`` ``(N, C, *spatial)``, ``targets`` ``(N,)``, ``maps``, ``masks`` and ``regions``
    ``(N, *spatial)`` form the :class:`~xaibench.contract.specs.MetricBatch`; ``ctx`` supplies the rest
    (engine, seed, ...); ``params`` are passed as given (merge ``spec.defaults`` yourself).
    """
    batch = MetricBatch(inputs=inputs, targets=targets, maps=maps, masks=masks, regions=regions)  # type: ignore[arg-type]
    return spec.score(**metric_arguments(spec.needs, batch, ctx), **params)
