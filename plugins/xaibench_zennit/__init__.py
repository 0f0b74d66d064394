"""Layer-wise relevance propagation (LRP) through zennit: rules, composites, canonizers (``docs/lrp.md``)."""
