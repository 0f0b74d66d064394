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
    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class DuplicateNameError(XaibenchError):
    pass


class SuiteError(XaibenchError):
    pass


class PlanError(XaibenchError):
    pass


class CellError(Exception):
    """A plugin misbehaved inside one cell: recorded as that cell's failure."""


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'x' or 'y'?)`` for close matches, else an empty string."""
    close = difflib.get_close_matches(name, sorted(choices), n=3, cutoff=0.6)
    if not close:
        return ""
    return " (did you mean " + " or ".join(repr(c) for c in close) + "?)"
