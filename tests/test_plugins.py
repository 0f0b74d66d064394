"""Discovery: entry points, in-process plugins, duplicates, typos, disabling, bad hooks."""
from __future__ import annotations

import pytest

from xaibench import hookimpl
from xaibench.base.errors import DuplicateNameError, UnknownNameError, XaibenchError
from xaibench.contract.plugins import load_harness
from xaibench.contract.specs import MethodSpec


def test_builtin_plugins_are_found_through_entry_points() -> None:
    h = load_harness()
    assert {"datasets", "models", "captum", "gradcam", "baselines", "metrics", "suites"} <= set(h.plugins)
    assert h.plugins["captum"].distribution == "xaibench"
    assert "integrated-gradients" in h.methods and "quick" in h.suites and "medical" in h.suites
    assert h.methods.entry("gradcam").plugin == "gradcam"
    assert not h.broken


def test_throwaway_plugin_registers_every_kind(tiny_plugin) -> None:  # type: ignore[no-untyped-def]
    h = load_harness([("tiny", tiny_plugin)])
    assert h.datasets.entry("tiny").plugin == "tiny"
    assert "tiny-cnn" in h.models and "input-times-one" in h.methods
    assert h.plugins["tiny"].distribution == "(registered in process)"


def test_each_harness_has_its_own_plugin_manager(tiny_plugin) -> None:  # type: ignore[no-untyped-def]
    with_tiny = load_harness([("tiny", tiny_plugin)])
    without = load_harness()
    assert "tiny" in with_tiny.datasets and "tiny" not in without.datasets


def test_duplicate_names_are_refused_naming_both_plugins() -> None:
    class Dup:
        @hookimpl
        def xaibench_register_methods(self, register):  # type: ignore[no-untyped-def]
            register(MethodSpec(name="gradcam", explain=lambda *a: None, modalities=frozenset({"image"}),
                                description="a clash"))

    with pytest.raises(DuplicateNameError) as err:
        load_harness([("dup", Dup())])
    assert "by plugin 'gradcam' and by plugin 'dup'" in str(err.value)


def test_unknown_name_suggests_close_ones() -> None:
    h = load_harness()
    with pytest.raises(UnknownNameError) as err:
        h.methods.get("integrated-gradient")
    assert "did you mean 'integrated-gradients'" in str(err.value)


def test_misspelled_hook_fails_at_load() -> None:
    class Typo:
        @hookimpl
        def xaibench_register_method(self, register):  # type: ignore[no-untyped-def]
            pass

    with pytest.raises(XaibenchError, match="unknown hook"):
        load_harness([("typo", Typo())])


def test_disable_plugins_environment_variable(monkeypatch: pytest.MonkeyPatch, tiny_plugin) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("XAIBENCH_DISABLE_PLUGINS", "gradcam, tiny")
    h = load_harness([("tiny", tiny_plugin)])
    assert "gradcam" not in h.methods and "gradcam" not in h.plugins
    assert "tiny" not in h.datasets
    assert "integrated-gradients" in h.methods


def test_a_hook_that_raises_is_reported_and_others_still_load() -> None:
    class Broken:
        @hookimpl
        def xaibench_register_methods(self, register):  # type: ignore[no-untyped-def]
            raise RuntimeError("boom")

    h = load_harness([("broken", Broken())])
    assert "boom" in h.broken["broken"]
    assert "gradcam" in h.methods


def test_every_hook_is_documented() -> None:
    from xaibench.contract import hookspecs

    for name in hookspecs.HOOK_KINDS:
        doc = getattr(hookspecs, name).__doc__ or ""
        assert ":param register:" in doc, f"{name} lacks a documented register parameter"


def test_hooks_are_called_through_pluggy_one_plugin_at_a_time() -> None:
    """pluggy maps arguments (an implementation may take fewer than the spec's), and each plugin's
    registrations are attributed to it even when another plugin's hook raised before it."""
    calls = []

    class Quiet:
        @hookimpl
        def xaibench_register_methods(self):  # type: ignore[no-untyped-def]
            calls.append("quiet")  # called by pluggy without ``register``: not an error

    class Raises:
        @hookimpl(tryfirst=True)
        def xaibench_register_methods(self, register):  # type: ignore[no-untyped-def]
            raise RuntimeError("first and broken")

    h = load_harness([("quiet", Quiet()), ("raises", Raises())])
    assert calls == ["quiet"] and "quiet" not in h.broken
    assert "first and broken" in h.broken["raises"]
    assert h.methods.entry("gradcam").plugin == "gradcam"
