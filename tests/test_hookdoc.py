"""The hook reference: every hook documented, signatures as documented, docs/hooks.md current."""
from __future__ import annotations

import types
from pathlib import Path
from typing import Callable

import pluggy
import pytest

from xaibench.authoring import hookdoc

from xaibench.contract import hookspecs
from xaibench.api.cli import main
from xaibench.base.errors import XaibenchError

DOCS = Path(__file__).resolve().parents[1] / "docs" / "hooks.md"
fake_spec = pluggy.HookspecMarker("fake")


def fake_module(*funcs: Callable[..., None]) -> types.ModuleType:
    module = types.ModuleType("fake_hookspecs", "Fake hooks.")
    module.PROJECT = "fake"  # type: ignore[attr-defined]
    for func in funcs:
        setattr(module, func.__name__, fake_spec(func))
    return module


def test_every_real_hook_is_documented_with_its_signature() -> None:
    assert hookdoc.problems() == []
    names = [f.__name__ for f in hookdoc.hook_functions()]
    assert names == list(hookspecs.HOOK_KINDS), "a hookspec is missing from HOOK_KINDS or the other way round"


def test_committed_reference_is_what_the_code_renders() -> None:
    assert DOCS.exists(), "docs/hooks.md is missing: run `xaibench hooks > docs/hooks.md`"
    assert DOCS.read_text(encoding="utf-8") == hookdoc.render(), (
        "docs/hooks.md is stale: regenerate it with `xaibench hooks > docs/hooks.md`")


def test_reference_shows_each_hook_its_parameters_and_its_spec_fields() -> None:
    text = hookdoc.render()
    for func in hookdoc.hook_functions():
        assert f"## `{func.__name__}`" in text
        assert f"def {func.__name__}(register: Callable[[" in text
    assert "| `explain` | `Callable[..., torch.Tensor]` | required |" in text
    assert "```toml\n[project.entry-points.xaibench]" in text  # the module docstring's :: block, fenced
    assert "frozenset({'image', 'signal'})" in text  # set defaults in a stable order, not hash order


def test_undocumented_hook_is_reported() -> None:
    def fake_register_things(register):  # type: ignore[no-untyped-def]
        pass

    assert hookdoc.problems(fake_module(fake_register_things)) == [
        "hook fake_register_things is undocumented: give it a docstring with a :param: field per parameter"]


def test_documented_parameters_must_match_the_signature() -> None:
    def fake_misnamed(register, extra):  # type: ignore[no-untyped-def]
        """Register things.

        :param regster: the callback.
        :param extra: more.
        """

    def fake_unlisted(register):  # type: ignore[no-untyped-def]
        """Register things, without saying what register is."""

    def fake_empty(register):  # type: ignore[no-untyped-def]
        """Register things.

        :param register:
        """

    found = hookdoc.problems(fake_module(fake_misnamed, fake_unlisted, fake_empty))
    assert found == [
        "hook fake_misnamed documents parameters (regster, extra) but its signature has (register, extra)",
        "hook fake_unlisted documents parameters (none) but its signature has (register)",
        "hook fake_empty: parameter 'register' has an empty description",
    ]
    with pytest.raises(XaibenchError, match="cannot render the hook reference: hook fake_misnamed"):
        hookdoc.render(fake_module(fake_misnamed))


def test_cli_prints_and_checks_the_reference(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["hooks"]) == 0
    assert capsys.readouterr().out == hookdoc.render()
    current = tmp_path / "hooks.md"
    current.write_text(hookdoc.render(), encoding="utf-8")
    assert main(["hooks", "--check", str(current)]) == 0
    current.write_text(hookdoc.render().replace("Register saliency methods.", "Register methods."), encoding="utf-8")
    assert main(["hooks", "--check", str(current)]) == 1
    assert "is stale: regenerate it with `xaibench hooks >" in capsys.readouterr().err
