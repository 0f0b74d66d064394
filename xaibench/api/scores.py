"""What :func:`xaibench.api.score` returns: per-sample scores with their means, CIs and views."""
from __future__ import annotations

import dataclasses
import html
import math
from typing import TYPE_CHECKING, Any

from xaibench.base.errors import XaibenchError, did_you_mean
from xaibench.api.user_inputs import pandas_module

if TYPE_CHECKING:
    import numpy as np



# -- score ---------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Scores:
    """Per-sample scores of :func:`score`: ``values[metric]`` is ``(N,)`` float64 in the metric's units.

    NaN marks a sample where the metric is undefined (an empty mask for a hit rate) or whose
    map is constant (it carries no information; counted in ``constant_maps``), as in a suite's
    cells. ``summary[metric]`` is ``(mean, ci_low, ci_high, n)``: the mean over the ``n``
    defined samples and its 95% percentile bootstrap CI (:func:`xaibench.scoring.stats.summarize`,
    seeded as the runner seeds it, over the samples sorted by id: the same samples in another
    order give the same summary). ``ids[i]`` names the sample of ``values[metric][i]``.
    """

    ids: tuple[str, ...]
    values: dict[str, np.ndarray]
    summary: dict[str, tuple[float, float, float, int]]
    constant_maps: dict[str, int]
    #: metric -> True where higher is better.
    higher_is_better: dict[str, bool]

    def __getitem__(self, metric: str) -> np.ndarray:
        """The ``(N,)`` scores of ``metric``."""
        try:
            return self.values[metric]
        except KeyError:
            raise XaibenchError(f"no scores for {metric!r}{did_you_mean(metric, self.values)}; scored: "
                                f"{', '.join(self.values)}") from None

    def mean(self, metric: str) -> float:
        """The mean of ``metric`` over its defined samples (NaN when none is defined)."""
        return self.summary[metric][0]

    def to_dict(self) -> dict[str, Any]:
        """Plain Python: ``{"ids": [...], "scores": {metric: [float | None, ...]}, "summary": {metric: {mean,
        ci_low, ci_high, n, constant_maps, higher_is_better}}}`` with None for NaN (JSON-ready)."""
        def num(v: float) -> float | None:
            return None if math.isnan(v) else float(v)

        return {"ids": list(self.ids),
                "scores": {m: [num(v) for v in vals] for m, vals in self.values.items()},
                "summary": {m: {"mean": num(s[0]), "ci_low": num(s[1]), "ci_high": num(s[2]), "n": s[3],
                                "constant_maps": self.constant_maps[m], "higher_is_better": self.higher_is_better[m]}
                            for m, s in self.summary.items()}}

    def to_pandas(self) -> Any:
        """A tidy ``pandas.DataFrame``: one row per sample x metric, columns ``id``, ``metric``, ``score``
        (NaN where undefined). Raises :class:`XaibenchError` naming the extra when pandas is missing."""
        pd = pandas_module()
        rows = [(sid, m, float(v)) for m, vals in self.values.items() for sid, v in zip(self.ids, vals)]
        return pd.DataFrame(rows, columns=["id", "metric", "score"])

    def _repr_html_(self) -> str:
        head = "<tr><th>metric</th><th>mean</th><th>95% CI</th><th>n</th></tr>"
        body = "".join(f"<tr><td>{html.escape(m)} {'↑' if self.higher_is_better[m] else '↓'}</td><td>{s[0]:.4g}</td>"
                       f"<td>{s[1]:.4g} – {s[2]:.4g}</td><td>{s[3]}/{len(self.ids)}</td></tr>"
                       for m, s in self.summary.items())
        return f"<table>{head}{body}</table>"

    def __repr__(self) -> str:
        """One line per metric: ``name ↑ mean [95% CI low, high] n=defined/N`` (``–`` where undefined)."""
        def num(v: float) -> str:
            return "–" if math.isnan(v) else f"{v:.4g}"

        lines = [f"  {m} {'↑' if self.higher_is_better[m] else '↓'}  {num(s[0])} [95% CI {num(s[1])}, {num(s[2])}]"
                 f"  n={s[3]}/{len(self.ids)}" for m, s in self.summary.items()]
        return "\n".join([f"Scores of {len(self.ids)} samples (mean [95% bootstrap CI] n defined):", *lines])
