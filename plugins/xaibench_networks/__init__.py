"""Built-in plugin: timm and MONAI networks by name (optional extras ``xaibench[timm]``, ``xaibench[monai]``)."""
