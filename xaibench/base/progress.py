"""What a long command prints while it works: cell progress, training epochs, named steps.

On a terminal the cells get a tqdm bar, and in a Jupyter kernel a notebook widget
(``tqdm.auto``); when stderr is neither (CI logs, a redirected run) the same progress comes as plain lines, at most one every
:data:`LOG_EVERY` seconds and at each tenth of the cells, so a log file holds no bar
frames. Training is reported per epoch (loss and validation accuracy) and happens
before the cell bar starts, so the bar's rate and ETA count cell work only. The first
cell also pays one-off costs (a group's saliency maps, JIT compilation, calibrating the
batch size), so no ETA is shown until a rate is measured after it: :class:`Rate`.
"""
from __future__ import annotations

import sys
import time
import warnings
from typing import Callable, TextIO

from tqdm import TqdmWarning

with warnings.catch_warnings():  # Jupyter without ipywidgets: tqdm.auto draws a text bar, without a warning
    warnings.simplefilter("ignore", TqdmWarning)
    from tqdm.auto import tqdm

#: Seconds between two plain progress lines (non-terminal output).
LOG_EVERY = 30.0


def interactive(stream: TextIO | None = None) -> bool:
    """True when ``stream`` (default: stderr) is a terminal."""
    stream = sys.stderr if stream is None else stream
    return bool(getattr(stream, "isatty", lambda: False)())


def notebook() -> bool:
    """True inside a Jupyter kernel (IPython with a kernel app), where ``tqdm.auto`` draws a widget."""
    if "ipykernel" not in sys.modules or "IPython" not in sys.modules:
        return False
    shell = sys.modules["IPython"].get_ipython()
    return shell is not None and "IPKernelApp" in getattr(shell, "config", {})


def say(message: str) -> None:
    """One line on stdout that does not break a running bar."""
    tqdm.write(message, file=sys.stdout)
    sys.stdout.flush()


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class Rate:
    """The rate worth extrapolating: units per second counted from the first completed unit on.

    The first unit's time holds one-off costs, so an ETA from it (one slow cell of 200 reads "ETA 3:28:58")
    says nothing; :meth:`eta` is None until a later unit has completed.
    """

    def __init__(self) -> None:
        self.first: tuple[int, float] | None = None

    def seen(self, n: int, now: float) -> None:
        """Record that ``n`` units have completed by ``now`` (seconds on any monotonic clock)."""
        if self.first is None and n > 0:
            self.first = (n, now)

    def per_second(self, n: int, now: float) -> float | None:
        """Units per second since the first completed unit; None until a later one has completed."""
        if self.first is None or n <= self.first[0] or now <= self.first[1]:
            return None
        return (n - self.first[0]) / (now - self.first[1])

    def eta(self, n: int, total: int, now: float) -> float | None:
        """Seconds until ``total`` units at the measured rate; None while no rate is measured."""
        rate = self.per_second(n, now)
        return None if rate is None else (total - n) / rate


class Bar(tqdm):
    """tqdm's bar (a notebook widget in Jupyter) whose rate and ETA come from :class:`Rate`: none before
    a unit after the first has completed."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        self.measured = Rate()
        super().__init__(*args, **kwargs)

    def update(self, n: float | None = 1) -> bool | None:
        """tqdm's update, recording when the first unit completed."""
        self.measured.seen(int(self.n + (n or 0)), time.monotonic())
        return super().update(n)

    @property
    def format_dict(self) -> dict[str, object]:
        """tqdm's fields with the measured rate; the bar's format without the ETA while there is none."""
        d = dict(super().format_dict)
        rate = self.measured.per_second(int(self.n), time.monotonic())
        if rate is None:
            d["bar_format"] = "{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}{postfix}]"
        else:
            d["rate"] = rate
        return d


class PlainProgress:
    """tqdm's ``update``/``close`` as plain lines: ``name: 12/112 cells (11%), 0:00:40 elapsed, ETA 0:05:33``."""

    def __init__(self, total: int, desc: str, stream: TextIO | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.total, self.desc, self.n = total, desc, 0
        self.stream = sys.stderr if stream is None else stream
        self.clock = clock
        self.start = self.last = clock()
        self.rate = Rate()
        self.step = max(1, total // 10)

    def update(self, n: int = 1) -> None:
        """Count ``n`` more finished cells; print a line every tenth of the total or every ``LOG_EVERY`` s."""
        before, self.n = self.n, self.n + n
        now = self.clock()
        self.rate.seen(self.n, now)
        if self.n >= self.total or self.n // self.step > before // self.step or now - self.last >= LOG_EVERY:
            self.last = now
            elapsed = now - self.start
            eta = self.rate.eta(self.n, self.total, now)
            pct = 100 * self.n // max(self.total, 1)
            print(f"{self.desc}: {self.n}/{self.total} cells ({pct}%), {_clock(elapsed)} elapsed"
                  + ("" if self.n >= self.total or eta is None else f", ETA {_clock(eta)}"), file=self.stream, flush=True)

    def close(self) -> None:
        """Nothing to close (tqdm's interface): the last line was printed by the final ``update``."""


def cells(total: int, desc: str, enabled: bool) -> Bar | PlainProgress:
    """A progress counter over ``total`` cells: a bar on a terminal or in a notebook, plain lines otherwise."""
    if enabled and not interactive() and not notebook():
        return PlainProgress(total, desc)
    return Bar(total=total, desc=desc, unit="cell", disable=not enabled)


def epochs(what: str, score: str = "accuracy") -> Callable[[int, int, float, float], None]:
    """An ``on_epoch(epoch, epochs, loss, val_score)`` callback for :func:`xaibench.models.training.train`
    that prints ``  <what>: epoch 3/15, loss 0.412, validation accuracy 0.867 (4.1 s)`` (``score``: what the
    validation score is, "Dice" for a segmenter)."""
    start = time.monotonic()

    def report(epoch: int, total: int, loss: float, accuracy: float) -> None:
        say(f"  {what}: epoch {epoch}/{total}, loss {loss:.3f}, validation {score} {accuracy:.3f} "
            f"({time.monotonic() - start:.1f} s)")

    return report
