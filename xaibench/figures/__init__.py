"""Figures: the leaderboard's PNGs (agreement, galleries, curves), slices through volumes, and
``xaibench explain``'s overlay.

``xaibench.figures`` was a module up to xaibench 0.1: its names are served from
:mod:`xaibench.figures.charts` with a DeprecationWarning for one release.
"""
from xaibench.base.moved import forwarding

__getattr__ = forwarding("figures")
