"""A suite from its YAML to the plan of a run: parsing and validation, ``--set`` values, region targets, run
options, parameter checks, models a suite entry brings without a plugin, and the plan (cells, keys, skip
rules).
"""
