"""The metric applicability page is what the registry renders; the issue-35 metrics carry their metadata."""
from __future__ import annotations

import inspect
import sys
from pathlib import Path

from xaibench.authoring import applicability
from xaibench.contract.plugins import load_harness

DOCS = Path(__file__).resolve().parents[1] / "docs" / "metric-applicability.md"
#: Issue 35: the metrics of Quantus 0.6 that were missing, and the 2026 additions.
ISSUE_35 = ("faithfulness-estimate", "monotonicity-arya", "monotonicity-correlation", "region-perturbation-morf",
            "region-perturbation-lerf", "selectivity", "sufficiency", "auc", "top-k-intersection", "focus",
            "continuity", "non-sensitivity", "input-invariance", "effective-complexity", "arcc", "mst-c")


def test_committed_page_is_what_the_registry_renders() -> None:
    assert DOCS.read_text(encoding="utf-8") == applicability.render(), (
        "docs/metric-applicability.md is stale: python -m xaibench.authoring.applicability > docs/metric-applicability.md")


def test_every_issue_35_metric_is_registered_with_its_definition_and_its_check() -> None:
    h = load_harness()
    for name in ISSUE_35:
        spec = h.metrics.get(name)
        assert spec.formula and spec.checked_against and spec.citation and spec.description, name
        assert spec.bounds != (None, None), name
        test_file, _, test_name = spec.checked_against.rpartition("tests/")[2].partition("::")
        test_name = test_name.split(";")[0].split()[0]
        source = (Path(__file__).resolve().parent / test_file).read_text(encoding="utf-8")
        assert f"def {test_name}(" in source, f"{name}: checked_against names a test that does not exist"
        score = inspect.unwrap(spec.score)
        docs = (score.__doc__ or "") + (sys.modules[score.__module__].__doc__ or "")
        assert spec.citation.split()[0].rstrip(",") in docs, f"{name}: the paper is not cited with the code"


def test_the_page_shows_the_rules_of_the_new_metrics() -> None:
    page = applicability.render()
    assert "| `input-invariance` | ↑ | [0, 1] | any map | – | re-explains, copy | image, signal |" in page
    assert "| `top-k-intersection` | ↑ | [0, 1] | any map | masks | none | image, signal, volume | chance: mask-fraction |" \
        in page
    assert "| `focus` | ↑ | [0, 1] | any map | – | re-explains | image |" in page
    assert "| `completeness-error` | ↓ | [0, ∞] | additive |" in page
