"""The metric and method reference (xaibench.reference): complete for every registered spec, true to the specs.

The docs site renders these pages from the registry at build time (tools/mkdocs_reference.py), so
what is checked here is the renderer and the fields it reads; tests/test_docs_site.py builds the site.
"""
from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest

from xaibench import reference
from xaibench.plugins import load_harness
from xaibench.specs import METRIC_CATEGORIES

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


def test_a_metric_section_shows_each_field_of_its_spec() -> None:
    """hit-rate, field by field from its spec; its chance level is unknown at the default tolerance (15 px)."""
    spec = HARNESS.metrics.get("hit-rate")
    text = _section(reference.pages(HARNESS)["metrics/localization.md"], "hit-rate")
    for line in (f"- Definition: `` {spec.formula} ``", "- Direction: higher is better", "- Range: [0, 1]",
                 f"- NaN (undefined) when: {spec.undefined}", "    - `tolerance`: `15.0`",
                 "    - `reference_size`: `224`", f"- Source: {spec.citation}",
                 f"- Checked against: {spec.checked_against}",
                 "- Chance level (default parameters): not known in closed form at these parameters",
                 "- The annotated mask as a map scores: 1 on every sample with a non-empty mask",
                 "- Needs: masks or bounding boxes", "- Registered by: `metrics` (version 1)"):
        assert line in text.splitlines(), line


def test_chance_level_parameters_and_unbounded_ranges_are_rendered() -> None:
    pages = reference.pages(HARNESS)
    mass = _section(pages["metrics/localization.md"], "relevance-mass")
    assert "- Chance level (default parameters): the mask's area fraction" in mass
    lipschitz = _section(pages["metrics/robustness.md"], "local-lipschitz")
    assert "- Range: [0, +inf]" in lipschitz and "- Direction: lower is better" in lipschitz
    road = _section(pages["metrics/faithfulness.md"], "road-morf")
    assert "    - `fractions`: `[0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]`" in road
    assert "- Needs: a method declaring additive attributions" in _section(pages["metrics/faithfulness.md"],
                                                                            "completeness-error")
    correlation = _section(pages["metrics/faithfulness.md"], "faithfulness-correlation")
    assert "over `runs` random sets" in correlation.split("- Definition: `` ", 1)[1].split(" ``", 1)[0]
    graded = _section(pages["metrics/localization.md"], "graded-hit-rate")
    assert "- Range: [-inf, 1]" in graded and "- Parameters: none." in graded


def test_a_method_section_shows_its_fields_and_anchors_are_unique() -> None:
    page = reference.pages(HARNESS)["methods.md"]
    occlusion = _section(page, "occlusion")
    for line in ("- Traits: additive attributions (scored by completeness, sensitivity-n, infidelity)",
                 "    - `window`: `8`", "    - `stride`: `null`", "    - `per_pixel`: `true`",
                 f"- Checked against: {HARNESS.methods.get('occlusion').checked_against}"):
        assert line in occlusion.splitlines(), line
    assert "calibration baseline: chance level" in _section(page, "random")
    assert "- Needs: a model providing saliency-branch" in _section(page, "supervised-saliency")
    anchors = re.findall(r"\{ #([\w-]+) \}", page)
    assert len(anchors) == len(set(anchors)) == len(HARNESS.methods)
    assert reference.anchor("gradcam++") == "gradcamplusplus" != reference.anchor("gradcam")


@pytest.mark.parametrize("value, text", [(True, "true"), (None, "null"), ((0.1, 0.2), "[0.1, 0.2]"),
                                         ({"type": "smoothgrad", "samples": 4}, "{type: smoothgrad, samples: 4}"),
                                         (frozenset({"b", "a"}), "[a, b]"), ("mean", "mean")])
def test_parameter_values_are_written_as_a_suite_writes_them(value: object, text: str) -> None:
    assert reference.yaml_value(value) == text
