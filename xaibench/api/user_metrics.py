"""Metrics as :func:`xaibench.api.score` runs them: names resolved, the plan's skip rules as one-line errors,
the metadata bundle a metric that needs ``dataset`` reads."""
from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from xaibench.base.errors import XaibenchError
from xaibench.api.user_inputs import installed, modality

if TYPE_CHECKING:
    import torch
    from torch import nn

    from xaibench.contract.specs import MetricSpec
    from xaibench.api.user_methods import MethodChoice


def metric_specs(metrics: str | Iterable[str]) -> list[MetricSpec]:
    """The registered specs of ``metrics`` (one name or several, none twice); unknown names with "did you mean"."""
    names = [metrics] if isinstance(metrics, str) else list(metrics)
    if not names:
        raise XaibenchError("metrics is empty: name at least one metric (xaibench plugins lists them)")
    if len(set(names)) != len(names):
        raise XaibenchError(f"metrics name {', '.join(sorted({n for n in names if names.count(n) > 1}))} twice")
    registry = installed().registry("metrics")
    return [registry.get(n) for n in names]


def check_applicable(spec: MetricSpec, modality: str, masks: Any, regions: Any, ground_truth: str,
                additive: bool, method: MethodChoice | None, region_top_level: int | None) -> None:
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


def data_bundle(x: torch.Tensor, target: torch.Tensor, ids: tuple[str, ...], masks: torch.Tensor | None,
            regions: torch.Tensor | None, k: int, region_top_level: int | None, ground_truth: str) -> Any:
    """The :class:`~xaibench.contract.specs.DataBundle` a metric that needs ``dataset`` reads its metadata from: the
    given samples as every split, classes ``"0".."K-1"``."""
    from xaibench.contract.specs import DataBundle, Samples

    samples = Samples(x=x, y=target.cpu(), ids=ids, masks=masks, regions=regions)
    return DataBundle(train=samples, val=samples, test=samples, class_names=tuple(str(i) for i in range(k)),
                      modality=modality(x), region_top_level=region_top_level, ground_truth=ground_truth)


def scored(spec: MetricSpec, model: nn.Module, call: Callable[[], Any], where: str) -> Any:
    """``call()`` (``spec``'s score) isolated as the runner isolates a cell (the model restored, changes refused
    with :class:`~xaibench.base.errors.CellError`); a kernel's refusal of a value the user passed
    (:class:`~xaibench.scoring.kernels.KernelInputError`, one no parameter check foresaw) is the one-line
    :class:`XaibenchError` ``"<where>: metric '<name>': <why>"``."""
    from xaibench.running.execution import isolated
    from xaibench.scoring.kernels import KernelInputError

    try:
        return isolated(f"metric {spec.name!r}", model, call)
    except KernelInputError as exc:
        raise XaibenchError(f"{where}: metric {spec.name!r}: {exc}") from None
