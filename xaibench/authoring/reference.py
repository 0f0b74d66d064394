"""The metric and method reference (the docs site's reference pages), rendered from the registry.

Why generated: a definition written in prose beside the code drifts from it the day a
default or a formula changes. Here the registered specs are the single source: one page
per metric category (:data:`xaibench.contract.specs.METRIC_CATEGORIES`) with one section per
metric (``MetricSpec.formula``, direction, ``bounds``, ``undefined``, ``defaults``,
``citation``, ``checked_against`` and the calibration levels ``chance`` and ``oracle``),
and one page of methods (``MethodSpec.description``, ``citation``, ``checked_against``,
``defaults`` and what each method needs). The docs site builds these pages from the
installed plugins at build time (``tools/mkdocs_reference.py``), so a third-party
plugin's metrics appear beside the built-in ones.

:func:`problems` lists every registered metric or method that lacks a field the
reference needs; the test suite requires it to be empty for the installed plugins.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from xaibench.contract.plugins import Harness
from xaibench.contract.specs import METRIC_CATEGORIES, MethodSpec, MetricSpec

#: What a named chance level (``MetricSpec.chance``) means, in the reference's words.
CHANCE_LEVELS = {
    "mask-fraction": "the mask's area fraction (a uniformly random map, in expectation; Arras et al. 2022, Sec. 4)",
}

#: The notation every formula uses, printed at the top of each metric page.
NOTATION = """\
Notation: `x` is the input `(C, *spatial)` with `P` pixels (voxels, time steps), `c` the explained class
(the predicted class unless the suite says `target: label`), `p_c(x)` its softmax probability and `f_c(x)`
its logit (for a one-logit model with output `z`: `f_1 = z`, `f_0 = -z`, `p_1 = sigmoid(z)`,
`p_0 = 1 - sigmoid(z)`); `a` is the method's map `(*spatial)`, `a^+ = max(a, 0)`, `L` the map scaled to [0, 1] per map
(`sign` parameter: the positive part over its maximum, min-max, or `|a|`), `Phi(x)` the method re-run on
an input, `M` the annotated mask. `AUC_[0,1]` is the trapezoid area over an x-axis scaled to [0, 1].
Every score is one number per sample; the leaderboard averages them with a bootstrap CI.
"""


def yaml_value(value: Any) -> str:
    """A parameter value as a suite (YAML) writes it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, (tuple, list, frozenset, set)):
        items = sorted(value) if isinstance(value, (frozenset, set)) else value
        return "[" + ", ".join(yaml_value(v) for v in items) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k}: {yaml_value(v)}" for k, v in value.items()) + "}"
    return str(value)


def _bound(value: float | None, low: bool) -> str:
    if value is None:
        return "-inf" if low else "+inf"
    return f"{value:g}" if math.isfinite(value) else str(value)


def _parameters(defaults: Mapping[str, Any]) -> list[str]:
    if not defaults:
        return ["- Parameters: none."]
    lines = ["- Parameters (defaults; a suite overrides them under `params:`):", ""]
    lines += [f"    - `{name}`: `{yaml_value(value)}`" for name, value in defaults.items()]
    return lines + [""]


def metric_problems(spec: MetricSpec) -> list[str]:
    """What ``spec`` lacks for its reference section, one line each ("" fields and undeclared bounds)."""
    found = [f"metric {spec.name!r} has no {name}" for name in ("description", "formula", "citation",
                                                                "checked_against", "undefined")
             if not str(getattr(spec, name)).strip()]
    if spec.bounds == (None, None):
        found.append(f"metric {spec.name!r} declares no bounds (the range its per-sample scores cannot leave)")
    return found


def method_problems(spec: MethodSpec) -> list[str]:
    """What ``spec`` lacks for its reference section; a calibration baseline (no paper) needs no citation."""
    needed = ("description", "checked_against") + (() if spec.calibration else ("citation",))
    return [f"method {spec.name!r} has no {name}" for name in needed if not str(getattr(spec, name)).strip()]


def problems(harness: Harness) -> list[str]:
    """Every missing reference field of the harness's metrics and methods, sorted by kind and name."""
    found = [p for e in sorted(harness.metrics, key=lambda e: e.spec.name) for p in metric_problems(e.spec)]
    return found + [p for e in sorted(harness.methods, key=lambda e: e.spec.name) for p in method_problems(e.spec)]


#: ``MetricSpec.needs`` that call the model (anything else a metric takes is the maps, annotations or seeds).
MODEL_NEEDS = frozenset({"engine", "base_logits", "model", "explain", "variant"})


def metric_needs(spec: MetricSpec) -> str:
    """What ``spec`` needs, derived from its declared requirements (``needs``, ``requires_mask``,
    ``requires_region``, ``requires_additive``, ``variants``), in the user's terms: "the model; the maps; masks"."""
    needs = (["the model"] if spec.needs & MODEL_NEEDS else []) + (["the maps"] if "maps" in spec.needs else [])
    if spec.requires_mask or "masks" in spec.needs:
        needs.append("masks" + (" or bounding boxes" if spec.box_ground_truth else ""))
    if spec.requires_region or "regions" in spec.needs:
        needs.append("graded region maps")
    if spec.requires_additive:
        needs.append("a method declaring additive attributions (others: not applicable)")
    if "explain" in spec.needs:
        needs.append("the method that made the maps, to run it again (from Python: `method=`)")
    if "data_mean" in spec.needs:
        needs.append("the training inputs' per-channel mean where a parameter names `mean` (from Python: "
                     "`data_mean=`)")
    if "segmentation" in spec.needs:
        needs.append("a segmentation model explained for a region target (classifiers: not applicable)")
    if spec.variants:
        needs.append(f"models trained by another protocol ({', '.join(v.name for v in spec.variants)}), which "
                     f"only a suite trains")
    return "; ".join(needs)


def metric_section(spec: MetricSpec, plugin: str) -> str:
    """The markdown section of one metric: ``### name`` and a list of its reference fields."""
    low, high = spec.bounds
    lines = [f"### `{spec.name}` {{ #{anchor(spec.name)} }}", "", spec.description + ".", "",
             f"- Definition: `` {spec.formula} ``",  # double backticks: a formula may quote a parameter in `...`
             f"- Direction: {'higher' if spec.higher_is_better else 'lower'} is better",
             f"- Range: [{_bound(low, True)}, {_bound(high, False)}]",
             f"- NaN (undefined) when: {spec.undefined}"]
    lines += _parameters(spec.defaults)
    if spec.chance is not None:
        level = spec.chance(dict(spec.defaults))
        lines.append("- Chance level (default parameters): "
                     + (CHANCE_LEVELS.get(level, level) if level else "not known in closed form at these parameters"))
    if spec.oracle is not None:
        lines.append(f"- The annotated mask as a map scores: {spec.oracle:g} on every sample with a non-empty mask")
    lines += [f"- Needs: {metric_needs(spec)}",
              f"- Inputs: {', '.join(sorted(spec.modalities))}",
              f"- Source: {spec.citation}",
              f"- Checked against: {spec.checked_against}",
              f"- Registered by: `{plugin}` (version {spec.version})", ""]
    return "\n".join(lines)


def method_section(spec: MethodSpec, plugin: str) -> str:
    """The markdown section of one method: ``### name`` and a list of its reference fields."""
    role = {"chance": "calibration baseline: chance level", "oracle": "calibration baseline: the oracle (the mask)",
            "centre-bias": "calibration baseline: centre bias"}.get(spec.calibration, spec.calibration)
    traits = [t for t, on in (("needs gradients", spec.needs_gradients), ("takes a target layer", spec.takes_layer),
                              ("additive attributions (scored by completeness, sensitivity-n, infidelity)",
                               spec.additive), (role, bool(spec.calibration))) if on]
    needs = sorted(spec.needs) + sorted(f"a model providing {p}" for p in spec.requires_model)
    lines = [f"### `{spec.name}` {{ #{anchor(spec.name)} }}", "", spec.description + ".", "",
             f"- Inputs: {', '.join(sorted(spec.modalities))}",
             f"- Traits: {'; '.join(traits) if traits else 'none'}",
             f"- Needs: {', '.join(needs) if needs else 'the model and the batch only'}",
             "- Models covered: " + ("those its `covers(model)` accepts; cells on other models are not applicable, "
                                     "with its reason" if spec.covers is not None else "every model")]
    lines += _parameters(spec.defaults)
    lines += [f"- Source: {spec.citation or 'none (a calibration baseline of this harness)'}",
              f"- Checked against: {spec.checked_against}",
              f"- Registered by: `{plugin}` (version {spec.version})", ""]
    return "\n".join(lines)


def _page(title: str, intro: str, sections: Iterable[str]) -> str:
    return "\n".join([f"# {title}", "", "<!-- generated from the registry by xaibench.authoring.reference; do not edit -->",
                      "", intro, "", *sections])


def pages(harness: Harness) -> dict[str, str]:
    """``{relative path: markdown}``: ``metrics/<category>.md`` for each category with metrics, and ``methods.md``."""
    out = {}
    for category in METRIC_CATEGORIES:
        entries = sorted((e for e in harness.metrics if e.spec.category == category), key=lambda e: e.spec.name)
        if entries:
            names = ", ".join(f"[`{e.spec.name}`](#{anchor(e.spec.name)})" for e in entries)
            out[f"metrics/{category}.md"] = _page(
                f"{category.capitalize()} metrics", f"{NOTATION}\n{len(entries)} metrics: {names}.",
                (metric_section(e.spec, e.plugin) for e in entries))
    methods = sorted(harness.methods, key=lambda e: e.spec.name)
    out["methods.md"] = _page(
        "Methods", "A method maps `(N, C, *spatial)` inputs and target classes to `(N, *spatial)` float32 maps. "
                   "Parameters go under `params:` in a suite's method entry.\n\n"
                   + ", ".join(f"[`{e.spec.name}`](#{anchor(e.spec.name)})" for e in methods) + ".",
        (method_section(e.spec, e.plugin) for e in methods))
    return out


def anchor(name: str) -> str:
    """The heading id of ``name`` (set with attr_list): lower case, ``+`` spelled ``plus``, only [a-z0-9_-]."""
    return "".join(ch for ch in name.lower().replace("+", "plus") if ch.isalnum() or ch in "-_")
