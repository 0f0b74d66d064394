"""What persists: the SQLite results store, the caches under ``XAIBENCH_HOME``, where suite paths may point,
numba's compile cache.
"""
