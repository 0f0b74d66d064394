"""The docs site builds with ``mkdocs build --strict``: a broken link, a nav entry without a page, a missing
mkdocstrings target or a metric without its reference fields fails the build, and so this test.

mkdocs, mkdocs-material and mkdocstrings are in the ``test`` extra (and the ``docs`` extra); where they are not
installed the test is skipped, saying so. The build takes about 10 s.
"""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MODULES = ("mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers.python")


def _missing() -> list[str]:
    """The docs tools' modules that cannot be imported here."""
    missing = []
    for name in MODULES:
        try:
            found = importlib.util.find_spec(name) is not None
        except ModuleNotFoundError:  # the parent package is absent
            found = False
        if not found:
            missing.append(name)
    return missing


MISSING = _missing()


@pytest.mark.skipif(bool(MISSING), reason=f"the docs tools are not installed ({', '.join(MISSING)}): "
                                          "pip install -e '.[docs]'")
def test_the_site_builds_strictly_with_the_generated_reference(tmp_path: Path) -> None:
    site = tmp_path / "site"
    out = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
                         check=False, cwd=ROOT, capture_output=True, text=True, timeout=300,
                         env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert out.returncode == 0, out.stdout + out.stderr
    for page in ("getting-started", "reference/metrics/faithfulness", "reference/methods", "api", "hooks"):
        assert (site / page / "index.html").exists(), page
    methods = (site / "reference" / "methods" / "index.html").read_text(encoding="utf-8")
    assert 'id="gradcamplusplus"' in methods and 'id="gradcam"' in methods
    api = (site / "api" / "index.html").read_text(encoding="utf-8")
    assert "MetricSpec" in api and "checked_against" in api  # mkdocstrings rendered the specs' docstrings
