"""Add to a run to find the breaking point: `-f locustfile.py,shapes/breaking_point.py`."""

from lab_locust.shapes import BreakingPointShape  # noqa: F401
