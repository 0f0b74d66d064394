"""Leaderboard figures (matplotlib, Agg, no pyplot state): PNGs beside the markdown.

Per dataset x model block of a suite:

- ``agreement``: heat map of Kendall's tau between the metrics' rankings of the
  methods; drawn from the store by every ``xaibench leaderboard`` and ``run``;
- ``gallery``: samples as rows, methods as columns, each map over its input with
  the ground-truth mask's contour (1D signals: the signal as a line over the map
  as a coloured band, the mask as a bar under it; volumes: axial, coronal and sagittal
  slices through each map's peak, :mod:`xaibench.figures.slices`);
- ``curves``: per method, the mean curve of each metric that has one (``MetricSpec.curve``:
  deletion, insertion), with the suite's parameters: a panel's AUC is the table's score.

The gallery and the curves need the models and maps, so ``xaibench run`` draws
them right after the run (:func:`write_run_figures`), from the cached checkpoints
and saliency maps: nothing is trained or explained again. Files are small
(:data:`DPI`, a 256-colour palette, bounded width) and written without a timestamp
or software tag, so the same inputs give the same bytes on one machine.
"""
from __future__ import annotations

import math
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, NamedTuple, Sequence

import numpy as np

from xaibench.base import progress
from xaibench.base.errors import CellError, XaibenchError
from xaibench.suites.plan import resolve
from xaibench.scoring.segmentation import target_label
from xaibench.suites.suite import Entry
from xaibench.figures.slices import PLANES, orthogonal_slices

if TYPE_CHECKING:  # pragma: no cover
    from xaibench.running.runner import Runner

FIGURE_KINDS = ("agreement", "gallery", "curves")
DPI = 80
#: Rows of a gallery (among the first evaluated samples). A curve figure of metrics in the suite's table averages
#: every evaluated sample, so its legend's AUC is the table's mean score; without them, the registered curve
#: metrics' defaults are drawn on the first CURVE_SAMPLES samples (said on the figure).
GALLERY_SAMPLES = 4
CURVE_SAMPLES = 16
#: Widest gallery in inches: more methods make smaller panels, not a wider (heavier) file.
MAX_WIDTH = 9.0
#: Narrowest gallery panel in inches: with 11-17 methods the figure grows wider instead.
MIN_PANEL = 0.75
SALIENCY_CMAP = "inferno"
MASK_COLOUR = "#00e5ff"
#: DejaVu Sans ships with matplotlib: the same text renders the same on every machine with one matplotlib.
_STYLE = {"font.family": "DejaVu Sans", "font.size": 8, "axes.titlesize": 8, "image.interpolation": "nearest"}


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "x"


def figure_path(suite: str, dataset: str, model: str, kind: str) -> str:
    """Path of a figure relative to the leaderboards folder (the markdown links it as is)."""
    if kind not in FIGURE_KINDS:
        raise ValueError(f"figure kind must be one of {FIGURE_KINDS}, got {kind!r}")
    return f"{_slug(suite)}/{_slug(dataset)}--{_slug(model)}--{kind}.png"


def new_figure(width: float, height: float):  # type: ignore[no-untyped-def]
    """A matplotlib ``Figure`` of ``width`` x ``height`` inches, constrained layout, no pyplot state."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


#: File suffixes a figure can be written as (lower case) -> the format matplotlib writes.
FIGURE_FORMATS = {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg", ".pdf": "pdf", ".svg": "svg"}


def figure_format(path: str | Path) -> str:
    """The format ``path``'s suffix names (:data:`FIGURE_FORMATS`); raises :class:`XaibenchError` in one line
    for any other suffix, before anything is drawn."""
    suffix = Path(path).suffix.lower()
    if suffix not in FIGURE_FORMATS:
        raise XaibenchError(f"cannot write a figure as {Path(path).name!r}: give a file ending in "
                            f"{', '.join(FIGURE_FORMATS)}")
    return FIGURE_FORMATS[suffix]


def save_figure(fig, path: str | Path) -> Path:  # type: ignore[no-untyped-def]
    """``fig`` in the format ``path``'s suffix names (:func:`figure_format`). A PNG has a 256-colour palette and
    no metadata: noisy maps stay small, same figure -> same bytes."""
    import io

    from PIL import Image

    path = Path(path)
    fmt = figure_format(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    if fmt != "png":
        fig.savefig(tmp, dpi=DPI, format=fmt, **({"pil_kwargs": {"quality": 95}} if fmt == "jpeg" else {}))
    else:
        buf = io.BytesIO()
        fig.savefig(buf, dpi=DPI, format="png", metadata={"Software": None})
        with Image.open(buf) as image:
            image.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT,
                                          dither=Image.Dither.NONE).save(tmp, format="PNG", optimize=True)
    tmp.replace(path)
    return path


def figure_style():  # type: ignore[no-untyped-def]
    """The figures' matplotlib style as a context manager (fonts, sizes, nearest-neighbour images)."""
    import matplotlib

    return matplotlib.rc_context(_STYLE)


def agreement_heatmap(tau: np.ndarray, metrics: Sequence[str], title: str, path: str | Path) -> Path:
    """Kendall's tau matrix as a diverging heat map (-1 blue, +1 red, undefined grey), values written in."""
    tau = np.asarray(tau, dtype=np.float64)
    k = len(metrics)
    if tau.shape != (k, k):
        raise ValueError(f"tau must be ({k}, {k}) for {k} metrics, got {tau.shape}")
    with figure_style():
        import matplotlib

        size = 1.6 + 0.55 * k
        fig = new_figure(size + 0.8, size)
        ax = fig.add_subplot()
        cmap = matplotlib.colormaps["RdBu_r"].with_extremes(bad="#d0d0d0")
        im = ax.imshow(np.ma.masked_invalid(tau), cmap=cmap, vmin=-1, vmax=1)
        for i in range(k):
            for j in range(k):
                text = "–" if not math.isfinite(tau[i, j]) else f"{tau[i, j]:.2f}"
                dark = math.isfinite(tau[i, j]) and abs(tau[i, j]) > 0.6
                ax.text(j, i, text, ha="center", va="center", color="white" if dark else "black")
        ax.set_xticks(range(k), metrics, rotation=45, ha="right")
        ax.set_yticks(range(k), metrics)
        ax.set_title(f"Kendall's tau between metric rankings\n{title}")
        fig.colorbar(im, ax=ax, shrink=0.8, label="tau")
        return save_figure(fig, path)


def _display_image(x: np.ndarray) -> tuple[np.ndarray, str | None]:
    """``(C, H, W)`` input -> something imshow draws: grey for 1 channel, RGB (per-image min-max) for 3."""
    if x.shape[0] == 3:
        rgb = np.moveaxis(x, 0, -1)
        lo, hi = rgb.min(), rgb.max()
        return (rgb - lo) / (hi - lo) if hi > lo else np.zeros_like(rgb), None
    return x.mean(axis=0), "gray"


def _abs_scaled(saliency: np.ndarray) -> np.ndarray:
    """|map| scaled to [0, 1] (constant maps -> 0) by :func:`xaibench.scoring.maps.normalize`, as the metrics scale it."""
    import torch

    from xaibench.scoring.maps import normalize

    return normalize(torch.as_tensor(np.asarray(saliency, dtype=np.float32))[None], "abs")[0].numpy()


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """Contiguous ``True`` runs of a 1D mask as (start, stop) pairs."""
    padded = np.concatenate([[False], mask.astype(bool), [False]])
    edges = np.flatnonzero(padded[1:] != padded[:-1])
    return list(zip(edges[::2].tolist(), edges[1::2].tolist()))


def draw_overlay(ax, x: np.ndarray, saliency: np.ndarray | None,
                 mask: np.ndarray | None) -> None:  # type: ignore[no-untyped-def]
    """One map over its input on ``ax`` (``saliency`` None: the input alone) with the mask's outline.

    ``x`` is ``(C, *spatial)``, ``saliency`` and ``mask`` ``(*spatial)``.
    """
    if x.ndim == 4:  # a volume (C, D, H, W): its orthogonal slices through the map's peak, drawn as an image
        x, saliency, mask = orthogonal_slices(x, saliency, mask)
    if x.ndim == 2:  # a 1D signal (C, L)
        signal = x.mean(axis=0)
        lo, hi = float(signal.min()), float(signal.max())
        pad = 0.1 * (hi - lo or 1.0)
        ax.set_facecolor("black")
        if saliency is not None:
            ax.imshow(_abs_scaled(saliency)[None], aspect="auto", cmap=SALIENCY_CMAP, vmin=0, vmax=1, alpha=0.8,
                      extent=(-0.5, len(signal) - 0.5, lo - pad, hi + pad))
        ax.plot(np.arange(len(signal)), signal, color="white", linewidth=1.0)
        if mask is not None:
            for start, stop in _runs(mask):
                ax.hlines(lo - 0.7 * pad, start - 0.5, stop - 0.5, colors=MASK_COLOUR, linewidth=3)
        ax.set_xlim(-0.5, len(signal) - 0.5)
        ax.set_ylim(lo - pad, hi + pad)
        ax.set_yticks([])
        return
    image, cmap = _display_image(x)
    ax.imshow(image, cmap=cmap)
    if saliency is not None:
        ax.imshow(_abs_scaled(saliency), cmap=SALIENCY_CMAP, vmin=0, vmax=1, alpha=0.55)
    if mask is not None and mask.any() and not mask.all():
        ax.contour(mask.astype(float), levels=[0.5], colors=MASK_COLOUR, linewidths=1.0)
    ax.set_xticks([])
    ax.set_yticks([])


def shorten(text: str, width: int) -> str:
    """``text`` wrapped to lines of ``width`` characters (long sample ids such as BUSI paths)."""
    import textwrap

    return "\n".join(textwrap.wrap(text, width, break_long_words=True, break_on_hyphens=True)) or text


def gallery(x: np.ndarray, masks: np.ndarray | None, maps: Mapping[str, np.ndarray], ids: Sequence[str],
            labels: Sequence[str], title: str, path: str | Path) -> Path:
    """Samples as rows (first column: the input), methods as columns; ``maps[method]`` is ``(N, *spatial)``.

    Rows are labelled with the sample id and classes (wrapped, so long ids do not run into the
    next row), a row whose mask is empty says "no lesion"; column titles are wrapped and, with
    many methods, rotated so that they do not collide. The caption mentions the mask only when
    there is one, and the colour bar gives the scale of the maps.
    """
    n, methods = len(ids), list(maps)
    signal, volume = x.ndim == 3, x.ndim == 5
    with figure_style():
        cols = len(methods) + 1
        panel = max(MIN_PANEL, min(1.5 if not signal else 2.2, MAX_WIDTH / cols))
        rotate = cols > 8
        head = 0.9 if rotate else 0.6
        # a volume's panel is its three planes stacked (xaibench.figures.slices): (H + 2D + 2) rows x max(W, H) columns
        tall = (x.shape[-2] + 2 * x.shape[-3] + 2) / max(x.shape[-1], x.shape[-2]) if volume else 1.0
        fig = new_figure(panel * cols + 1.6, (panel * tall if not signal else 1.0) * n + head)
        axes = fig.subplots(n, cols, squeeze=False)
        for i in range(n):
            mask = None if masks is None else masks[i]
            ax = axes[i][0]
            draw_overlay(ax, x[i], None, mask)
            empty = mask is not None and not np.asarray(mask).any()
            ax.set_ylabel(shorten(str(ids[i]), 18) + "\n" + shorten(labels[i], 18) + ("\n(no lesion)" if empty else ""),
                          fontsize=6)
            for j, method in enumerate(methods, start=1):
                draw_overlay(axes[i][j], x[i], maps[method][i], mask)
                if i == 0:
                    axes[i][j].set_title(shorten(method, 12), rotation=30 if rotate else 0,
                                         ha="left" if rotate else "center", fontsize=7)
        axes[0][0].set_title("input" + (f"\n(top to bottom:\n{', '.join(PLANES)})" if volume else ""), fontsize=7)
        import matplotlib

        bar = matplotlib.cm.ScalarMappable(norm=matplotlib.colors.Normalize(0, 1), cmap=SALIENCY_CMAP)
        fig.colorbar(bar, ax=axes, shrink=0.6, label="|map| / max |map|")
        has_mask = masks is not None and any(np.asarray(m).any() for m in masks)
        outline = f", lesion mask {'as a bar' if signal else 'outlined'} in cyan" if has_mask else ""
        planes = f"; volumes: {', '.join(PLANES)} slices (top to bottom) through each map's peak" if volume else ""
        fig.suptitle(shorten(f"{title}: |map| scaled per map{outline}{planes}", 90))
        return save_figure(fig, path)


class CurvePanel(NamedTuple):
    """A curve figure's panel: metric title, label, direction, curves per method, y label, ``most``/``least`` first."""

    title: str
    label: str
    higher_is_better: bool
    curves: Mapping[str, np.ndarray]
    ylabel: str = "target-class probability"
    first: str = "most"


def curve_figure(panels: Sequence[CurvePanel], title: str, path: str | Path, unit: str = "pixels",
                 note: str = "") -> Path:
    """Mean curves per method, one panel per curve metric (``panel.curves[method]``: ``(N, S)``, same methods).

    One legend, right of the panels, with each method's mean per-sample trapezoid area per panel, one line each
    (the metric's score on these samples); past 12 methods two columns, past 10 the line style changes.
    A row with a NaN (unscored: a constant map, a segmenter's empty region) is left out of the method's mean
    curve and area; the legend gives the number of samples averaged where it is not all. ``note`` ends the title.
    """
    from xaibench.scoring.kernels import auc

    methods = list(panels[0].curves) if panels else []
    columns = 1 if len(methods) <= 12 else 2
    with figure_style():
        fig = new_figure(4.25 * max(2, len(panels)) + 1.6 * (columns - 1),
                      max(3.2, 0.15 * (1 + len(panels)) * math.ceil(len(methods) / columns) + 1.0))
        axes = np.atleast_1d(fig.subplots(1, max(1, len(panels)), sharey=True))
        areas: dict[str, list[str]] = {m: [] for m in methods}
        handles: dict[str, Any] = {}
        for ax, panel in zip(axes, panels):
            for i, method in enumerate(methods):
                curve = np.asarray(panel.curves[method], dtype=np.float64)
                scored = curve[np.isfinite(curve).all(axis=1)]
                mean = scored.mean(axis=0) if len(scored) else np.empty(0)
                style = ("-", "--", ":", "-.")[i // 10 % 4]
                (line,) = ax.plot(np.linspace(0, 1, mean.size), mean, linewidth=1.2, color=f"C{i % 10}",
                                  linestyle=style)
                handles.setdefault(method, line)
                n = "" if len(scored) == len(curve) else f" (n={len(scored)})"
                areas[method].append(f"{panel.label} {float(auc(scored).mean()):.3f}{n}" if len(scored) else
                                     f"{panel.label} undefined (no scored sample)")
            ax.set(xlabel=f"fraction of {unit} moved, {panel.first} salient first", ylabel=panel.ylabel)
            ax.set_title(shorten(f"{panel.title} ({'higher' if panel.higher_is_better else 'lower'} is better)", 60),
                         fontsize=7)
            ax.grid(alpha=0.3)
        fig.legend(list(handles.values()), [m + "".join(f"\n  AUC {a}" for a in areas[m]) for m in handles],
                   loc="outside right center", fontsize=6, frameon=False, ncols=columns)
        n = len(next(iter(panels[0].curves.values()))) if methods else 0
        fig.suptitle(shorten(f"{title}: mean over {n} samples. {note}", 140), fontsize=7)
        return save_figure(fig, path)


def gallery_rows(has_lesion: Sequence[bool], rows: int) -> list[int]:
    """Which samples a gallery shows: lesion cases first (in sample order), then one without a lesion.

    ``has_lesion[i]`` says whether sample ``i``'s mask is non-empty; with no lesion or no
    normal case among them, the first ``rows`` samples.
    """
    lesion = [i for i, h in enumerate(has_lesion) if h]
    normal = [i for i, h in enumerate(has_lesion) if not h]
    if not lesion or not normal:
        return list(range(min(rows, len(has_lesion))))
    return sorted(lesion[: rows - 1] + normal[:1])


def write_run_figures(runner: "Runner", out_dir: str | Path) -> list[Path]:
    """Galleries and deletion/insertion curves of every dataset x model of ``runner``'s suite.

    Uses the runner's own paths for models (cached checkpoint) and maps (saliency
    cache), so the figures show exactly what was scored; a method whose maps
    failed is left out of the figures (its cells say why).
    """
    curve_metrics = [mt for mt in runner.metrics if mt.spec.curve is not None]
    in_table = bool(curve_metrics)  # else the registered curve metrics with their defaults, said on the figure
    curve_metrics = curve_metrics or resolve(runner.harness, "metrics", [
        Entry(r.spec.name) for r in runner.harness.metrics if r.spec.curve is not None], runner.suite)
    methods = {me.entry.display: me for me in runner.methods}
    written = []
    for ds in runner.datasets:
        if runner.unavailable(ds) is not None:  # an optional dataset without data: nothing to draw
            continue
        bundle = runner.bundle(ds)
        evaluated = runner.evaluated_samples(ds)
        samples = evaluated if in_table else evaluated.subset(slice(0, min(CURVE_SAMPLES, len(evaluated))))
        for mo in (m for m in runner.models if runner.fits(ds, m)):
            g = runner.group_context(ds, mo, samples)
            maps: dict[str, np.ndarray] = {}
            for me in runner.methods:
                if runner.method_skip(ds, mo, me) is not None:
                    continue
                try:
                    maps[me.entry.display] = runner.cached_maps(g, me)
                except CellError:
                    continue
            if not maps:
                continue
            name = f"{ds.entry.display} × {mo.entry.display}"
            rows = gallery_rows([True] * len(samples) if samples.masks is None else
                                samples.masks.reshape(len(samples), -1).any(1).tolist(), GALLERY_SAMPLES)
            progress.say(f"drawing the saliency gallery and deletion/insertion curves of {name} ...")
            masks = None if samples.masks is None else samples.masks[rows].numpy()
            region = g.regions is not None  # a segmenter: its region target, region scores, empty regions unscored
            labels = [f"y={bundle.class_names[int(samples.y[i])]}, explained " + (target_label(runner.suite.target)
                      if region else bundle.class_names[int(g.target[i])]) for i in rows]
            shown = {k: v[rows] for k, v in maps.items()}
            if region:  # a segmenter: its predicted mask (the explained region) before the maps
                shown = {"explained region": g.regions[rows].float().cpu().numpy(), **shown}
            written.append(gallery(samples.x[rows].numpy(), masks, shown, [samples.ids[i] for i in rows], labels, name,
                                   Path(out_dir) / figure_path(runner.suite.name, ds.entry.display, mo.entry.display,
                                                               "gallery")))
            panels = [CurvePanel(f"{mt.entry.display}: " + ", ".join(f"{k}={v}" for k, v in sorted(mt.params.items())),
                                 mt.entry.display, mt.spec.higher_is_better,
                                 {k: runner.metric_curves(g, methods[k], mt, v) for k, v in maps.items()},
                                 "Dice against the unperturbed prediction" if "segmentation" in mt.spec.needs
                                 else "target-class probability" + " of the region scores" * region,
                                 mt.params.get("order", "most"))
                      for mt in curve_metrics if runner.task_skip(ds, mo, mt) is None]  # a segmenter's metric: not here
            note = (f"Mean over the table's {len(samples)} samples, curves as scored (AUC = the table's mean; "
                    f"{'samples without a region or with ' * region}constant maps left out, as in the table)"
                    if in_table
                    else f"Not in this suite's table: the registered curve metrics with their default parameters, "
                         f"on the first {len(samples)} of its {len(evaluated)} samples")
            written.append(curve_figure(panels, name, Path(out_dir) / figure_path(
                runner.suite.name, ds.entry.display, mo.entry.display, "curves"),
                unit={"signal": "points", "volume": "voxels"}.get(bundle.modality, "pixels"), note=note))
    return written


def prune(out_dir: str | Path, suite: str, markdown: str) -> list[Path]:
    """Delete the PNGs in ``<out_dir>/<suite>/`` that ``markdown`` (the suite's leaderboard) does not link.

    A figure of an older run (a dataset since removed or skipped) would otherwise stay in the
    folder and make a link check pass by accident. Returns the deleted paths.
    """
    folder = Path(out_dir) / _slug(suite)
    stale = [p for p in sorted(folder.glob("*.png")) if f"]({_slug(suite)}/{p.name})" not in markdown]
    for path in stale:
        path.unlink()
    return stale


def suite_figure_path(suite: str, name: str) -> str:
    """Path of a figure ``name`` (any text; slugged) of ``suite`` relative to the leaderboards folder, beside the
    per-section figures of :func:`figure_path` (so :func:`prune` keeps it while the markdown links it)."""
    return f"{_slug(suite)}/{_slug(name)}.png"
