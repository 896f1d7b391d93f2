"""Prometheus: its HTTP API (what Grafana and the experiment runner ask), Debian's binary started on a free
127.0.0.1 port with the lab's rules, and the lab's rule files read."""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import yaml

from lab.errors import LabError
from lab.paths import RULES_DIR
from lab.polling import wait_for
from lab.ports import free_port
from lab.processes import find_tool, stop
from model_api.vocabulary import STEP_SECONDS
from prometheus.native import native_config


@dataclass
class PrometheusClient:
    """Prometheus's HTTP API; a query it refuses is a LabError naming the query."""

    url: str

    def _get(self, path: str, timeout: float = 10, **params: Any) -> Any:
        body = httpx2.get(f"{self.url}{path}", params=params, timeout=timeout).json()
        if body.get("status") != "success":
            raise LabError(f"Prometheus refused {params}: {body.get('error', body)}")
        return body["data"]

    def query(self, expr: str) -> list[dict]:
        return self._get("/api/v1/query", query=expr)["result"]

    def value(self, expr: str) -> float | None:
        """The single value `expr` returns now, or None when it returns nothing."""
        result = self.query(expr)
        return float(result[0]["value"][1]) if result else None

    def query_between(self, expr: str, start: float, end: float, step: float = STEP_SECONDS) -> list[dict]:
        """One sample per `step` seconds between start and end."""
        return self._get("/api/v1/query_range", 30, query=expr, start=start, end=end, step=step)["result"]

    def query_range(self, expr: str, seconds: float = 60, step: float = STEP_SECONDS) -> list[dict]:
        """What a Grafana time-series panel asks for: the last `seconds`, one sample per `step`."""
        end = time.time()
        return self.query_between(expr, end - seconds, end, step)

    def label_values(self, label: str, selector: str) -> list[str]:
        """What a Grafana `label_values(selector, label)` variable offers."""
        return self._get(f"/api/v1/label/{label}/values", **{"match[]": selector})

    def targets_up(self) -> dict[str, float]:
        return {r["metric"]["job"]: float(r["value"][1]) for r in self.query("up")}

    def build_info(self) -> dict[str, str]:
        """The running Prometheus' version and build."""
        return self._get("/api/v1/status/buildinfo")

    def rule_groups(self) -> list[dict]:
        return self._get("/api/v1/rules")["groups"]


@dataclass
class RunningPrometheus(PrometheusClient):
    process: subprocess.Popen[bytes] | None = None
    log: Path | None = None


@contextmanager
def running_prometheus(workdir: Path, api: list[str], locust: str) -> Iterator[RunningPrometheus]:
    """Debian's Prometheus with the native config generated from prometheus/prometheus.yml, scraping the APIs
    and the Locust exporter at these host:port addresses."""
    with prometheus_with(workdir, lambda me: native_config(api, locust, me)) as running:
        yield running


@contextmanager
def prometheus_with(workdir: Path, config_for: Callable[[str], dict[str, Any]]) -> Iterator[RunningPrometheus]:
    """Debian's Prometheus on a free 127.0.0.1 port, with the config `config_for(its own host:port)` returns."""
    binary = find_tool("prometheus", "prometheus")
    port = free_port()
    config = workdir / "prometheus.yml"
    config.write_text(yaml.safe_dump(config_for(f"127.0.0.1:{port}")))
    log = workdir / "prometheus.log"
    process = subprocess.Popen(
        [binary, f"--config.file={config}", f"--storage.tsdb.path={workdir / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}"],
        stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    running = RunningPrometheus(f"http://127.0.0.1:{port}", process, log)

    def ready() -> bool:
        if process.poll() is not None:
            raise LabError(f"prometheus exited:\n{log.read_text()[-3000:]}")
        return httpx2.get(f"{running.url}/-/ready", timeout=2).status_code == 200

    try:
        wait_for(ready, 30, "Prometheus to be ready")
        yield running
    finally:
        stop(process)


def rules(kind: str) -> list[dict]:
    """Every rule of `kind` ("record" or "alert") in the lab's rule files."""
    return [rule for path in sorted(RULES_DIR.glob("*.yml")) for group in yaml.safe_load(path.read_text())["groups"]
            for rule in group["rules"] if kind in rule]  # fmt: skip


def recorded_series() -> list[str]:
    """The signals the lab's rules record, named level:metric:operation; not the raw series of other servers that
    servers.yml renames into the lab's (`renamed_series`), which the lab's own API has no data for."""
    return [rule["record"] for rule in rules("record") if ":" in rule["record"]]


def renamed_series() -> list[str]:
    """The series servers.yml records from another server's (BentoML's, the host exporters'), under the raw names
    the lab's API gives the same measurements."""
    return [rule["record"] for rule in rules("record") if ":" not in rule["record"]]


def alerts() -> dict[str, dict]:
    """Every alert rule of the lab, by its name."""
    return {rule["alert"]: rule for rule in rules("alert")}


def advised_command(alert: str) -> str:
    """The one `docker compose` command, in backticks, that `alert`'s advice label tells a learner to run."""
    (command,) = re.findall(r"`(docker compose [^`]+)`", alerts()[alert]["labels"]["advice"])
    return command


def compose_only(expr: str) -> bool:
    """Whether a query reads what only the compose lab has: the balancer's series (HAProxy's, and the rules over
    them, are named haproxy) and the OOM kills (known only under a memory limit). The compose tier checks these,
    the native lab the rest."""
    return "haproxy" in expr or "oom_kills" in expr
