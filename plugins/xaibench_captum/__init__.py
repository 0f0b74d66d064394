"""Saliency methods from captum, adapted to the xaibench method contract."""
