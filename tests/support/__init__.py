"""Helpers shared by the test tiers: starting real processes, waiting for them, reading /metrics."""
