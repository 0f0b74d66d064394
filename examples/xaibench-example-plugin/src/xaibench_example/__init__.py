"""An example third-party xaibench plugin (see plugin.py)."""
