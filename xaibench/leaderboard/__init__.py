"""Store -> leaderboards: a board model, then markdown, JSON, the index and a staleness check as renderers.

Everything here renders from the store alone and never recomputes a score, so
``xaibench leaderboard`` works without models or data. The output is a pure
function of what the store holds (no timestamps, fixed orders), so an unchanged
store renders byte-identical files and CI can tell a stale leaderboard by
comparing bytes.

- :mod:`~xaibench.leaderboard.board`: the computation (:func:`board`: cells,
  tie-aware ranks, metric agreement) that every view shows;
- :mod:`~xaibench.leaderboard.markdown`: ``<suite>.md`` (:func:`render`);
- :mod:`~xaibench.leaderboard.exports`: ``<suite>.json`` for websites
  (:func:`to_json`) and flat JSON/CSV (:func:`export`);
- :mod:`~xaibench.leaderboard.index`: the folder's ``README.md``, rendered from
  the ``<suite>.json`` documents in it (:func:`render_index`);
- :mod:`~xaibench.leaderboard.publish`: :func:`write` (all of the above plus the
  agreement heat maps) and :func:`problems` (what is stale, for ``--check``).

Figures: the metric-agreement heat maps are drawn from the store; the saliency
galleries and deletion/insertion curves need the models and maps, so
``xaibench run`` draws them (:func:`xaibench.figures.charts.write_run_figures`) and the
markdown links them by their fixed names.
"""
from __future__ import annotations

from xaibench.leaderboard.board import Block, MethodRow, Record, board, records
from xaibench.leaderboard.exports import export, to_json
from xaibench.leaderboard.index import render_index, write_index
from xaibench.leaderboard.markdown import render
from xaibench.leaderboard.publish import index_problems, problems, write

__all__ = ["Block", "MethodRow", "Record", "board", "export", "index_problems", "problems", "records", "render",
           "render_index", "to_json", "write", "write_index"]
