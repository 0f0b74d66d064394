"""The plugin contract: what a plugin registers and the data it exchanges with the harness.

Frozen specs and the data types between the steps (:mod:`~xaibench.contract.specs`,
:mod:`~xaibench.contract.samples`, :mod:`~xaibench.contract.metric_inputs`), the hooks and their
discovery and registries, plugin callables imported at first use, checks of user-given values, the layers
that read a model's input and the model output contract. Imports only :mod:`xaibench.base`.
"""
