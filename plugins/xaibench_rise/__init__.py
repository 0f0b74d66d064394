"""RISE: randomized input sampling for explanation (Petsiuk et al., BMVC 2018)."""
