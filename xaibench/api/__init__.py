"""xaibench from Python: score your own maps, explain with any method, run suites, in a notebook.

Four functions and the objects they return, on the runner's own path (the same
output contract, parameter checks, seeds, random draws, batching and NaN rules), so a
number from Python is the number ``xaibench run`` stores:

- :func:`score`: per-sample scores of maps you already have (:class:`Scores`);
- :func:`explain`: maps of any registered method (or a callable), as a suite gets them;
- :func:`run`: a suite (a built-in name, a YAML path or a dict) into a store (:class:`Results`);
- :func:`metric`: one metric as a callable object carrying its spec (:class:`Metric`);
- :func:`compare`: several methods on the same samples, ranked and judged as a suite's section (:class:`Comparison`).

Shapes: inputs ``(N, C, L)`` signals, ``(N, C, H, W)`` images or ``(N, C, D, H, W)``
volumes, float, as the model consumes them; maps, masks and region maps drop the channel
axis: ``(N, *spatial)``. Arrays may be torch tensors or numpy arrays. Every mistake a user
can make at this boundary raises :class:`~xaibench.base.errors.XaibenchError` with one line
saying what to change (the CLI's lines where the CLI has the same check); a plugin that
misbehaves raises :class:`~xaibench.base.errors.CellError`.

Importing this module imports no torch; the functions import it when called.

The package is the faces' room: beside these functions, what they return (:mod:`~xaibench.api.scores`,
:mod:`~xaibench.api.results`, :mod:`~xaibench.api.comparison`), the boundary with a user's arrays, methods
and metrics (``user_*``), segmentation models (:mod:`~xaibench.api.segmented`) and the ``xaibench`` command
(:mod:`~xaibench.api.cli`, a thin layer on this API).
"""
from __future__ import annotations

import copy
import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

    from xaibench.contract.specs import MetricSpec

from xaibench.api.comparison import Comparison
from xaibench.base.errors import XaibenchError, did_you_mean
from xaibench.api.results import Results, resolve_suite, run_suite
from xaibench.api.scores import Scores
from xaibench.api.segmented import segmentable
from xaibench.api.user_inputs import (as_tensor, checked_annotation, checked_inputs, checked_maps, checked_targets,
                                  installed, merged_params, modality, sample_ids, torch_device, user_model)
from xaibench.api.user_methods import check_covered, choose_method, explainer
from xaibench.api.user_metrics import check_applicable, data_bundle, metric_specs, scored

__all__ = ["Comparison", "Metric", "Results", "Scores", "compare", "explain", "metric", "resolve_suite", "run", "run_suite", "score"]

#: Where an error from :func:`score` says the value came from.
WHERE = "xaibench.score"
#: Maps per method call when ``explain`` is not told otherwise: a suite's default ``batch_size``.
METHOD_BATCH = 64


@segmentable
def score(model: Any, inputs: Any, targets: Any, maps: Any, metrics: str | Iterable[str], *,
          masks: Any = None, regions: Any = None, ground_truth: str = "masks", region_top_level: int | None = None,
          method: Any = None, method_params: Mapping[str, Any] | None = None, layer: Any = None,
          additive: bool | None = None, params: Mapping[str, Mapping[str, Any]] | None = None,
          data_mean: Any = None, device: str = "cpu", batch_size: int | None = None,
          method_batch_size: int = METHOD_BATCH, seed: int = 0, ids: Sequence[str] | None = None,
          num_classes: int | None = None, output: str = "logits", output_index: int | None = None,
          output_key: str | None = None) -> Scores:
    """Per-sample scores of ``maps`` (yours, or any method's) on ``model`` and ``inputs``, by registered metrics.

    Args:
        model: a ``torch.nn.Module`` returning ``(N, K)`` logits (a segmenter's ``(N, K, *spatial)``:
            :mod:`xaibench.scoring.segmentation`), one logit ``z`` for two classes (class 1: ``z``, class 0: ``-z``;
            probabilities ``sigmoid(z)``, ``1 - sigmoid(z)``), probabilities (``output=``
            ``"probabilities"``) or a tuple/dict whose class scores ``output_index``/``output_key`` name
            (:mod:`xaibench.contract.outputs`); it is put in eval mode on ``device``.
        inputs: ``(N, C, L)``, ``(N, C, H, W)`` or ``(N, C, D, H, W)`` floats as the model consumes them.
        targets: ``(N,)`` integer classes to explain, one int for all, or None for the model's predicted classes
            (``target: predicted``); for a segmentation model a region target (:func:`xaibench.suites.targets.region_target`).
        maps: ``(N, *spatial)`` saliency maps, or coarser in the input's proportions (upsampled bilinearly, as
            the runner does for every method; :func:`xaibench.scoring.maps.coarser_fits`); real numbers, finite.
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
        seed, ids: what every random draw derives from: sample ``i``'s draws (perturbations, noise, tie orders)
            from ``seed`` and ``ids[i]`` alone, the bootstrap over the samples sorted by id, so permuting the
            inputs (with their ids) permutes the scores and changes no interval. ``ids`` default: each input's
            content digest (:func:`~xaibench.api.user_inputs.sample_ids`); pass a suite's seed and sample ids to
            reproduce its numbers exactly.
        num_classes: ``K``; default: the output's width (one logit: 2).

    Returns:
        :class:`Scores`: per-sample ``(N,)`` float64 scores per metric, means with bootstrap CIs.

    Raises:
        XaibenchError: one line for every input the CLI would refuse (shapes, dtypes, output contract, unknown names
            with "did you mean", values ``MetricSpec.check`` or a kernel refuses, a metric not applicable to the maps).
        CellError: a metric plugin broke its contract (wrong shape, infinite or out-of-bounds scores).
    """
    import torch

    from xaibench.contract import validate
    from xaibench.storage.cache import cache_home
    from xaibench.scoring.engine import Engine
    from xaibench.running.execution import bootstrap_seed, checked_scores, memoised, metric_seeds
    from xaibench.contract.metric_inputs import MetricBatch, MetricContext, metric_arguments
    from xaibench.scoring.segmentation import region_score
    from xaibench.scoring.stats import summarize
    from xaibench.scoring.throughput import engine_batch_size

    validate.positive_int(batch_size, "batch_size")
    validate.positive_int(method_batch_size, "method_batch_size")
    if ground_truth not in ("masks", "boxes"):
        raise XaibenchError(f"ground_truth must be 'masks' or 'boxes', got {ground_truth!r}")
    specs = metric_specs(metrics)
    params = dict(params or {})
    unknown = sorted(set(params) - {s.name for s in specs})
    if unknown:
        raise XaibenchError(f"params name {', '.join(map(repr, unknown))}, which metrics does not list"
                            f"{did_you_mean(unknown[0], [s.name for s in specs])}")
    merged = {s.name: merged_params(s, params.get(s.name), WHERE, "metric") for s in specs}
    dev = torch_device(device)
    x = checked_inputs(inputs)
    n = int(x.shape[0])
    the_maps = checked_maps(maps, x)
    mask_t, region_t = checked_annotation(masks, x, "masks"), checked_annotation(regions, x, "region maps")
    sids = sample_ids(ids, x)
    me = None if method is None else choose_method(method, method_params, layer, WHERE)
    declared = bool(additive) if additive is not None else bool(me is not None and me.spec.additive)
    for s in specs:
        check_applicable(s, modality(x), mask_t, region_t, ground_truth, declared, me, region_top_level)
    net, k = user_model(model, x, num_classes, output, output_index, output_key, dev)
    if me is not None:
        me = check_covered(me, net, x, allow_small_cam=True)
    mean = None if data_mean is None else as_tensor(data_mean, "data_mean").float().reshape(-1)
    if mean is not None and mean.shape != (x.shape[1],):
        raise XaibenchError(f"data_mean has {mean.numel()} values for {x.shape[1]} input channels; give one per channel")
    mean = None if mean is None else mean.to(dev)
    # the runner's engine batch (xaibench.running.execution.group_context): the same rule, the same numbers
    engine = Engine(net, dev, batch_size or engine_batch_size(net, x[:1], dev, cache_home()))
    base_logits = engine.logits(x)
    target = base_logits.argmax(1) if targets is None else checked_targets(targets, n, k).to(dev)
    bundle = data_bundle(x, target, sids, mask_t, region_t, k, region_top_level, ground_truth)
    explain = None if me is None else explainer(me, net, x, target, sids, mask_t, method_batch_size, seed,
                                                  mean, dev, engine.batch_size)
    batch = MetricBatch(inputs=x.to(dev), targets=target, maps=torch.from_numpy(the_maps).to(dev),
                        masks=None if mask_t is None else mask_t.to(dev),
                        regions=None if region_t is None else region_t.to(dev))
    memo: dict[Any, Any] = {}
    values, summary, constant = {}, {}, {}
    for s in specs:
        p = merged[s.name]
        ctx = MetricContext(engine=engine, base_logits=base_logits, data_mean=mean, dataset=bundle,
                            model=lambda: copy.deepcopy(net), explain=explain, shared=memoised(memo),
                            segmentation=region_score(net),
                            **metric_seeds(seed, s, p, sids))
        arguments = metric_arguments(s.needs, batch, ctx)
        raw = scored(s, net, lambda s=s, arguments=arguments, p=p: s.score(**arguments, **p), WHERE)
        values[s.name], constant[s.name] = checked_scores(s, raw, the_maps)
        summary[s.name] = summarize(values[s.name], bootstrap_seed(seed, s), sids)
    return Scores(sids, values, summary, constant, {s.name: s.higher_is_better for s in specs})


# -- explain -------------------------------------------------------------------------------------
@segmentable
def explain(model: Any, inputs: Any, targets: Any = None, *, method: Any, layer: Any = None,
            masks: Any = None, data_mean: Any = None, device: str = "cpu", batch_size: int = METHOD_BATCH,
            seed: int = 0, ids: Sequence[str] | None = None, num_classes: int | None = None,
            output: str = "logits", output_index: int | None = None, output_key: str | None = None,
            allow_small_cam: bool = False, **params: Any) -> np.ndarray:
    """Saliency maps of ``inputs`` by a registered method, as a suite's cells get them.

    Args:
        model, inputs, targets, device, ids, num_classes, output, output_index, output_key: as for :func:`score`.
        method: a registered method's name (``xaibench plugins`` lists them) or a callable
            ``(model, inputs, targets) -> maps`` (validated and upsampled the same way).
        layer: the target layer's dotted name in ``model`` (``"layer3"``) or the module (``model.layer3``), for
            methods that explain a layer (the CAM family); refused by a method that takes none.
        masks: ``(N, *spatial)`` ground truth, for a method that needs it (the ``ground-truth`` baseline).
        data_mean: ``(C,)`` per-channel training mean, for baselines and fills named ``mean``.
        batch_size: inputs per method call; seed: per-sample seeds are ``seed_from(seed, id)`` (stochastic
            methods give the same map alone or in a batch).
        allow_small_cam: accept a CAM layer coarser than 4 per axis (``specs.MIN_CAM_SIZE``; refused by default).
        **params: the method's parameters over its defaults; unknown names are refused with "did you mean".

    Returns:
        ``(N, *spatial)`` float32 numpy maps, finite, at the input's size.

    Raises:
        XaibenchError: a bad input (as for :func:`score`), an unknown method or parameter, a model the method's
            rules do not cover ("not applicable: <reason>", ``MethodSpec.covers``), a missing or too coarse layer.
        CellError: the method returned a map of the wrong shape or with NaN/infinite values.
    """
    from xaibench.contract import validate
    from xaibench.storage.cache import cache_home
    from xaibench.scoring.engine import Engine
    from xaibench.scoring.throughput import engine_batch_size

    validate.positive_int(batch_size, "batch_size")
    dev = torch_device(device)
    x = checked_inputs(inputs)
    n = int(x.shape[0])
    me = choose_method(method, params, layer, "xaibench.explain")
    mask_t = checked_annotation(masks, x, "masks")
    if "masks" in me.spec.needs and mask_t is None:
        raise XaibenchError(f"method {me.spec.name!r} needs masks=(N, *spatial)")
    net, k = user_model(model, x, num_classes, output, output_index, output_key, dev)
    me = check_covered(me, net, x, allow_small_cam)
    # the runner's engine batch: the batch of the method's own forward passes, as in a suite's cell
    engine = Engine(net, dev, engine_batch_size(net, x[:1], dev, cache_home()))
    target = engine.logits(x).argmax(1) if targets is None else checked_targets(targets, n, k).to(dev)
    mean = None if data_mean is None else as_tensor(data_mean, "data_mean").float().reshape(-1).to(dev)
    run_ = explainer(me, net, x, target, sample_ids(ids, x), mask_t, batch_size, seed, mean, dev,
                     engine.batch_size)
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
        """The family, one of :data:`xaibench.contract.specs.METRIC_CATEGORIES` (faithfulness, robustness, localization,
        randomization, complexity, axiomatic)."""
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
    [spec] = metric_specs([name])
    return Metric(spec, merged_params(spec, params, "xaibench.metric", "metric"))


def run(suite: str | Path | Mapping[str, Any], *, store: str | Path | None = None, limit: int | None = None,
        device: str = "cpu", batch_size: int | None = None, data_root: str | None = None, download: bool = False,
        mirror: str | None = None, progress: bool = True, fail_fast: bool = False,
        cell_timeout: float | None = None, autocast: bool = False, executor: str = "local", workers: int = 1,
        address: str | None = None, overrides: Mapping[str, Any] | None = None) -> Results:
    """Run a suite as ``xaibench run`` does and return its :class:`Results`.

    Args:
        suite: a built-in suite's name (``"quick"``), a path to a YAML suite, or a dict in the YAML's layout.
        overrides: suite values set on top of it, dotted key -> value (``{"image_size": 224, "samples": 32,
            "models.0.train.epochs": 3}``), as ``xaibench run --set KEY=VALUE`` sets them (:mod:`xaibench.suites.overrides`)
            and checked as the file's own values are.
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
    from xaibench.contract import validate
    from xaibench.suites.options import RunOptions
    from xaibench.storage.store import DEFAULT_STORE, Store

    for value, option in ((limit, "limit"), (batch_size, "batch_size"), (workers, "workers")):
        validate.positive_int(value, option)
    validate.positive_seconds(cell_timeout, "cell_timeout")
    validate.device(device)
    if executor not in ("local", "ray"):
        raise XaibenchError(f"executor must be 'local' or 'ray', got {executor!r}")
    harness = installed()
    resolved = resolve_suite(harness, suite, overrides)
    path = Path(DEFAULT_STORE if store is None else store)
    if path.is_dir():
        raise XaibenchError(f"store {path} is a directory; give a file path")
    path.parent.mkdir(parents=True, exist_ok=True)
    options = RunOptions(data_root=data_root, device=device, limit=limit, batch_size=batch_size, progress=progress,
                         fail_fast=fail_fast, cell_timeout=cell_timeout, autocast=autocast, executor=executor,
                         workers=workers, address=address, download=download, mirror=mirror)
    with Store(path) as opened:
        return run_suite(harness, resolved, opened, options)


def compare(model: Any, inputs: Any, targets: Any, methods: Mapping[str, Any], metrics: str | Iterable[str], *,
            masks: Any = None, layer: str | None = None, params: Mapping[str, Mapping[str, Any]] | None = None,
            baselines: bool | Sequence[str] = True, method_batch_size: int = METHOD_BATCH, seed: int = 0,
            ids: Sequence[str] | None = None, progress: bool = True, name: str = "compare", **keywords: Any) -> Comparison:
    """Several methods scored on the same samples and ranked as a suite ranks them, with its verdicts.

    Each method's maps are scored by :func:`score` (a registered method's maps come from :func:`explain`), and
    the scores are read back by the leaderboard's own functions (:mod:`xaibench.api.comparison`), so the ranks, CIs,
    calibration verdict, trust table and aggregate ranking are a suite's for these samples: with a suite run's
    samples, ``ids`` and ``seed`` they equal its leaderboard section's.

    Args:
        model, inputs, targets, masks, layer, method_batch_size, seed, ids: as for :func:`score`
            (``layer``: the CAM methods' target layer).
        methods: display name -> ``(N, *spatial)`` maps (yours; ``{"maps": ..., "additive": True}`` for
            attributions in the model output's units), a registered method's name, ``{"name": ..., "params":
            {...}}`` (a suite's method entry), or a callable ``(model, inputs, targets) -> maps``.
        metrics: registered metric names; ``params``: ``{metric: {parameter: value}}``, as for :func:`score`.
            A metric that does not apply to a method's maps (completeness on a CAM) is a skipped cell with the
            reason, as in a suite.
        baselines: True adds the registered calibration baselines (chance; the oracle when ``masks`` are
            given) that ``methods`` does not name; False none; or a list of registered names.
        progress: a progress bar over the cells (method x metric); nothing is printed when False.
        name: the comparison's title.
        **keywords: :func:`score`'s other keywords (``regions``, ``data_mean``, ``device``, ``batch_size``,
            ``num_classes``, ``output``...).

    Returns:
        :class:`Comparison`: ranks (tie-aware paired Wilcoxon tests, Holm-corrected), means with 95% bootstrap
        CIs in each metric's units, the verdict, the trust table, the aggregate ranking; markdown in
        Jupyter, DataFrames with :meth:`Comparison.to_pandas` and :meth:`Comparison.ranking`.

    Raises:
        XaibenchError: what :func:`score` or :func:`explain` refuses, an empty or malformed ``methods``, unknown
            metric, method or parameter names (with "did you mean"), a baseline already among the methods.
        CellError: a method or metric plugin broke its contract.
    """
    from xaibench.api.comparison import compared

    return compared(score, explain, model, inputs, targets, methods, metrics, masks=masks, layer=layer, params=params,
                    baselines=baselines, method_batch_size=method_batch_size, seed=seed, ids=ids,
                    progress=progress, name=name, keywords=keywords)
