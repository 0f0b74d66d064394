"""Scoring saliency maps: the batched forward engine and its batch size, the numba kernels, deletion curves,
fills, map helpers, degenerate maps, segmentation targets, and the statistics of a board (bootstrap CIs,
ranks, meta-evaluation, calibration facts).
"""
