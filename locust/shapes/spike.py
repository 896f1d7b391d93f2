"""Add to a run for a spike of users: `-f locustfile.py,shapes/spike.py`."""

from lab_locust.shapes import SpikeShape  # noqa: F401
