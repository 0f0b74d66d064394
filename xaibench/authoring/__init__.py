"""For plugin authors and the docs site: the method conformance kit, ``xaibench new``'s scaffold, and the
generated reference pages (hooks, methods and metrics, metric applicability).
"""
