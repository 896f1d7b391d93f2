"""A running lab, however it was started (compose or native): where Prometheus and the Locust master answer,
and how to swarm."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lab.locust import LocustWeb
from lab.prometheus import PrometheusClient


@dataclass
class Lab:
    """A running lab: Prometheus and the Locust master's web UI, reachable on 127.0.0.1."""

    prometheus_url: str
    locust_url: str
    reports: Path
    grafana_url: str | None = None
    target: str = "http://balancer:8000"  # the API as the Locust workers reach it
    api_url: str = ""  # the API as this machine reaches it (the balancer, in the compose lab)

    @property
    def prometheus(self) -> PrometheusClient:
        return PrometheusClient(self.prometheus_url)

    @property
    def locust(self) -> LocustWeb:
        return LocustWeb(self.locust_url)

    def query(self, expr: str) -> list[dict]:
        return self.prometheus.query(expr)

    def value(self, expr: str) -> float | None:
        return self.prometheus.value(expr)

    def locust_stats(self) -> dict:
        return self.locust.stats()

    def locust_state(self) -> str:
        return self.locust.state()

    def start_swarm(self, **form: Any) -> None:
        """What the Locust UI's start button sends, against this lab's API."""
        self.locust.start(self.target, **form)

    def stop_swarm(self) -> None:
        self.locust.stop()

    def swarm(self, users: int, spawn_rate: float, seconds: int, **form: Any) -> None:
        self.locust.swarm(self.target, users, spawn_rate, seconds, **form)
