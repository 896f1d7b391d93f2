"""Prometheus for the lab: prometheus.yml, rules/, and native.py (the config for native runs)."""
