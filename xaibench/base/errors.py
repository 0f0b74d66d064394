"""User-facing errors.

Anything a user can cause (a typo in a suite, a missing dataset, a bad checkpoint)
raises a subclass of :class:`XaibenchError`; the CLI prints its message without a
traceback. Everything else is a bug and keeps its traceback.
"""
from __future__ import annotations

import difflib
from typing import Iterable


class XaibenchError(Exception):
    """An error the user can fix; its message says how."""


class UnknownNameError(XaibenchError, KeyError):
    """A dataset, model, method, metric or suite name that no loaded plugin registered.

    The message lists the known names and the close matches ("did you mean").
    """

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class DuplicateNameError(XaibenchError):
    """Two plugins registered the same name for one kind, or a spec has no name; the message names the plugins."""


class SuiteError(XaibenchError):
    """A suite file that cannot be used (malformed YAML, an unknown key or name, a bad value).

    The message starts with ``file:line`` of the offending entry.
    """


class PlanError(XaibenchError):
    """A suite whose plan is wrong as a whole (a combination no cell can run); raised before anything is computed."""


class PublishError(XaibenchError):
    """Writing a run's leaderboard or figures failed after every cell was stored; the message names the stage,
    the cause and the ``xaibench leaderboard`` command that writes the board once the cause is fixed."""


class CellError(Exception):
    """A plugin misbehaved inside one cell: recorded as that cell's failure."""


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'x' or 'y'?)`` for close matches, else an empty string."""
    close = difflib.get_close_matches(name, sorted(choices), n=3, cutoff=0.6)
    if not close:
        return ""
    return " (did you mean " + " or ".join(repr(c) for c in close) + "?)"
