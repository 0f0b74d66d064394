"""Plugin callables named by import path and imported at their first call: instant start.

A spec carries the function that does the work (``MethodSpec.explain``, ``MetricSpec.score``,
``DatasetSpec.load``, ``ModelSpec.build`` ...). Importing that function imports torch and
whatever else its module needs (about 2 s here), so registering every built-in plugin would
cost every command, ``xaibench plugins`` and ``xaibench --help`` included, the import of
torch. :func:`lazy` names the function instead (``"package.module:function"``); it is
imported when first called, or when something reads its signature (:func:`inspect.signature`
follows ``__wrapped__``), so the runner's parameter checks see the real function.
"""
from __future__ import annotations

import importlib
from typing import Any, Callable


class Lazy:
    """A callable standing for ``module:attribute`` (called with ``args`` when given), imported on first use.

    Two ``Lazy`` objects are equal when they name the same target with the same arguments; a
    ``Lazy`` pickles as its name, so it travels to worker processes without importing anything.
    Raises ``ImportError``/``AttributeError`` at first use when the target does not exist.
    """

    __slots__ = ("target", "args", "_resolved")

    def __init__(self, target: str, args: tuple[Any, ...] = ()) -> None:
        module, sep, attribute = target.partition(":")
        if not (sep and module and attribute):
            raise ValueError(f"a lazy target is 'package.module:attribute', got {target!r}")
        self.target = target
        self.args = args
        self._resolved: Callable[..., Any] | None = None

    def resolve(self) -> Callable[..., Any]:
        """The named function: ``module.attribute``, or ``module.attribute(*args)`` when ``args`` were given."""
        if self._resolved is None:
            module, _, attribute = self.target.partition(":")
            found: Any = importlib.import_module(module)
            for part in attribute.split("."):
                found = getattr(found, part)
            self._resolved = found(*self.args) if self.args else found
        return self._resolved

    @property
    def loaded(self) -> bool:
        """The target has been imported (by a call, :meth:`resolve` or a signature lookup)."""
        return self._resolved is not None

    @property
    def __wrapped__(self) -> Callable[..., Any]:
        """The named function (:func:`inspect.signature` and :func:`inspect.unwrap` follow it)."""
        return self.resolve()

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Call the named function (importing it first if needed) with these arguments."""
        return self.resolve()(*args, **kwargs)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Lazy) and (self.target, self.args) == (other.target, other.args)

    def __hash__(self) -> int:
        return hash((self.target, self.args))

    def __repr__(self) -> str:
        return f"lazy({self.target!r}{''.join(f', {a!r}' for a in self.args)})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (Lazy, (self.target, self.args))


def lazy(target: str, *args: Any) -> Lazy:
    """The function ``target`` (``"package.module:function"``), imported at its first call.

    With ``args`` the target is a factory and the callable is ``function(*args)``, built at first
    use (``lazy("xaibench_models.zoo:resnet", 18)`` stands for ``zoo.resnet(18)``).
    """
    return Lazy(target, tuple(args))


def resolved(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` itself, or the function a :class:`Lazy` stands for (imported now)."""
    return fn.resolve() if isinstance(fn, Lazy) else fn
