"""Built-in suites, shipped as YAML package data."""
