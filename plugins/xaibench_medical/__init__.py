"""Real medical datasets read from a local data root (BUSI, Kather 2016, MedMNIST, any image folder)."""
