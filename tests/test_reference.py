"""The metric and method reference (xaibench.authoring.reference): complete for every registered spec, true to the specs.

The docs site renders these pages from the registry at build time (tools/mkdocs_reference.py), so
what is checked here is the renderer and the fields it reads; tests/test_docs_site.py builds the site.
"""
from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest

from xaibench.authoring import reference
from xaibench.contract.plugins import load_harness
from xaibench.contract.specs import METRIC_CATEGORIES

ROOT = Path(__file__).resolve().parents[1]
HARNESS = load_harness()
#: ``tests/<file>.py::<test>`` as a spec's ``checked_against`` names a test (a parametrized id may follow).
TEST_REF = re.compile(r"(tests/[\w/]+\.py)::(\w+)")


def test_every_registered_metric_and_method_has_every_reference_field() -> None:
    assert not HARNESS.broken, HARNESS.broken
    assert reference.problems(HARNESS) == []


def test_every_test_a_built_in_spec_names_exists() -> None:
    """``checked_against`` names real tests: each ``tests/x.py::name`` is a function defined in that file."""
    named, missing = 0, []
    for registry in (HARNESS.metrics, HARNESS.methods):
        for entry in registry:
            refs = TEST_REF.findall(entry.spec.checked_against)
            assert refs, f"{entry.spec.name}: checked_against names no test ({entry.spec.checked_against!r})"
            for path, name in refs:
                named += 1
                source = ROOT / path
                if not source.exists() or not re.search(rf"^def {name}\(", source.read_text(encoding="utf-8"), re.MULTILINE):
                    missing.append(f"{entry.spec.name}: {path}::{name}")
    assert not missing, "checked_against names tests that do not exist:\n" + "\n".join(missing)
    assert named >= len(HARNESS.metrics) + len(HARNESS.methods)


def test_a_missing_field_is_named() -> None:
    spec = HARNESS.metrics.get("hit-rate")
    broken = replace(spec, formula="", checked_against=" ", undefined="", bounds=(None, None))
    assert reference.metric_problems(broken) == [
        "metric 'hit-rate' has no formula", "metric 'hit-rate' has no checked_against",
        "metric 'hit-rate' has no undefined",
        "metric 'hit-rate' declares no bounds (the range its per-sample scores cannot leave)"]
    method = HARNESS.methods.get("gradcam")
    assert reference.method_problems(replace(method, citation="", checked_against="")) == [
        "method 'gradcam' has no checked_against", "method 'gradcam' has no citation"]
    baseline = HARNESS.methods.get("random")
    assert reference.method_problems(replace(baseline, checked_against="x")) == []  # a baseline cites no paper


def test_one_page_per_category_and_one_section_per_metric() -> None:
    pages = reference.pages(HARNESS)
    categories = {e.spec.category for e in HARNESS.metrics}
    assert set(pages) == {f"metrics/{c}.md" for c in categories} | {"methods.md"}
    assert categories <= set(METRIC_CATEGORIES)
    for entry in HARNESS.metrics:
        page = pages[f"metrics/{entry.spec.category}.md"]
        assert page.count(f"### `{entry.spec.name}` {{ #") == 1, entry.spec.name
    for entry in HARNESS.methods:
        assert pages["methods.md"].count(f"### `{entry.spec.name}` {{ #") == 1, entry.spec.name


def _section(page: str, name: str) -> str:
    return page.split(f"### `{name}` ", 1)[1].split("\n### ", 1)[0]


def test_a_metric_section_is_its_spec_field_by_field() -> None:
    """hit-rate's whole section, written out from its spec; its chance level is unknown at the default tolerance."""
    spec = HARNESS.metrics.get("hit-rate")
    expected = f"""### `hit-rate` {{ #hit-rate }}

{spec.description}.

- Definition: `` {spec.formula} ``
- Direction: higher is better
- Range: [0, 1]
- NaN (undefined) when: {spec.undefined}
- Parameters (defaults; a suite overrides them under `params:`):

    - `tolerance`: `15.0`
    - `reference_size`: `224`

- Chance level (default parameters): not known in closed form at these parameters
- The annotated mask as a map scores: 1 on every sample with a non-empty mask
- Needs: the maps; masks or bounding boxes
- Inputs: image, signal, volume
- Source: {spec.citation}
- Checked against: {spec.checked_against}
- Registered by: `metrics` (version 1)
"""
    assert reference.metric_section(spec, "metrics") == expected
    assert expected in reference.pages(HARNESS)["metrics/localization.md"]


def _lines(page: str, name: str) -> list[str]:
    return _section(page, name).splitlines()


def test_chance_level_parameters_needs_and_unbounded_ranges_are_rendered() -> None:
    pages = reference.pages(HARNESS)
    mass = _lines(pages["metrics/localization.md"], "relevance-mass")
    assert ("- Chance level (default parameters): the mask's area fraction (a uniformly random map, in expectation; "
            "Arras et al. 2022, Sec. 4)") in mass
    both = replace(HARNESS.metrics.get("iou"), requires_additive=True, requires_region=True)
    assert ("- Needs: the maps; masks; graded region maps; a method declaring additive attributions (others: not "
            "applicable)"
            in reference.metric_section(both, "metrics").splitlines())
    method = replace(HARNESS.methods.get("gradcam"), needs=frozenset({"masks"}), requires_model=frozenset({"branch"}))
    assert "- Needs: masks, a model providing branch" in reference.method_section(method, "gradcam").splitlines()
    assert "- Needs: the maps; masks or bounding boxes" in mass
    assert "- Needs: the maps; masks" in _lines(pages["metrics/localization.md"], "iou")
    lipschitz = _lines(pages["metrics/robustness.md"], "local-lipschitz")
    assert "- Range: [0, +inf]" in lipschitz and "- Direction: lower is better" in lipschitz
    assert "- Inputs: image, signal" in lipschitz and "- Needs: the model; the maps; the method that made the maps, to run it again (from Python: `method=`)" in lipschitz
    road = _lines(pages["metrics/faithfulness.md"], "road-morf")
    assert "    - `fractions`: `[0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]`" in road
    assert ("- Needs: the model; the maps; a method declaring additive attributions (others: not applicable); the "
            "training inputs' per-channel mean where a parameter names `mean` (from Python: `data_mean=`)") in _lines(
        pages["metrics/faithfulness.md"], "completeness-error")
    correlation = _section(pages["metrics/faithfulness.md"], "faithfulness-correlation")
    assert "over `runs` random sets" in correlation.split("- Definition: `` ", 1)[1].split(" ``", 1)[0]
    graded = _lines(pages["metrics/localization.md"], "graded-hit-rate")
    assert "- Range: [-inf, 1]" in graded and "- Parameters: none." in graded and "- Needs: the maps; graded region maps" in graded


def test_a_page_starts_with_its_title_the_notation_and_links_to_every_section() -> None:
    pages = reference.pages(HARNESS)
    names = sorted(e.spec.name for e in HARNESS.metrics if e.spec.category == "complexity")
    links = ", ".join(f"[`{n}`](#{n})" for n in names)
    assert reference.NOTATION.startswith("Notation: `x` is the input `(C, *spatial)` with `P` pixels")
    assert pages["metrics/complexity.md"].startswith(
        "# Complexity metrics\n\n<!-- generated from the registry by xaibench.authoring.reference; do not edit -->\n\n"
        f"{reference.NOTATION}\n{len(names)} metrics: {links}.\n\n### `{names[0]}` {{ #{names[0]} }}\n\n")
    methods = sorted(e.spec.name for e in HARNESS.methods)
    assert pages["methods.md"].startswith(
        "# Methods\n\n<!-- generated from the registry by xaibench.authoring.reference; do not edit -->\n\n"
        "A method maps `(N, C, *spatial)` inputs and target classes to `(N, *spatial)` float32 maps. "
        "Parameters go under `params:` in a suite's method entry.\n\n"
        + ", ".join(f"[`{n}`](#{reference.anchor(n)})" for n in methods) + f".\n\n### `{methods[0]}` {{ #")


def test_a_method_section_is_its_spec_field_by_field() -> None:
    spec = HARNESS.methods.get("gradcam")
    assert reference.method_section(spec, "gradcam") == f"""### `gradcam` {{ #gradcam }}

{spec.description}.

- Inputs: image, signal, volume
- Traits: needs gradients; takes a target layer
- Models covered: every model
- Needs: the model and the batch only
- Parameters: none.
- Source: {spec.citation}
- Checked against: {spec.checked_against}
- Registered by: `gradcam` (version 1)
""".replace("- Models covered: every model\n- Needs: the model and the batch only",
            "- Needs: the model and the batch only\n- Models covered: every model")
    covered = reference.method_section(replace(spec, covers=lambda model: None), "gradcam").splitlines()
    assert ("- Models covered: those its `covers(model)` accepts; cells on other models are not applicable, with its "
            "reason") in covered


def test_method_traits_needs_baselines_and_parameters() -> None:
    page = reference.pages(HARNESS)["methods.md"]
    occlusion = _lines(page, "occlusion")
    for line in ("- Traits: additive attributions (scored by completeness, sensitivity-n, infidelity)",
                 "    - `window`: `8`", "    - `stride`: `null`", "    - `per_pixel`: `true`",
                 f"- Checked against: {HARNESS.methods.get('occlusion').checked_against}"):
        assert line in occlusion, line
    assert "- Traits: calibration baseline: chance level" in _lines(page, "random")
    assert "- Traits: calibration baseline: centre bias" in _lines(page, "centre")
    truth = _lines(page, "ground-truth")
    assert "- Traits: calibration baseline: the oracle (the mask)" in truth and "- Needs: masks" in truth
    assert "- Source: none (a calibration baseline of this harness)" in truth
    supervised = _lines(page, "supervised-saliency")
    assert "- Traits: none" in supervised and "- Needs: a model providing saliency-branch" in supervised
    assert f"- Source: {HARNESS.methods.get('supervised-saliency').citation}" in supervised
    anchors = re.findall(r"\{ #([\w-]+) \}", page)
    assert len(anchors) == len(set(anchors)) == len(HARNESS.methods)
    assert reference.anchor("gradcam++") == "gradcamplusplus" != reference.anchor("gradcam")
    assert reference.anchor("hit-rate") == "hit-rate" and reference.anchor("My_Metric 2") == "my_metric2"


@pytest.mark.parametrize("value, text", [(True, "true"), (False, "false"), (None, "null"), (0.05, "0.05"), ((0.1, 0.2), "[0.1, 0.2]"),
                                         ({"type": "smoothgrad", "samples": 4}, "{type: smoothgrad, samples: 4}"),
                                         (frozenset({"b", "a"}), "[a, b]"), ("mean", "mean")])
def test_parameter_values_are_written_as_a_suite_writes_them(value: object, text: str) -> None:
    assert reference.yaml_value(value) == text
