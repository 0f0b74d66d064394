"""What every room shares: user-facing errors, the distribution's version, progress lines, the old paths.

The lowest room: it imports nothing of xaibench. :mod:`~xaibench.base.moved` keeps the flat layout's
module paths working for one release.
"""
