"""SISE: semantic input sampling for explanation (Sattarzadeh et al., AAAI 2021)."""
