"""mkdocs hook: the metric and method reference pages, rendered from the installed plugins at build time.

``mkdocs.yml`` names this file under ``hooks:``. On every build it loads the plugins
(:func:`xaibench.contract.plugins.load_harness`) and adds the pages of :func:`xaibench.authoring.reference.pages`
under ``reference/``, so the reference is the registry of the build's environment and
cannot drift from the code. A plugin that fails to load, or a metric or method lacking a
reference field (:func:`xaibench.authoring.reference.problems`), fails the build with its reason.
"""
from __future__ import annotations

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File, Files

from xaibench.authoring import reference
from xaibench.contract.plugins import load_harness


def on_files(files: Files, config: MkDocsConfig) -> Files:
    """Add ``reference/metrics/<category>.md`` and ``reference/methods.md`` to the site's files."""
    harness = load_harness()
    if harness.broken:
        raise PluginError("plugins failed to load, so the reference would miss them: "
                          + "; ".join(f"{name}: {why}" for name, why in sorted(harness.broken.items())))
    missing = reference.problems(harness)
    if missing:
        raise PluginError("the reference needs these fields: " + "; ".join(missing))
    for path, text in reference.pages(harness).items():
        files.append(File.generated(config, f"reference/{path}", content=text))
    return files
