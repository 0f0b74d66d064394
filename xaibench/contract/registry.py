"""Name -> spec lookups for one kind of plugin, with clear errors on misuse."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, Iterator, TypeVar

from xaibench.base.errors import DuplicateNameError, UnknownNameError, did_you_mean

S = TypeVar("S")


@dataclass(frozen=True)
class Registration(Generic[S]):
    """A registered spec and the plugin that registered it (its entry-point name, or the in-process name)."""

    spec: S
    plugin: str


class Registry(Generic[S]):
    """Specs of one kind, by name. Names are unique across all plugins."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Registration[S]] = {}

    def add(self, spec: S, plugin: str) -> None:
        """Register ``spec`` (any object with a non-empty ``name``) on behalf of ``plugin``.

        Raises :class:`~xaibench.base.errors.DuplicateNameError` when the name is missing or already registered.
        """
        name = getattr(spec, "name")
        if not isinstance(name, str) or not name:
            raise DuplicateNameError(f"plugin {plugin!r} registered a {self.kind[:-1]} without a name")
        if name in self._entries:
            first = self._entries[name].plugin
            raise DuplicateNameError(
                f"{self.kind[:-1]} {name!r} is registered twice: by plugin {first!r} and by plugin "
                f"{plugin!r}; disable one with XAIBENCH_DISABLE_PLUGINS={plugin}"
            )
        self._entries[name] = Registration(spec, plugin)

    def get(self, name: str) -> S:
        """The spec registered as ``name``; raises :class:`~xaibench.base.errors.UnknownNameError` otherwise."""
        return self.entry(name).spec

    def entry(self, name: str) -> Registration[S]:
        """The :class:`Registration` (spec and plugin) of ``name``; raises ``UnknownNameError`` otherwise."""
        try:
            return self._entries[name]
        except KeyError:
            known = ", ".join(sorted(self._entries)) or "none"
            raise UnknownNameError(
                f"unknown {self.kind[:-1]} {name!r}{did_you_mean(name, self._entries)}; known: {known}"
            ) from None

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[Registration[S]]:
        return iter(sorted(self._entries.values(), key=lambda e: getattr(e.spec, "name")))

    def __len__(self) -> int:
        return len(self._entries)

    def names(self) -> list[str]:
        """Every registered name, sorted."""
        return sorted(self._entries)
