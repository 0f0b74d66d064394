"""Registers every ``suites/*.yaml`` file of this package as a built-in suite."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import yaml

from xaibench import hookimpl
from xaibench.contract.specs import SuiteSource

SUITE_DIR = Path(__file__).parent / "suites"
#: libyaml's safe loader where PyYAML was built with it: every command reads these files.
_FAST_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@hookimpl
def xaibench_register_suites(register: Callable[[SuiteSource], None]) -> None:
    """Registers this plugin's built-in suites (the YAML files under ``suites/``) with ``register`` (the ``xaibench_register_suites`` hook), importing no torch."""
    for path in sorted(SUITE_DIR.glob("*.yaml")):
        head = yaml.load(path.read_text(encoding="utf-8"), Loader=_FAST_LOADER) or {}
        register(SuiteSource(name=path.stem, path=str(path), description=str(head.get("description", ""))))
