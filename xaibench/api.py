"""xaibench from Python: score your own maps, explain with any method, run suites, in a notebook.

Four functions and the objects they return, on the runner's own path (the same
output contract, parameter checks, seeds, random draws, batching and NaN rules), so a
number from Python is the number ``xaibench run`` stores:

- :func:`score`: per-sample scores of maps you already have (:class:`Scores`);
- :func:`explain`: maps of any registered method (or a callable), as a suite gets them;
- :func:`run`: a suite (a built-in name, a YAML path or a dict) into a store (:class:`Results`);
- :func:`metric`: one metric as a callable object carrying its spec (:class:`Metric`).

Shapes: inputs ``(N, C, L)`` signals, ``(N, C, H, W)`` images or ``(N, C, D, H, W)``
volumes, float, as the model consumes them; maps, masks and region maps drop the channel
axis: ``(N, *spatial)``. Arrays may be torch tensors or numpy arrays. Every mistake a user
can make at this boundary raises :class:`~xaibench.errors.XaibenchError` with one line
saying what to change (the CLI's lines where the CLI has the same check); a plugin that
misbehaves raises :class:`~xaibench.errors.CellError`.

Importing this module imports no torch; the functions import it when called.
"""
from __future__ import annotations

import copy
import dataclasses
import functools
import hashlib
import html
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from xaibench.errors import XaibenchError, did_you_mean

if TYPE_CHECKING:
    import numpy as np
    import torch
    from torch import nn

    from xaibench.options import RunOptions, RunSummary
    from xaibench.plugins import Harness
    from xaibench.runner import Runner
    from xaibench.specs import MethodSpec, MetricSpec
    from xaibench.store import Store
    from xaibench.suite import Suite

__all__ = ["Metric", "Results", "Scores", "explain", "metric", "run", "score"]

#: Where an error from this module says the value came from.
WHERE = "xaibench.score"
#: Maps per method call when ``explain`` is not told otherwise: a suite's default ``batch_size``.
METHOD_BATCH = 64
#: What ``to_pandas`` tells a user without pandas.
PANDAS_HINT = "pandas is not installed: pip install 'xaibench[pandas]'"


@functools.lru_cache(maxsize=1)
def _harness() -> Harness:
    """The installed plugins, loaded once per process."""
    from xaibench.plugins import load_harness

    return load_harness()


def _pandas() -> Any:
    try:
        import pandas
    except ImportError:
        raise XaibenchError(PANDAS_HINT) from None
    return pandas


# -- the boundary: a user's arrays ---------------------------------------------------------------
def _tensor(value: Any, what: str) -> torch.Tensor:
    """``value`` (a torch tensor, numpy array or nested sequence) as a CPU tensor; one line if it is none."""
    import numpy as np
    import torch

    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    array = np.asarray(value)
    if array.dtype.kind not in "biuf":
        raise XaibenchError(f"{what} must be a torch tensor or numpy array of numbers, got "
                            f"{type(value).__name__} of dtype {array.dtype}")
    return torch.from_numpy(np.ascontiguousarray(array))


def _inputs(value: Any) -> torch.Tensor:
    """``(N, C, *spatial)`` float32 inputs; integer images are refused (their scale is the user's to state)."""
    from xaibench.specs import MODALITY_DIMS, MODALITY_SHAPES

    x = _tensor(value, "inputs")
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


def _modality(x: torch.Tensor) -> str:
    from xaibench.specs import MODALITY_DIMS

    return next(m for m, d in MODALITY_DIMS.items() if d == x.dim())


def _targets(value: Any, n: int, num_classes: int) -> torch.Tensor:
    """``(N,)`` int64 class indices in ``0..K-1``."""
    import torch

    t = _tensor([value] * n if isinstance(value, int) else value, "targets")
    if t.dtype.is_floating_point or t.dtype == torch.bool:
        raise XaibenchError(f"targets must be integer class indices, got dtype {str(t.dtype).removeprefix('torch.')}")
    t = t.reshape(-1).long() if t.dim() == 2 and t.shape[1] == 1 else t.long()
    if tuple(t.shape) != (n,):
        raise XaibenchError(f"targets have shape {tuple(t.shape)}; expected ({n},): one class per input")
    if n and (t.min() < 0 or t.max() >= num_classes):
        raise XaibenchError(f"targets must be class indices in 0..{num_classes - 1} (the model has {num_classes} "
                            f"classes), got {int(t.min())}..{int(t.max())}")
    return t


def _maps(value: Any, x: torch.Tensor) -> np.ndarray:
    """``(N, *spatial)`` float32 maps, coarser ones upsampled as the runner upsamples a method's maps."""
    import numpy as np

    from xaibench.maps import upsample

    m = _tensor(value, "maps")
    n, spatial = x.shape[0], tuple(x.shape[2:])
    if x.dim() == 3 and m.shape == x.shape:
        raise XaibenchError(f"inputs of shape {tuple(x.shape)} are read as signals (N, C, L), and maps of the same "
                            f"shape are not (N, L): for images, add the channel axis (inputs[:, None])")
    if m.dim() != len(spatial) + 1 or m.shape[0] != n or any(a > b for a, b in zip(m.shape[1:], spatial)):
        raise XaibenchError(f"maps have shape {tuple(m.shape)}; expected ({n}, {', '.join(map(str, spatial))}) or a "
                            f"coarser map of the same dimensionality (no channel axis: reduce it first)")
    m = upsample(m.float(), spatial)
    if not m.isfinite().all():
        raise XaibenchError("maps contain NaN or infinite values")
    return m.numpy().astype(np.float32)


def _annotation(value: Any, x: torch.Tensor, what: str) -> torch.Tensor | None:
    """``(N, *spatial)`` masks (bool) or region maps (int8 levels), or None."""
    import torch

    if value is None:
        return None
    a = _tensor(value, what)
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


def _ids(value: Sequence[str] | None, n: int) -> tuple[str, ...]:
    if value is None:
        return tuple(str(i) for i in range(n))
    ids = tuple(str(i) for i in value)
    if len(ids) != n:
        raise XaibenchError(f"ids has {len(ids)} entries for {n} inputs; give one id per input")
    if len(set(ids)) != n:
        raise XaibenchError("ids are not unique; give each input its own id")
    return ids


def _device(name: str) -> torch.device:
    import torch

    from xaibench import validate

    validate.device(name)
    return torch.device(name)


def _model(model: Any, x: torch.Tensor, num_classes: int | None, output: str, output_index: int | None,
           output_key: str | None, device: torch.device) -> tuple[nn.Module, int]:
    """The user's model in eval mode on ``device``, read as ``(N, K)`` logits by the output contract
    (:func:`xaibench.outputs.conform`), and ``K``. Without ``num_classes`` ``K`` is the output's width
    (one logit: two classes, the sigmoid's)."""
    import torch
    from torch import nn

    from xaibench.outputs import OutputForm, conform, select

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
        if isinstance(out, torch.Tensor) and out.dim() == 2:
            num_classes = 2 if out.shape[1] == 1 else int(out.shape[1])
            if form == OutputForm() and out.shape[1] == num_classes:
                return model.eval().to(device), num_classes  # (N, K) logits already: conform would return it as is
        elif not isinstance(out, torch.Tensor):  # a tuple or dict: which element is the class scores is the user's
            items = out.items() if isinstance(out, dict) else enumerate(out) if isinstance(out, (tuple, list)) else ()
            shapes = ", ".join(f"{k}: {tuple(v.shape) if isinstance(v, torch.Tensor) else type(v).__name__}"
                               for k, v in items)
            raise XaibenchError(f"the model returns {type(out).__name__} ({shapes}): pass output_index= (or "
                                f"output_key=) naming its class scores, or num_classes= to have them found")
        else:
            raise XaibenchError(f"the model returns shape {tuple(out.shape)} for 2 inputs; expected class scores "
                                f"(2, K): flatten or pool its output to one row per input")
    conformed = conform(model.eval(), num_classes=num_classes, in_channels=int(x.shape[1]),
                        spatial=tuple(x.shape[2:]), form=form, who="the model", naming="python")
    return conformed.to(device), num_classes


def _model_key(model: nn.Module) -> str:
    """A content key of ``model``'s weights: the model part of the random draws' seeds."""
    from xaibench.cache import content_key

    digest = hashlib.sha256()
    for name, t in model.state_dict().items():
        digest.update(name.encode())
        digest.update(t.detach().cpu().contiguous().numpy().tobytes())
    return content_key("python-model", digest.hexdigest())


def _params_of(spec: Any, given: Mapping[str, Any] | None, where: str, kind: str) -> dict[str, Any]:
    """``spec.defaults`` overridden by ``given``, each name checked as a suite's parameters are."""
    from xaibench.params import check_plugin_params

    given = dict(given or {})
    check_plugin_params(where, kind, spec.name, spec, given)
    return {**dict(spec.defaults), **given}


# -- methods -------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class _Method:
    """A method as :func:`score` and :func:`explain` run it: spec, merged parameters, layer name."""

    spec: MethodSpec
    params: dict[str, Any]
    layer: str | None
    #: A registered method (False: a user's callable).
    registered: bool = True

    def layer_of(self, model: nn.Module) -> nn.Module | None:
        """The method's target layer in ``model`` (a copy's own module, for re-explained copies)."""
        if not self.spec.takes_layer:
            return None
        if self.layer is None:
            from torch import nn

            inner = getattr(model, "wrapped", model)
            convs = [n for n, m in inner.named_modules() if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d))]
            hint = f" (its last convolution is {convs[-1]!r})" if convs else ""
            raise XaibenchError(f"method {self.spec.name!r} explains a layer: pass layer='<dotted name>'{hint}")
        try:
            return model.get_submodule(self.layer)
        except AttributeError:
            names = [n for n, _ in getattr(model, "wrapped", model).named_modules() if n]
            raise XaibenchError(f"layer {self.layer!r} is not in the model{did_you_mean(self.layer, names)}") from None


def _method(method: Any, params: Mapping[str, Any] | None, layer: str | None, where: str) -> _Method:
    """A registered method by name (parameters checked) or a callable ``(model, inputs, targets) -> maps``."""
    from xaibench.specs import MODALITIES, MethodSpec

    if isinstance(method, str):
        spec = _harness().registry("methods").get(method)
        merged = _params_of(spec, {**dict(params or {}), **({"layer": layer} if layer is not None else {})},
                            where, "method")
        merged.pop("layer", None)
        return _Method(spec, merged, layer)
    if not callable(method):
        raise XaibenchError(f"method must be a registered method's name or a callable (model, inputs, targets) -> "
                            f"maps, got {type(method).__name__}")
    if params or layer is not None:
        raise XaibenchError("method parameters and layer apply to a registered method; bind them in your callable")
    fn = method
    spec = MethodSpec(name=getattr(fn, "__name__", type(fn).__name__), explain=lambda model, x, t, ctx: fn(model, x, t),
                      modalities=frozenset(MODALITIES), description="a callable given to xaibench")
    return _Method(spec, {}, None, registered=False)


def _covered(me: _Method, model: nn.Module, x: torch.Tensor, allow_small_cam: bool) -> None:
    """Refuse a model the method's rules do not cover (``MethodSpec.covers``), a modality it does not support,
    and a CAM layer too coarse to localize, each with one line."""
    from xaibench.degenerate import check_cam_layer, layer_output_spatial

    modality = _modality(x)
    if modality not in me.spec.modalities:
        raise XaibenchError(f"not applicable: method {me.spec.name!r} does not support {modality} data")
    if me.spec.covers is not None:
        reason = me.spec.covers(model)
        if reason is not None:
            raise XaibenchError(f"not applicable: {reason}")
    layer = me.layer_of(model)
    if layer is not None and not allow_small_cam:
        size = layer_output_spatial(model, layer, int(x.shape[1]), tuple(x.shape[2:]))
        check_cam_layer(me.layer or "?", size, tuple(x.shape[2:]), "xaibench.explain", me.spec.name, "the model")


def _explainer(me: _Method, net: nn.Module, x: torch.Tensor, target: torch.Tensor, ids: tuple[str, ...],
               masks: torch.Tensor | None, batch_size: int, seed: int, data_mean: torch.Tensor | None,
               device: torch.device) -> Callable[..., torch.Tensor]:
    """``explain(model=None, inputs=None, targets=None)``: the method's maps as a suite's cell computes them
    (:func:`xaibench.execution.explain_samples`), for another model, other inputs or other classes."""
    import torch

    from xaibench.execution import explain_samples
    from xaibench.specs import Samples

    def run(model: nn.Module | None = None, inputs: torch.Tensor | None = None,
            targets: torch.Tensor | None = None) -> torch.Tensor:
        m = net if model is None else model
        samples = Samples(x=x if inputs is None else inputs.detach().cpu(), y=target.cpu(), ids=ids, masks=masks)
        t = target if targets is None else targets
        maps = explain_samples(me.spec, m, samples, t.to(device), dict(me.params), layer=me.layer_of(m),
                               batch_size=batch_size, seed=seed, data_mean=data_mean, device=device)
        return torch.from_numpy(maps).to(device)

    return run


# -- score ---------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Scores:
    """Per-sample scores of :func:`score`: ``values[metric]`` is ``(N,)`` float64 in the metric's units.

    NaN marks a sample where the metric is undefined (an empty mask for a hit rate) or whose
    map is constant (it carries no information; counted in ``constant_maps``), as in a suite's
    cells. ``summary[metric]`` is ``(mean, ci_low, ci_high, n)``: the mean over the ``n``
    defined samples and its 95% percentile bootstrap CI (:func:`xaibench.stats.summarize`,
    seeded as the runner seeds it).
    """

    ids: tuple[str, ...]
    values: dict[str, np.ndarray]
    summary: dict[str, tuple[float, float, float, int]]
    constant_maps: dict[str, int]
    #: metric -> True where higher is better.
    higher_is_better: dict[str, bool]

    def __getitem__(self, metric: str) -> np.ndarray:
        """The ``(N,)`` scores of ``metric``."""
        try:
            return self.values[metric]
        except KeyError:
            raise XaibenchError(f"no scores for {metric!r}{did_you_mean(metric, self.values)}; scored: "
                                f"{', '.join(self.values)}") from None

    def mean(self, metric: str) -> float:
        """The mean of ``metric`` over its defined samples (NaN when none is defined)."""
        return self.summary[metric][0]

    def to_dict(self) -> dict[str, Any]:
        """Plain Python: ``{"ids": [...], "scores": {metric: [float | None, ...]}, "summary": {metric: {mean,
        ci_low, ci_high, n, constant_maps, higher_is_better}}}`` with None for NaN (JSON-ready)."""
        def num(v: float) -> float | None:
            return None if math.isnan(v) else float(v)

        return {"ids": list(self.ids),
                "scores": {m: [num(v) for v in vals] for m, vals in self.values.items()},
                "summary": {m: {"mean": num(s[0]), "ci_low": num(s[1]), "ci_high": num(s[2]), "n": s[3],
                                "constant_maps": self.constant_maps[m], "higher_is_better": self.higher_is_better[m]}
                            for m, s in self.summary.items()}}

    def to_pandas(self) -> Any:
        """A tidy ``pandas.DataFrame``: one row per sample x metric, columns ``id``, ``metric``, ``score``
        (NaN where undefined). Raises :class:`XaibenchError` naming the extra when pandas is missing."""
        pd = _pandas()
        rows = [(sid, m, float(v)) for m, vals in self.values.items() for sid, v in zip(self.ids, vals)]
        return pd.DataFrame(rows, columns=["id", "metric", "score"])

    def _repr_html_(self) -> str:
        head = "<tr><th>metric</th><th>mean</th><th>95% CI</th><th>n</th></tr>"
        body = "".join(f"<tr><td>{html.escape(m)} {'↑' if self.higher_is_better[m] else '↓'}</td><td>{s[0]:.4g}</td>"
                       f"<td>{s[1]:.4g} – {s[2]:.4g}</td><td>{s[3]}/{len(self.ids)}</td></tr>"
                       for m, s in self.summary.items())
        return f"<table>{head}{body}</table>"

    def __repr__(self) -> str:
        parts = ", ".join(f"{m}={s[0]:.4g} (n={s[3]})" for m, s in self.summary.items())
        return f"Scores({len(self.ids)} samples: {parts})"


def _metric_specs(metrics: str | Iterable[str]) -> list[MetricSpec]:
    names = [metrics] if isinstance(metrics, str) else list(metrics)
    if not names:
        raise XaibenchError("metrics is empty: name at least one metric (xaibench plugins lists them)")
    if len(set(names)) != len(names):
        raise XaibenchError(f"metrics name {', '.join(sorted({n for n in names if names.count(n) > 1}))} twice")
    registry = _harness().registry("metrics")
    return [registry.get(n) for n in names]


def _applicable(spec: MetricSpec, modality: str, masks: Any, regions: Any, ground_truth: str,
                additive: bool, method: _Method | None, region_top_level: int | None) -> None:
    """One line for a metric that cannot score these inputs (the plan's skip rules, as errors)."""
    name = spec.name
    if modality not in spec.modalities:
        raise XaibenchError(f"not applicable: metric {name!r} does not support {modality} data")
    if spec.requires_mask and masks is None:
        raise XaibenchError(f"metric {name!r} is a {spec.category} metric: pass masks=(N, *spatial) ground truth")
    if spec.requires_mask and ground_truth == "boxes" and not spec.box_ground_truth:
        raise XaibenchError(f"not applicable: metric {name!r} needs masks; ground_truth='boxes' says they are "
                            f"bounding boxes (only metrics defined on a box region score boxes)")
    if spec.requires_region and regions is None:
        raise XaibenchError(f"metric {name!r} needs regions=(N, *spatial) integer region levels")
    if "dataset" in spec.needs and regions is not None and region_top_level is None:
        raise XaibenchError(f"metric {name!r} normalises by the top region level: pass region_top_level=")
    if spec.requires_additive and not additive:
        who = (f"method {method.spec.name!r} does not produce additive attributions (MethodSpec.additive)"
               if method is not None and method.registered else
               "the maps are not declared additive attributions (pass additive=True for maps in the model output's "
               "units whose sum over pixels is meaningful)")
        raise XaibenchError(f"not applicable: metric {name!r} compares sums of the map with output changes, and "
                            f"{who}")
    if "variant" in spec.needs:
        raise XaibenchError(f"metric {name!r} compares with models trained by another protocol "
                            f"({', '.join(v.name for v in spec.variants)}), which only a suite trains: use "
                            f"xaibench.run")
    if "explain" in spec.needs and method is None:
        raise XaibenchError(f"metric {name!r} re-explains the inputs: pass method= (a registered method's name or a "
                            f"callable (model, inputs, targets) -> maps), the method that made the maps")


def score(model: Any, inputs: Any, targets: Any, maps: Any, metrics: str | Iterable[str], *,
          masks: Any = None, regions: Any = None, ground_truth: str = "masks", region_top_level: int | None = None,
          method: Any = None, method_params: Mapping[str, Any] | None = None, layer: str | None = None,
          additive: bool | None = None, params: Mapping[str, Mapping[str, Any]] | None = None,
          data_mean: Any = None, device: str = "cpu", batch_size: int | None = None,
          method_batch_size: int = METHOD_BATCH, seed: int = 0, ids: Sequence[str] | None = None,
          model_key: str | None = None, num_classes: int | None = None, output: str = "logits",
          output_index: int | None = None, output_key: str | None = None) -> Scores:
    """Per-sample scores of ``maps`` (yours, or any method's) on ``model`` and ``inputs``, by registered metrics.

    Args:
        model: a ``torch.nn.Module`` returning ``(N, K)`` logits, or one logit per input for two classes
            (a sigmoid/BCE classifier), or probabilities (``output="probabilities"``), or a tuple/dict
            whose class scores ``output_index``/``output_key`` name (:mod:`xaibench.outputs`). It is put in
            eval mode and moved to ``device``.
        inputs: ``(N, C, L)``, ``(N, C, H, W)`` or ``(N, C, D, H, W)`` floats as the model consumes them.
        targets: ``(N,)`` integer classes to explain, one int for all, or None for the model's predicted classes
            (what a suite with ``target: predicted`` explains).
        maps: ``(N, *spatial)`` saliency maps, or coarser (upsampled bilinearly, as the runner does for every
            method); real numbers, finite.
        metrics: registered metric names (``xaibench plugins`` lists them), or one name.
        masks: ``(N, *spatial)`` bool (or 0/1) ground-truth masks, for localization metrics.
        regions: ``(N, *spatial)`` integer region levels (higher = more relevant), for graded metrics, with
            ``region_top_level`` the level that counts as fully relevant.
        ground_truth: ``"masks"`` (segmentations) or ``"boxes"`` (``masks`` hold the union of bounding boxes:
            only metrics defined on a box region score them).
        method: what made the maps, for metrics that re-explain (robustness, randomization): a registered
            method's name (with ``method_params`` and ``layer``) or a callable
            ``(model, inputs, targets) -> maps``. A registered method whose rules do not cover the model
            (``MethodSpec.covers``) is refused: "not applicable: <reason>".
        additive: the maps are additive attributions in the model output's units (required by completeness,
            sensitivity-n and infidelity); default: the registered method's ``MethodSpec.additive``, else False.
        params: ``{metric: {parameter: value}}`` over each metric's defaults; unknown names are refused.
        data_mean: ``(C,)`` per-channel mean of the training inputs, for ``fill: mean`` and blur canvases
            (a metric that needs it and lacks it raises).
        device: ``cpu``, ``cuda``, ``cuda:N`` or ``mps``.
        batch_size: forward-pass batch (default: the largest whose activations fit 1 GiB on the CPU, half the
            free memory on CUDA: the runner's rule); it changes no score beyond float rounding.
        method_batch_size: inputs per call of a re-explaining method (a suite's ``batch_size``).
        seed, ids, model_key: what the random draws derive from (the suite's seed, the sample ids, default
            ``"0".."N-1"``, and the model's key, default a hash of its weights). Pass a suite run's values to
            reproduce its numbers exactly.
        num_classes: ``K``; default: the output's width (one logit: 2).

    Returns:
        :class:`Scores`: per-sample ``(N,)`` float64 scores per metric, means with bootstrap CIs.

    Raises:
        XaibenchError: one line for every input the CLI would refuse (shapes, dtypes, output contract, unknown
            metric or parameter names with "did you mean", a metric not applicable to these maps).
        CellError: a metric plugin broke its contract (wrong shape, infinite or out-of-bounds scores).
    """
    import torch

    from xaibench.engine import Engine, auto_batch_size
    from xaibench.execution import bootstrap_seed, checked_scores, isolated, memoised, metric_seeds
    from xaibench.metric_inputs import MetricBatch, MetricContext, metric_arguments
    from xaibench.stats import summarize

    from xaibench import validate

    validate.positive_int(batch_size, "batch_size")
    validate.positive_int(method_batch_size, "method_batch_size")
    if ground_truth not in ("masks", "boxes"):
        raise XaibenchError(f"ground_truth must be 'masks' or 'boxes', got {ground_truth!r}")
    specs = _metric_specs(metrics)
    params = dict(params or {})
    unknown = sorted(set(params) - {s.name for s in specs})
    if unknown:
        raise XaibenchError(f"params name {', '.join(map(repr, unknown))}, which metrics does not list"
                            f"{did_you_mean(unknown[0], [s.name for s in specs])}")
    merged = {s.name: _params_of(s, params.get(s.name), WHERE, "metric") for s in specs}
    dev = _device(device)
    x = _inputs(inputs)
    n = int(x.shape[0])
    the_maps = _maps(maps, x)
    mask_t, region_t = _annotation(masks, x, "masks"), _annotation(regions, x, "region maps")
    sample_ids = _ids(ids, n)
    me = None if method is None else _method(method, method_params, layer, WHERE)
    declared = bool(additive) if additive is not None else bool(me is not None and me.spec.additive)
    for s in specs:
        _applicable(s, _modality(x), mask_t, region_t, ground_truth, declared, me, region_top_level)
    net, k = _model(model, x, num_classes, output, output_index, output_key, dev)
    if me is not None:
        _covered(me, net, x, allow_small_cam=True)
    mean = None if data_mean is None else _tensor(data_mean, "data_mean").float().reshape(-1)
    if mean is not None and mean.shape != (x.shape[1],):
        raise XaibenchError(f"data_mean has {mean.numel()} values for {x.shape[1]} input channels; give one per channel")
    mean = None if mean is None else mean.to(dev)
    engine = Engine(net, dev, batch_size or auto_batch_size(net, x[:1], dev))
    base_logits = engine.logits(x)
    target = base_logits.argmax(1) if targets is None else _targets(targets, n, k).to(dev)
    key = model_key or _model_key(net)
    bundle = _bundle(x, target, sample_ids, mask_t, region_t, k, region_top_level, ground_truth)
    explain = None if me is None else _explainer(me, net, x, target, sample_ids, mask_t, method_batch_size, seed,
                                                  mean, dev)
    batch = MetricBatch(inputs=x.to(dev), targets=target, maps=torch.from_numpy(the_maps).to(dev),
                        masks=None if mask_t is None else mask_t.to(dev),
                        regions=None if region_t is None else region_t.to(dev))
    memo: dict[Any, Any] = {}
    values, summary, constant = {}, {}, {}
    for s in specs:
        p = merged[s.name]
        ctx = MetricContext(engine=engine, base_logits=base_logits, data_mean=mean, dataset=bundle,
                            model=lambda: copy.deepcopy(net), explain=explain, shared=memoised(memo),
                            **metric_seeds(seed, key, s, p, sample_ids))
        arguments = metric_arguments(s.needs, batch, ctx)
        raw = isolated(f"metric {s.name!r}", net, lambda: s.score(**arguments, **p))
        values[s.name], constant[s.name] = checked_scores(s, raw, the_maps)
        summary[s.name] = summarize(values[s.name], bootstrap_seed(seed, key, s))
    return Scores(sample_ids, values, summary, constant, {s.name: s.higher_is_better for s in specs})


def _bundle(x: torch.Tensor, target: torch.Tensor, ids: tuple[str, ...], masks: torch.Tensor | None,
            regions: torch.Tensor | None, k: int, region_top_level: int | None, ground_truth: str) -> Any:
    """The :class:`~xaibench.specs.DataBundle` a metric that needs ``dataset`` reads its metadata from: the
    given samples as every split, classes ``"0".."K-1"``."""
    from xaibench.specs import DataBundle, Samples

    samples = Samples(x=x, y=target.cpu(), ids=ids, masks=masks, regions=regions)
    return DataBundle(train=samples, val=samples, test=samples, class_names=tuple(str(i) for i in range(k)),
                      modality=_modality(x), region_top_level=region_top_level, ground_truth=ground_truth)


# -- explain -------------------------------------------------------------------------------------
def explain(model: Any, inputs: Any, targets: Any = None, *, method: Any, layer: str | None = None,
            masks: Any = None, data_mean: Any = None, device: str = "cpu", batch_size: int = METHOD_BATCH,
            seed: int = 0, ids: Sequence[str] | None = None, num_classes: int | None = None,
            output: str = "logits", output_index: int | None = None, output_key: str | None = None,
            allow_small_cam: bool = False, **params: Any) -> np.ndarray:
    """Saliency maps of ``inputs`` by a registered method, as a suite's cells get them.

    Args:
        model, inputs, targets, device, ids, num_classes, output, output_index, output_key: as for :func:`score`.
        method: a registered method's name (``xaibench plugins`` lists them) or a callable
            ``(model, inputs, targets) -> maps`` (validated and upsampled the same way).
        layer: the target layer's dotted name in ``model`` (``"features.3"``), for methods that explain a
            layer (the CAM family); refused by a method that takes none.
        masks: ``(N, *spatial)`` ground truth, for a method that needs it (the ``ground-truth`` baseline).
        data_mean: ``(C,)`` per-channel training mean, for baselines and fills named ``mean``.
        batch_size: inputs per method call; seed: per-sample seeds are ``seed_from(seed, id)`` (stochastic
            methods give the same map alone or in a batch).
        allow_small_cam: accept a CAM layer coarser than 4 per axis (refused by default, as a suite does).
        **params: the method's parameters over its defaults; unknown names are refused with "did you mean".

    Returns:
        ``(N, *spatial)`` float32 numpy maps, finite, at the input's size.

    Raises:
        XaibenchError: a bad input (as for :func:`score`), an unknown method or parameter, a model the method's
            rules do not cover ("not applicable: <reason>", ``MethodSpec.covers``), a missing or too coarse layer.
        CellError: the method returned a map of the wrong shape or with NaN/infinite values.
    """
    from xaibench.engine import Engine, auto_batch_size

    from xaibench import validate

    validate.positive_int(batch_size, "batch_size")
    dev = _device(device)
    x = _inputs(inputs)
    n = int(x.shape[0])
    me = _method(method, params, layer, "xaibench.explain")
    mask_t = _annotation(masks, x, "masks")
    if "masks" in me.spec.needs and mask_t is None:
        raise XaibenchError(f"method {me.spec.name!r} needs masks=(N, *spatial)")
    net, k = _model(model, x, num_classes, output, output_index, output_key, dev)
    _covered(me, net, x, allow_small_cam)
    if targets is None:
        target = Engine(net, dev, auto_batch_size(net, x[:1], dev)).logits(x).argmax(1)
    else:
        target = _targets(targets, n, k).to(dev)
    mean = None if data_mean is None else _tensor(data_mean, "data_mean").float().reshape(-1).to(dev)
    run_ = _explainer(me, net, x, target, _ids(ids, n), mask_t, batch_size, seed, mean, dev)
    return run_().cpu().numpy()


# -- metric objects --------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Metric:
    """One registered metric with fixed parameters: ``m(model, inputs, targets, maps, **score_keywords)``
    returns its ``(N,)`` float64 per-sample scores (:func:`score` with ``metrics=[m.name]``).

    The spec's metadata are attributes: ``name``, ``category`` (the family), ``higher_is_better`` and
    ``direction`` ("higher" or "lower"), ``needs``, ``citation`` (the source), ``formula``, ``bounds``,
    ``description``, and ``params`` (the defaults overridden by the given ones).
    """

    spec: MetricSpec
    params: dict[str, Any]

    @property
    def name(self) -> str:
        """The registered name."""
        return self.spec.name

    @property
    def category(self) -> str:
        """The family: faithfulness, robustness, localization, randomization or complexity."""
        return self.spec.category

    @property
    def higher_is_better(self) -> bool:
        """True where a higher score is better."""
        return self.spec.higher_is_better

    @property
    def direction(self) -> str:
        """``"higher"`` or ``"lower"``: which scores are better."""
        return "higher" if self.spec.higher_is_better else "lower"

    @property
    def needs(self) -> frozenset[str]:
        """What the metric reads (``MetricSpec.needs``): maps, masks, the model, a method to re-explain..."""
        return self.spec.needs

    @property
    def citation(self) -> str:
        """The source: paper and section."""
        return self.spec.citation

    @property
    def formula(self) -> str:
        """The definition in one formula (``MetricSpec.formula``)."""
        return self.spec.formula

    @property
    def bounds(self) -> tuple[float | None, float | None]:
        """The values a per-sample score cannot pass (None: unbounded on that side)."""
        return self.spec.bounds

    @property
    def description(self) -> str:
        """What it measures, for these parameters."""
        return self.spec.describe(self.params) if self.spec.describe else self.spec.description

    def __call__(self, model: Any, inputs: Any, targets: Any, maps: Any, **keywords: Any) -> np.ndarray:
        """``(N,)`` float64 scores: :func:`score` with this metric and its parameters (``keywords`` are
        :func:`score`'s, ``params`` excepted)."""
        if "params" in keywords or "metrics" in keywords:
            raise XaibenchError(f"metric {self.name!r} has its parameters already: give them to xaibench.metric()")
        return score(model, inputs, targets, maps, [self.name], params={self.name: self.params}, **keywords)[self.name]


def metric(name: str, **params: Any) -> Metric:
    """The registered metric ``name`` with ``params`` over its defaults, as a callable :class:`Metric`.

    Raises :class:`XaibenchError` for an unknown name or parameter (with "did you mean").
    """
    [spec] = _metric_specs([name])
    return Metric(spec, _params_of(spec, params, "xaibench.metric", "metric"))


# -- run -----------------------------------------------------------------------------------------
@dataclasses.dataclass
class Results:
    """A suite's results in its store, after :func:`run`: the board, cells, verdicts, per-sample scores.

    ``summary`` counts what the run computed, reused, skipped and failed; ``runner`` is the
    :class:`~xaibench.runner.Runner` that did it, whose store :func:`run` has closed when it returns
    (``runner.suite`` is the validated suite; the CLI draws figures with it while the store is open).
    """

    suite: str
    store_path: Path
    summary: RunSummary
    runner: Runner

    def _store(self) -> Store:
        from xaibench.store import Store

        return Store(self.store_path)

    def leaderboard(self) -> list[Any]:
        """The board model: one :class:`~xaibench.leaderboard.Block` per dataset x model (methods ranked)."""
        from xaibench.leaderboard import board

        with self._store() as store:
            return board(store, self.suite)

    @property
    def cells(self) -> list[Any]:
        """One :class:`~xaibench.leaderboard.Record` per planned cell (mean, CI, n, status, reason)."""
        from xaibench.leaderboard import records

        with self._store() as store:
            return records(store, self.suite)

    @property
    def verdicts(self) -> list[Any]:
        """The calibration verdict (:class:`~xaibench.leaderboard.verdict.Verdict`) of each dataset x model."""
        from xaibench.leaderboard.verdict import verdicts

        with self._store() as store:
            return verdicts(store, self.suite)

    def scores(self, dataset: str, model: str, method: str, metric: str) -> dict[str, float]:
        """The stored per-sample scores (sample id -> score) of one cell, by its display names."""
        for row_, cell in self._cells():
            if (row_.dataset, row_.model, row_.method, row_.metric) == (dataset, model, method, metric):
                with self._store() as store:
                    return store.scores(row_.cell_key) if cell is not None else {}
        raise XaibenchError(f"suite {self.suite!r} has no cell {dataset} / {model} / {method} / {metric}")

    def _cells(self) -> list[Any]:
        with self._store() as store:
            return list(store.iter_cells(self.suite))

    def to_pandas(self) -> Any:
        """A tidy ``pandas.DataFrame`` of per-sample scores: columns dataset, model, method, metric, id, score;
        cells with no scores (skipped, failed) are absent (``cells`` gives their reasons)."""
        pd = _pandas()
        rows = []
        with self._store() as store:
            for row_, cell in store.iter_cells(self.suite):
                if cell is None or cell.status != "ok":
                    continue
                rows += [(row_.dataset, row_.model, row_.method, row_.metric, sid, v)
                         for sid, v in store.scores(row_.cell_key).items()]
        return pd.DataFrame(rows, columns=["dataset", "model", "method", "metric", "id", "score"])

    def markdown(self) -> str:
        """The leaderboard as markdown, as ``xaibench leaderboard`` writes it."""
        from xaibench.leaderboard import render

        with self._store() as store:
            return render(store, self.suite)

    def _repr_html_(self) -> str:
        """Each dataset x model block's table (method, metric means), for Jupyter."""
        parts = []
        for b in self.leaderboard():
            head = "".join(f"<th>{html.escape(m)} {'↑' if b.higher_is_better[m] else '↓'}</th>" for m in b.metrics)
            rows = "".join(
                f"<tr><td>{'' if r.rank is None else r.rank}</td><td>{html.escape(r.method)}</td>"
                + "".join(f"<td>{_fmt(r.cells.get(m))}</td>" for m in b.metrics) + "</tr>" for r in b.rows)
            parts.append(f"<h4>{html.escape(b.dataset)} / {html.escape(b.model)}</h4>"
                         f"<table><tr><th>rank</th><th>method</th>{head}</tr>{rows}</table>")
        return "".join(parts)


def _fmt(record: Any) -> str:
    mean = getattr(record, "mean", None)
    return "–" if mean is None or not math.isfinite(mean) else f"{mean:.3f}"


def resolve_suite(harness: Harness, suite: str | Path | Mapping[str, Any]) -> Suite:
    """A registered suite name, a path to a YAML file, or a dict in the YAML's layout, as a validated Suite."""
    from xaibench.suite import load_suite

    if isinstance(suite, Mapping):
        import tempfile

        import yaml

        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / f"{suite.get('name', 'suite')}.yaml"
            path.write_text(yaml.safe_dump(_plain(suite), sort_keys=False), encoding="utf-8")
            return dataclasses.replace(load_suite(path), path="<dict>")
    name_or_path = str(suite)
    if name_or_path in harness.suites:
        return load_suite(harness.suites.get(name_or_path).path)
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.exists():
        if not path.exists():
            raise XaibenchError(f"suite file {path} does not exist")
        return load_suite(path)
    known = ", ".join(harness.suites.names()) or "none"
    raise XaibenchError(f"unknown suite {name_or_path!r}{did_you_mean(name_or_path, harness.suites.names())}; "
                        f"built-in suites: {known}; or give a path to a YAML file")


def _plain(value: Any) -> Any:
    """``value`` with mappings, tuples and lists as plain dicts and lists (what YAML dumps)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def run_suite(harness: Harness, suite: Suite, store: Store, options: RunOptions) -> Results:
    """Plan and run ``suite`` into the open ``store`` with ``options``: the CLI's ``run`` and :func:`run`."""
    from xaibench.runner import Runner

    runner = Runner(harness, suite, store, options)
    summary = runner.run(runner.plan())
    return Results(suite.name, Path(store.path), summary, runner)


def run(suite: str | Path | Mapping[str, Any], *, store: str | Path | None = None, limit: int | None = None,
        device: str = "cpu", batch_size: int | None = None, data_root: str | None = None, download: bool = False,
        mirror: str | None = None, progress: bool = True, fail_fast: bool = False,
        cell_timeout: float | None = None, autocast: bool = False, executor: str = "local", workers: int = 1,
        address: str | None = None) -> Results:
    """Run a suite as ``xaibench run`` does and return its :class:`Results`.

    Args:
        suite: a built-in suite's name (``"quick"``), a path to a YAML suite, or a dict in the YAML's layout.
        store: the SQLite results store (default: the CLI's, ``xaibench-results/results.sqlite``); finished
            cells already in it are reused.
        limit, device, batch_size, data_root, download, mirror, fail_fast, cell_timeout, autocast, executor,
            workers, address: the CLI's options of the same names (``xaibench run --help``).
        progress: a progress bar (``tqdm.auto``: a widget in Jupyter), plain lines when not on a terminal.

    Returns:
        :class:`Results` over the store. Failed cells are stored with their errors (``Results.cells``) and
        counted in ``Results.summary.failed``; nothing is raised for them.

    Raises:
        XaibenchError: an unknown suite, a malformed suite (with ``file:line``), a bad option value (the CLI's
            line), a plan that cannot run.
    """
    from xaibench import validate
    from xaibench.options import RunOptions
    from xaibench.store import DEFAULT_STORE, Store

    for value, option in ((limit, "limit"), (batch_size, "batch_size"), (workers, "workers")):
        validate.positive_int(value, option)
    validate.positive_seconds(cell_timeout, "cell_timeout")
    validate.device(device)
    if executor not in ("local", "ray"):
        raise XaibenchError(f"executor must be 'local' or 'ray', got {executor!r}")
    harness = _harness()
    resolved = resolve_suite(harness, suite)
    path = Path(DEFAULT_STORE if store is None else store)
    if path.is_dir():
        raise XaibenchError(f"store {path} is a directory; give a file path")
    path.parent.mkdir(parents=True, exist_ok=True)
    options = RunOptions(data_root=data_root, device=device, limit=limit, batch_size=batch_size, progress=progress,
                         fail_fast=fail_fast, cell_timeout=cell_timeout, autocast=autocast, executor=executor,
                         workers=workers, address=address, download=download, mirror=mirror)
    with Store(path) as opened:
        return run_suite(harness, resolved, opened, options)
