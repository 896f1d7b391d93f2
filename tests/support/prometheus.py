"""A real Prometheus (Debian's binary) on a free 127.0.0.1 port, scraping the test's own processes."""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx2
import yaml

from prometheus.native import native_config
from tests.support.processes import REPO, free_port, stop
from tests.support.tools import require
from tests.support.waiting import wait_for

RULES_DIR = REPO / "prometheus" / "rules"


def rules(kind: str) -> list[dict]:
    """Every rule of `kind` ("record" or "alert") in the lab's rule files."""
    return [rule for path in sorted(RULES_DIR.glob("*.yml")) for group in yaml.safe_load(path.read_text())["groups"]
            for rule in group["rules"] if kind in rule]  # fmt: skip


def recorded_series() -> list[str]:
    return [rule["record"] for rule in rules("record")]


def alerts() -> dict[str, dict]:
    """Every alert rule of the lab, by its name."""
    return {rule["alert"]: rule for rule in rules("alert")}


def advised_command(alert: str) -> str:
    """The one `docker compose` command, in backticks, that `alert`'s advice label tells a learner to run."""
    (command,) = re.findall(r"`(docker compose [^`]+)`", alerts()[alert]["labels"]["advice"])
    return command


def needs_balancer(expr: str) -> bool:
    """Whether a query reads the balancer's series (HAProxy's, and the rules over them, are named haproxy):
    only the compose lab has a balancer, so the compose tier checks these and the native lab the rest."""
    return "haproxy" in expr


def promtool() -> str:
    return require("promtool", "prometheus", "LAB_REQUIRE_PROMETHEUS")


@dataclass
class RunningPrometheus:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def query(self, expr: str) -> list[dict]:
        response = httpx2.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=10)
        body = response.json()
        assert body["status"] == "success", body
        return body["data"]["result"]

    def query_range(self, expr: str, seconds: float = 60, step: str = "5s") -> list[dict]:
        """What a Grafana time-series panel asks for: the last `seconds`, one sample per `step`."""
        end = time.time()
        return self.query_between(expr, end - seconds, end, step)

    def query_between(self, expr: str, start: float, end: float, step: str = "5s") -> list[dict]:
        params = {"query": expr, "start": start, "end": end, "step": step}
        body = httpx2.get(f"{self.url}/api/v1/query_range", params=params, timeout=10).json()
        assert body["status"] == "success", body
        return body["data"]["result"]

    def label_values(self, label: str, selector: str) -> list[str]:
        """What a Grafana `label_values(selector, label)` variable offers."""
        response = httpx2.get(f"{self.url}/api/v1/label/{label}/values", params={"match[]": selector}, timeout=10)
        body = response.json()
        assert body["status"] == "success", body
        return body["data"]

    def targets_up(self) -> dict[str, float]:
        return {r["metric"]["job"]: float(r["value"][1]) for r in self.query("up")}


@contextmanager
def running_prometheus(workdir: Path, api: list[str], locust: str) -> Iterator[RunningPrometheus]:
    """Prometheus with the native config generated from prometheus/prometheus.yml."""
    binary = require("prometheus", "prometheus", "LAB_REQUIRE_PROMETHEUS")
    port = free_port()
    config = workdir / "prometheus.yml"
    config.write_text(yaml.safe_dump(native_config(api, locust, f"127.0.0.1:{port}")))
    log = workdir / "prometheus.log"
    process = subprocess.Popen(
        [binary, f"--config.file={config}", f"--storage.tsdb.path={workdir / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}"],
        stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    running = RunningPrometheus(f"http://127.0.0.1:{port}", process, log)

    def ready() -> bool:
        assert process.poll() is None, f"prometheus exited:\n{log.read_text()[-3000:]}"
        return httpx2.get(f"{running.url}/-/ready", timeout=2).status_code == 200

    try:
        wait_for(ready, 30, "Prometheus to be ready")
        yield running
    finally:
        stop(process)
