"""The distribution's version, in a module of its own so that the core's modules can name it without importing
the package (whose ``__getattr__`` lazily offers :mod:`xaibench.api`, which imports them)."""

__version__ = "0.1.0"
