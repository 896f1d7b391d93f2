"""The lab on a real Docker engine: `docker compose` with a project of the test's own, on free 127.0.0.1 ports.

Each lab is torn down with its volumes whatever happens. Nothing here talks to anything but 127.0.0.1 and the
test's own containers.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx2
import pytest

from tests.support.processes import REPO
from tests.support.waiting import wait_for

GRAFANA_IMAGE = "grafana/grafana:13.1.0"
BUILD_TIMEOUT = 1800


def require_docker() -> str:
    """The docker CLI, with an engine and Compose v2 that answer; else skip naming Docker (or fail in CI)."""
    path = shutil.which("docker")
    problem = "the docker CLI is not installed"
    if path:
        info = subprocess.run([path, "info"], capture_output=True, text=True, timeout=30, check=False)
        compose = subprocess.run([path, "compose", "version"], capture_output=True, text=True, timeout=30, check=False)
        if info.returncode == 0 and compose.returncode == 0:
            return path
        problem = "no Docker engine answers" if info.returncode else "Docker Compose v2 is missing"
    message = f"Docker: {problem} (here: run ../shared/ci/offline-docker from the project root)"
    if os.environ.get("LAB_REQUIRE_DOCKER") == "1":
        pytest.fail(f"{message}, and LAB_REQUIRE_DOCKER=1 requires it")
    pytest.skip(f"{message}; set LAB_REQUIRE_DOCKER=1 to make this a failure")


def port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_port_range(size: int) -> tuple[int, int]:
    """`size` consecutive free ports on 127.0.0.1 (for the API's replicas)."""
    for _ in range(200):
        first = random.randint(20000, 60000 - size)
        if all(port_is_free(port) for port in range(first, first + size)):
            return first, first + size - 1
    raise RuntimeError(f"no {size} consecutive free ports")


def image_present(image: str) -> bool:
    done = subprocess.run(["docker", "image", "inspect", image], capture_output=True, timeout=30, check=False)
    return done.returncode == 0


@dataclass
class Lab:
    """One compose project of the lab: its files, its environment (ports, knobs) and how to reach it."""

    project: str
    files: Sequence[str]
    env: dict[str, str]
    reports: Path
    log: list[str] = field(default_factory=list)

    @property
    def prometheus_url(self) -> str:
        return f"http://127.0.0.1:{self.env['PROMETHEUS_PORT']}"

    @property
    def locust_url(self) -> str:
        return f"http://127.0.0.1:{self.env['LOCUST_PORT']}"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.env['API_PORTS'].split('-')[0]}"

    def compose(self, *args: str, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess[str]:
        command = ["docker", "compose", "-p", self.project]
        for path in self.files:
            command += ["-f", path]
        done = subprocess.run(
            [*command, *args], cwd=REPO, env={**os.environ, **self.env}, capture_output=True, text=True,
            timeout=timeout, check=False,
        )  # fmt: skip
        self.log.append(
            f"$ docker compose {' '.join(args)} -> {done.returncode}\n{done.stdout[-2000:]}{done.stderr[-3000:]}"
        )
        if check and done.returncode != 0:
            raise AssertionError(
                f"docker compose {' '.join(args)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
            )
        return done

    def logs(self) -> str:
        return self.compose("logs", "--no-color", "--tail", "60", check=False).stdout

    def query(self, expr: str) -> list[dict]:
        body = httpx2.get(f"{self.prometheus_url}/api/v1/query", params={"query": expr}, timeout=10).json()
        assert body["status"] == "success", body
        return body["data"]["result"]

    def value(self, expr: str) -> float | None:
        """The single value `expr` returns now, or None when it returns nothing."""
        result = self.query(expr)
        return float(result[0]["value"][1]) if result else None

    def container_ids(self, service: str) -> list[str]:
        return sorted(self.compose("ps", "-q", service).stdout.split())

    def started_at(self, container: str) -> str:
        done = subprocess.run(["docker", "inspect", container], capture_output=True, text=True, timeout=30, check=True)
        return json.loads(done.stdout)[0]["State"]["StartedAt"]

    def swarm(self, users: int, spawn_rate: float, seconds: int) -> None:
        """Start a bounded swarm from the Locust master's web API (what the UI's start button does), then wait
        for it to stop by itself after `seconds`."""
        form = {
            "user_count": users,
            "spawn_rate": spawn_rate,
            "host": "http://api:8000",
            "run_time": f"{seconds}s",
            "user_classes": ["CreditRiskUser", "HousePriceUser"],
        }
        response = httpx2.post(f"{self.locust_url}/swarm", data=form, timeout=10)
        assert response.status_code == 200, response.text
        assert response.json().get("success"), response.text
        wait_for(lambda: self.locust_state() == "running", 30, "the swarm to start", interval=0.5)
        wait_for(lambda: self.locust_state() == "stopped", seconds + 60, "the swarm to stop by itself", interval=1)

    def locust_state(self) -> str:
        return httpx2.get(f"{self.locust_url}/stats/requests", timeout=5).json()["state"]


@contextmanager
def running_lab(
    project: str, scenario: str | None = None, services: Sequence[str] = (), scale: dict[str, int] | None = None,
    **knobs: str,
) -> Iterator[Lab]:  # fmt: skip
    """`docker compose up` of the lab (and `scenario`'s override), on free ports; `down -v` at the end."""
    require_docker()
    first, last = free_port_range(4)
    reports = Path(tempfile.mkdtemp(prefix=f"{project}-reports-"))
    reports.chmod(0o777)  # the master writes as uid 1000; this test may run as anyone (root in CI)
    env = {
        "LOCUST_REPORTS": str(reports),
        "API_PORTS": f"{first}-{last}",
        "LOCUST_PORT": str(free_port_range(1)[0]),
        "PROMETHEUS_PORT": str(free_port_range(1)[0]),
        "GRAFANA_PORT": str(free_port_range(1)[0]),
        **knobs,
    }
    files = ["compose.yaml", *([f"scenarios/{scenario}.yaml"] if scenario else [])]
    lab = Lab(f"{project}-{os.getpid()}", files, env, reports)
    scales = [arg for name, count in (scale or {}).items() for arg in ("--scale", f"{name}={count}")]
    try:
        lab.compose("up", "-d", "--wait", "--wait-timeout", "300", *scales, *services, timeout=900)
        wait_for(lambda: httpx2.get(f"{lab.locust_url}/stats/requests", timeout=2).status_code == 200, 60, "Locust UI")
        yield lab
    except BaseException:
        print("\n".join(lab.log[-6:]), lab.logs(), sep="\n")
        raise
    finally:
        lab.compose("down", "-v", "--remove-orphans", "--timeout", "20", timeout=300, check=False)
        shutil.rmtree(reports, ignore_errors=True)


def build_images() -> None:
    """Build the lab's two images once (compose tags them); the labs then start from them."""
    require_docker()
    started = time.monotonic()
    Lab("lab-build", ["compose.yaml"], {}, REPO / "reports").compose(
        "build", "api", "locust-master", timeout=BUILD_TIMEOUT
    )
    print(f"images built in {time.monotonic() - started:.0f}s")
