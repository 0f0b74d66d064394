"""The model lifecycle: a run's models built with seeded weights, trained or fine-tuned, started from
published weights, loaded, evaluated and gated (:mod:`~xaibench.models.provision`); the nonlinearities a
method's rules must cover; segmenters' training.

``xaibench.models`` was a module up to xaibench 0.1: its names are served from
:mod:`xaibench.models.provision` with a DeprecationWarning for one release.
"""
from xaibench.base.moved import forwarding

__getattr__ = forwarding("models")
