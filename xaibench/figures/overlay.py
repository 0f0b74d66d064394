"""``xaibench explain``'s figure: one saliency map over one test sample, through the runner's caches."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from xaibench.base.errors import CellError, XaibenchError, did_you_mean
from xaibench.figures.charts import (
    SALIENCY_CMAP,
    draw_overlay,
    figure_format,
    figure_style,
    new_figure,
    save_figure,
    shorten,
)
from xaibench.scoring.segmentation import target_label

if TYPE_CHECKING:  # pragma: no cover
    from xaibench.running.runner import Runner


def _pick(resolved: Sequence, name: str | None, kind: str):  # type: ignore[no-untyped-def,type-arg]
    names = [r.entry.display for r in resolved]
    if name is None:
        return resolved[0]
    if name not in names:
        raise XaibenchError(f"{kind} {name!r} is not in the suite{did_you_mean(name, names)}; "
                            f"its {kind}s: {', '.join(names)}")
    return resolved[names.index(name)]


def explain_overlay(runner: "Runner", method: str, sample_id: str, path: str | Path, dataset: str | None = None,
                    model: str | None = None) -> Path:
    """One map over one test sample (``xaibench explain``), through the runner's caches.

    The model is the suite's (trained and cached on first use), the map is the one
    the run scores (read from the saliency cache, computed and cached if absent),
    for the class the suite explains. ``dataset`` and ``model`` default to the
    suite's first. The figure's format is the one ``path``'s suffix names (PNG, JPEG, PDF, SVG); another
    suffix is refused before anything runs.
    """
    figure_format(path)
    ds = _pick(runner.datasets, dataset, "dataset")
    mo = _pick(runner.models, model, "model")
    me = _pick(runner.methods, method, "method")
    bundle = runner.bundle(ds)
    ids = list(bundle.test.ids)
    if sample_id not in ids:
        raise XaibenchError(f"sample {sample_id!r} is not in the test split of {ds.entry.display!r}"
                            f"{did_you_mean(sample_id, ids)}; its first ids: {', '.join(ids[:5])}")
    sample = bundle.test.subset([ids.index(sample_id)])
    g = runner.group_context(ds, mo, sample)
    logits, target = g.base_logits, g.target
    try:
        maps = runner.cached_maps(g, me)
    except CellError as exc:
        raise XaibenchError(f"method {method!r} failed on {sample_id!r}: {str(exc).splitlines()[0]}") from None
    if g.regions is not None:  # a segmenter: its region target and region score, not a dataset class
        explained = (f"explained {target_label(runner.suite.target)}: " + (
            f"score {float(logits[0, int(target[0])]):.3g}" if g.regions[0].any() else "empty region, map 0"))
    else:
        explained = (f"label {bundle.class_names[int(sample.y[0])]}, explained {bundle.class_names[int(target[0])]} "
                     f"(p={float(g.engine.select(logits, target, 'prob')[0]):.2f})")
    with figure_style():
        import matplotlib

        signal = sample.x.dim() == 3
        fig = new_figure(6.0 if signal else 4.6, 2.8 if signal else 4.4)
        ax = fig.add_subplot()
        mask = None if sample.masks is None else sample.masks[0].numpy()
        draw_overlay(ax, sample.x[0].numpy(), maps[0], mask)
        bar = matplotlib.cm.ScalarMappable(norm=matplotlib.colors.Normalize(0, 1), cmap=SALIENCY_CMAP)
        fig.colorbar(bar, ax=ax, shrink=0.8, label="|map| / max |map|")
        outline = "; lesion outlined in cyan" if mask is not None and mask.any() else ""
        ax.set_title("\n".join([shorten(f"{me.entry.display} on {sample_id}", 44),
                                 shorten(f"{ds.entry.display} × {mo.entry.display}", 44),
                                 f"{explained}{outline}"]), fontsize=7)
        return save_figure(fig, path)
