"""The metric applicability table (``docs/metric-applicability.md``), generated from the metric registry.

For every registered metric: which maps it is defined on (any map, or additive attributions
only: ``MetricSpec.requires_additive``), what ground truth it needs (masks, boxes, region maps),
what it asks of the model (batched forward passes, a fresh copy, re-running the method, a model
variant: ``MetricSpec.needs``), which modalities it is checked on, its direction, bounds, chance
and oracle levels, and when a sample's score is undefined. Everything comes from the specs, so
the table cannot drift from the code; the test suite compares the committed page with
:func:`render`.

Regenerate with ``python -m xaibench.authoring.applicability > docs/metric-applicability.md``.
"""
from __future__ import annotations

from xaibench.contract.plugins import load_harness
from xaibench.contract.specs import METRIC_CATEGORIES, MODALITIES, MetricSpec

HEADER = """# Metric applicability

Where each metric is defined, generated from the metric registry (`python -m xaibench.authoring.applicability >
docs/metric-applicability.md`; a test keeps this page equal to what the code renders).

- **maps**: *any map* (CAMs, gradients, perturbation maps, baselines) or *additive* attributions only
  (`MetricSpec.requires_additive`: their sums compare with output changes; the plan marks other
  methods' cells "not applicable").
- **ground truth**: what the dataset must provide (`requires_mask`, `box_ground_truth`, `requires_region`);
  datasets without it are skipped for that metric.
- **model**: *passes* = batched forward passes of the trained model on perturbed inputs (the engine);
  *re-explains* = the method is run again (on perturbed inputs, other models or other classes), so
  the metric costs method runs; *copy* = a fresh copy of the model is modified (randomized, shifted);
  *variant* = a model trained by another protocol; *segmenter* = a segmentation model's region target
  (not applicable to classifiers: [segmentation](segmentation.md)); *none* = the maps (and masks) alone.
- **modalities**: the input kinds the metric is checked on (image, signal, volume); others are skipped.
- **chance / oracle**: the score of a uniformly random map in expectation (*mask-fraction*: the mask's
  area fraction) and of the ground-truth map, where the definition fixes them (the calibration verdict
  checks them).
- **undefined**: when a sample's score is NaN (excluded from the mean and counted).

"""


def _model_needs(spec: MetricSpec) -> str:
    needs = spec.needs
    parts = [label for key, label in (("engine", "passes"), ("explain", "re-explains"), ("model", "copy"),
                                      ("variant", "variant"), ("segmentation", "segmenter")) if key in needs]
    return ", ".join(parts) or "none"


def _ground_truth(spec: MetricSpec) -> str:
    if spec.requires_region:
        return "region maps"
    if spec.requires_mask:
        return "masks or boxes" if spec.box_ground_truth else "masks"
    return "–"


def _bounds(spec: MetricSpec) -> str:
    low, high = spec.bounds
    if low is None and high is None:
        return "–"
    return f"[{'-∞' if low is None else f'{low:g}'}, {'∞' if high is None else f'{high:g}'}]"


def _levels(spec: MetricSpec) -> str:
    chance = spec.chance(spec.defaults) if spec.chance else None
    parts = ([f"chance: {chance}"] if chance else []) + ([f"oracle: {spec.oracle:g}"] if spec.oracle is not None
                                                          else [])
    return "; ".join(parts) or "–"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ") or "–"


def _method_kinds(harness: object) -> str:
    """Which registered methods are of which kind: the columns of the *maps* rule."""
    methods = [e.spec for e in harness.methods]  # type: ignore[attr-defined]
    kinds = (("additive attributions (every metric applies)", [m.name for m in methods if m.additive]),
             ("other maps (metrics marked *additive* are not applicable)",
              [m.name for m in methods if not m.additive and not m.calibration]),
             ("calibration baselines (scored as references, never ranked)",
              [m.name for m in methods if m.calibration]))
    lines = ["## Method kinds\n\n", "| kind | methods |\n|---|---|\n"]
    lines += [f"| {kind} | {', '.join(f'`{n}`' for n in names) or '–'} |\n" for kind, names in kinds]
    return "".join(lines) + "\n"


def render() -> str:
    """The whole page: the method kinds, then one table per metric category, one row per registered metric."""
    harness = load_harness()
    metrics = [e.spec for e in harness.metrics]
    out = [HEADER, _method_kinds(harness)]
    for category in METRIC_CATEGORIES:
        rows = [m for m in metrics if m.category == category]
        if not rows:
            continue
        out.append(f"## {category}\n\n")
        out.append("| metric | direction | bounds | maps | ground truth | model | modalities | chance / oracle "
                   "| undefined |\n|---|---|---|---|---|---|---|---|---|\n")
        for m in rows:
            modalities = ", ".join(x for x in MODALITIES if x in m.modalities)
            out.append(f"| `{m.name}` | {'↑' if m.higher_is_better else '↓'} | {_bounds(m)} | "
                       f"{'additive' if m.requires_additive else 'any map'} | {_ground_truth(m)} | "
                       f"{_model_needs(m)} | {modalities} | {_levels(m)} | {_cell(m.undefined)} |\n")
        out.append("\n")
    return "".join(out).rstrip("\n") + "\n"


if __name__ == "__main__":
    print(render(), end="")
