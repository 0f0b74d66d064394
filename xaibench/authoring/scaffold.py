"""``xaibench new method|metric|dataset NAME``: a ready-to-install plugin package.

Why a generator: a contributor's first plugin fails on packaging details (the
entry-point group, the ``src`` layout, the hook's name), not on the method. The
generated package gets those right, carries a working implementation to edit
(gradient x input, a region-perturbation metric, a generated bar-image dataset)
and a test suite that checks the plugin's contract, so it passes as generated
and keeps checking once the contributor replaces the implementation.

Templates live in ``xaibench/authoring/templates/<kind>/`` (package data) with ``{{field}}``
placeholders: ``common/`` holds what every kind shares.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from xaibench.base.errors import XaibenchError
from xaibench.base.version import __version__

KINDS = ("method", "metric", "dataset")
_NAME = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")
_PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")
_SUMMARIES = {
    "method": "a saliency method (gradient x input to start from)",
    "metric": "a faithfulness metric (one-step region perturbation to start from)",
    "dataset": "a generated image dataset with exact masks (bars to start from)",
}
#: Template file -> where it goes in the package (``{package}`` is filled in).
_LAYOUT = {
    "pyproject.toml.tmpl": "pyproject.toml",
    "README.md.tmpl": "README.md",
    "__init__.py.tmpl": "src/{package}/__init__.py",
    "plugin.py.tmpl": "src/{package}/plugin.py",
    "test_plugin.py.tmpl": "tests/test_plugin.py",
}


@dataclass(frozen=True)
class PluginNames:
    """Every name derived from the plugin's registered name ``my-method``."""

    name: str  # what suites write: my-method
    dist: str  # the distribution: xaibench-my-method
    package: str  # the import package and entry-point name: xaibench_my_method

    @classmethod
    def of(cls, name: str) -> PluginNames:
        """The names derived from ``name``: lowercase words joined by hyphens (a leading ``xaibench-`` is dropped).

        Raises :class:`~xaibench.base.errors.XaibenchError` for any other name.
        """
        if not _NAME.match(name):
            raise XaibenchError(f"plugin name {name!r} must be lowercase words joined by hyphens, "
                                f"starting with a letter (for example 'gradient-x-input')")
        stem = name.removeprefix("xaibench-")
        return cls(name=name, dist=f"xaibench-{stem}", package=f"xaibench_{stem.replace('-', '_')}")


def render(template: str, fields: dict[str, str]) -> str:
    """Fill ``{{field}}`` placeholders; an unknown placeholder is a bug in the template."""
    def fill(match: re.Match[str]) -> str:
        key = match.group(1)
        if key not in fields:
            raise KeyError(f"template placeholder {{{{{key}}}}} has no value")
        return fields[key]

    return _PLACEHOLDER.sub(fill, template)


def new_plugin(kind: str, name: str, directory: Path | str | None = None) -> Path:
    """Write the plugin package for ``kind`` named ``name``; returns its directory.

    ``directory`` defaults to ``./xaibench-NAME``. An existing non-empty directory
    is refused rather than overwritten.
    """
    if kind not in KINDS:
        raise XaibenchError(f"unknown plugin kind {kind!r}; choose one of {', '.join(KINDS)}")
    names = PluginNames.of(name)
    root = Path(directory) if directory is not None else Path.cwd() / names.dist
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise XaibenchError(f"{root} already exists and is not empty; choose another --dir")
    fields = {"name": names.name, "dist": names.dist, "package": names.package, "kind": kind,
              "what": _SUMMARIES[kind], "summary": f"{names.name}: {_SUMMARIES[kind]}",
              "xaibench_version": __version__}
    templates = resources.files("xaibench.authoring") / "templates"
    for source, target in _LAYOUT.items():
        template = templates / kind / source
        if not template.is_file():
            template = templates / "common" / source
        path = root / target.format(package=names.package)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render(template.read_text(encoding="utf-8"), fields), encoding="utf-8")
    return root
