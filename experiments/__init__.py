"""Experiments: run a scenario under the breaking-point load and report what it shows (run.py, compare.py)."""
