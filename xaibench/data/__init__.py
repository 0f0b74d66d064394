"""The data of a run: the input contract, datasets loaded once, validated and fingerprinted (bundles), k-fold
splits, and verified downloads.
"""
