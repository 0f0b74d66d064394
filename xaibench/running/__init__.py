"""Running a suite: the runner, one group's execution (explain once, isolate, score), the executors (a local
process pool or Ray), isolation of plugin calls, meta-evaluation re-runs, what a board's numbers depend
on.
"""
