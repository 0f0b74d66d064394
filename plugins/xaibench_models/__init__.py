"""Built-in model architectures (trained by the harness; no pretrained weights)."""
