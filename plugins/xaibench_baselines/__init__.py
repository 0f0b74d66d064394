"""Calibration baselines every leaderboard shows: random, centre and ground-truth maps."""
