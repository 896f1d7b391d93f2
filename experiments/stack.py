"""The lab an experiment runs against: the compose stack (one project per run, on free 127.0.0.1 ports), or the
same components started natively where Docker is missing. Both give a `Lab`: where Prometheus and the Locust
master answer, and how to swarm.
"""

from __future__ import annotations

import json
import math
import os
import random
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
import yaml
from dotenv import dotenv_values

REPO = Path(__file__).resolve().parents[1]
SCENARIOS_DIR = REPO / "scenarios"
MODEL_DIR = REPO / "services" / "model-api" / "artifacts"  # where `make train` writes them
GRAFANA_IMAGE = "grafana/grafana:13.1.0"
CORE_SERVICES = ("api", "balancer", "prometheus", "locust-master", "locust-worker")


class LabError(RuntimeError):
    """The lab could not be started or driven; the message says why and what to do."""


def scenario_file(name: str) -> Path:
    path = SCENARIOS_DIR / f"{name}.yaml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in SCENARIOS_DIR.glob("*.yaml")))
        raise LabError(f"no scenario {name!r}: scenarios are {known}")
    return path


COMPOSE_VARIABLE = re.compile(r"\$\{(?P<name>\w+)(?:(?P<colon>:?)-(?P<default>[^}]*))?\}")


def interpolate(text: str, variables: dict[str, str]) -> str:
    """`${VAR}`, `${VAR:-default}` and `${VAR-default}` substituted as docker compose does."""

    def value(match: re.Match[str]) -> str:
        name, default = match["name"], match["default"]
        found = variables.get(name)
        if default is None or (found is not None and (found or not match["colon"])):
            return found or ""
        return default

    if "${" in COMPOSE_VARIABLE.sub("", text):
        raise LabError(f"{text!r}: only ${{VAR}}, ${{VAR:-default}} and ${{VAR-default}} are understood here")
    return COMPOSE_VARIABLE.sub(value, text)


@dataclass(frozen=True)
class ApiService:
    """What compose would give the API: its environment (WEB_CONCURRENCY apart) and its CPU limit."""

    environment: dict[str, str]
    workers: int
    cpus: float


def api_service(scenario: str | None = None) -> ApiService:
    """compose.yaml's api service with `scenario`'s override merged in, each variable read as compose reads it:
    from the shell, else from .env, else its default. A native run starts the API with exactly this."""
    variables = {**{k: v or "" for k, v in dotenv_values(REPO / ".env").items()}, **os.environ}
    files = [REPO / "compose.yaml", *([scenario_file(scenario)] if scenario else [])]
    environment: dict[str, Any] = {}
    cpus: Any = None
    for path in files:
        api = yaml.safe_load(path.read_text())["services"]["api"]
        environment.update(api.get("environment", {}))  # compose merges environments key by key
        cpus = api.get("cpus", cpus)
    resolved = {key: interpolate(str(value).lower() if isinstance(value, bool) else str(value), variables)
                for key, value in environment.items()}  # fmt: skip
    workers = number(
        int, resolved.pop("WEB_CONCURRENCY", "1"), f"WEB_CONCURRENCY ({environment.get('WEB_CONCURRENCY')})"
    )
    return ApiService(resolved, workers, number(float, interpolate(str(cpus or 1), variables), f"cpus ({cpus})"))


def number(kind: type[int] | type[float], text: str, what: str) -> Any:
    """`text` as a number, else a LabError naming the setting and where its value comes from."""
    try:
        return kind(text)
    except ValueError:
        whole = "a whole number" if kind is int else "a number"
        raise LabError(f"the API's {what} is {text!r}, which is not {whole}") from None


def native_cores(cpus: float, usable: Sequence[int] | None = None) -> str | None:
    """The cores a native API is pinned to (a `taskset -c` list) to stand in for a CPU limit of `cpus`: as many
    whole cores as the limit rounds up to, or None when that is every usable core. Pinning caps the API's CPU
    as a quota would, without the throttling: a native run reports no throttled periods."""
    usable = sorted(usable if usable is not None else os.sched_getaffinity(0))
    wanted = max(1, math.ceil(cpus))
    return None if wanted >= len(usable) else ",".join(str(core) for core in usable[:wanted])


def wait_until(condition: Any, timeout: float, what: str, interval: float = 0.5) -> Any:
    """Poll `condition` until it returns something truthy; LabError naming `what` at the deadline."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = condition()
        except (httpx2.HTTPError, OSError, ValueError, KeyError) as error:
            last = error
        else:
            if result:
                return result
        time.sleep(interval)
    raise LabError(f"timed out after {timeout:.0f}s waiting for {what}" + (f" ({last!r})" if last else ""))


def port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_port_range(size: int = 1) -> tuple[int, int]:
    """`size` consecutive free ports on 127.0.0.1."""
    for _ in range(200):
        first = random.randint(20000, 60000 - size)
        if all(port_is_free(port) for port in range(first, first + size)):
            return first, first + size - 1
    raise LabError(f"no {size} consecutive free ports on 127.0.0.1")


@dataclass
class Lab:
    """A running lab: Prometheus and the Locust master's web UI, reachable on 127.0.0.1."""

    prometheus_url: str
    locust_url: str
    reports: Path
    grafana_url: str | None = None
    target: str = "http://balancer:8000"  # the API as the Locust workers reach it
    api_url: str = ""  # the API as this machine reaches it (the balancer, in the compose lab)

    def query(self, expr: str) -> list[dict]:
        body = httpx2.get(f"{self.prometheus_url}/api/v1/query", params={"query": expr}, timeout=10).json()
        if body["status"] != "success":
            raise LabError(f"Prometheus refused {expr!r}: {body}")
        return body["data"]["result"]

    def query_range(self, expr: str, start: float, end: float, step: float = 5) -> list[dict]:
        params = {"query": expr, "start": start, "end": end, "step": step}
        body = httpx2.get(f"{self.prometheus_url}/api/v1/query_range", params=params, timeout=30).json()
        if body["status"] != "success":
            raise LabError(f"Prometheus refused {expr!r}: {body}")
        return body["data"]["result"]

    def value(self, expr: str) -> float | None:
        """The single value `expr` returns now, or None when it returns nothing."""
        result = self.query(expr)
        return float(result[0]["value"][1]) if result else None

    def locust_stats(self) -> dict:
        return httpx2.get(f"{self.locust_url}/stats/requests", timeout=5).json()

    def locust_state(self) -> str:
        return self.locust_stats()["state"]

    def start_swarm(self, **form: Any) -> None:
        """What the Locust UI's start button sends: users, spawn rate, and any of the lab's options."""
        data = {"host": self.target, "user_classes": ["CreditRiskUser", "HousePriceUser"], **form}
        response = httpx2.post(f"{self.locust_url}/swarm", data=data, timeout=10)
        if response.status_code != 200 or not response.json().get("success"):
            raise LabError(f"Locust refused the swarm: {response.status_code} {response.text[:300]}")
        wait_until(lambda: self.locust_state() in {"spawning", "running"}, 30, "the swarm to start")

    def stop_swarm(self) -> None:
        """What the Locust UI's stop button does; returns once Locust says it stopped."""
        httpx2.post(f"{self.locust_url}/stop", timeout=10).raise_for_status()
        wait_until(lambda: self.locust_state() == "stopped", 30, "the swarm to stop")

    def swarm(self, users: int, spawn_rate: float, seconds: int, **form: Any) -> None:
        """A bounded swarm: start it, then wait for Locust to stop it by itself after `seconds`."""
        self.start_swarm(user_count=users, spawn_rate=spawn_rate, run_time=f"{seconds}s", **form)
        wait_until(lambda: self.locust_state() == "stopped", seconds + 60, "the swarm to stop by itself", 1)


@dataclass
class ComposeLab(Lab):
    """One compose project of the lab: its files, its environment (ports, knobs), its own volumes."""

    project: str = ""
    files: Sequence[str] = ()
    env: dict[str, str] = field(default_factory=dict)
    log: list[str] = field(default_factory=list)

    def compose(
        self, *args: str, timeout: float = 600, check: bool = True, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """`docker compose` on this project; `env` sets variables for this command only (a knob, say)."""
        command = ["docker", "compose", "-p", self.project]
        for path in self.files:
            command += ["-f", path]
        done = subprocess.run(
            [*command, *args], cwd=REPO, env={**os.environ, **self.env, **(env or {})}, capture_output=True,
            text=True, timeout=timeout, check=False,
        )  # fmt: skip
        self.log.append(f"$ docker compose {' '.join(args)} -> {done.returncode}\n{done.stderr[-3000:]}")
        if check and done.returncode != 0:
            raise LabError(f"docker compose {' '.join(args)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}")
        return done

    def logs(self, *services: str, tail: int = 60) -> str:
        return self.compose("logs", "--no-color", "--tail", str(tail), *services, check=False).stdout

    def container_ids(self, service: str) -> list[str]:
        return sorted(self.compose("ps", "-q", service).stdout.split())

    def state(self, container: str) -> dict[str, Any]:
        """Docker's State of a container: Running, StartedAt, ExitCode..."""
        done = subprocess.run(["docker", "inspect", container], capture_output=True, text=True, timeout=30, check=True)
        return json.loads(done.stdout)[0]["State"]

    def started_at(self, container: str) -> str:
        return self.state(container)["StartedAt"]


def docker_problem() -> str | None:
    """Why the compose lab cannot run here, or None when Docker with Compose v2 answers."""
    if not shutil.which("docker"):
        return "the docker CLI is not installed"
    if subprocess.run(["docker", "info"], capture_output=True, timeout=30, check=False).returncode:
        return "no Docker engine answers"
    if subprocess.run(["docker", "compose", "version"], capture_output=True, timeout=30, check=False).returncode:
        return "Docker Compose v2 is missing"
    return None


def image_present(image: str) -> bool:
    done = subprocess.run(["docker", "image", "inspect", image], capture_output=True, timeout=30, check=False)
    return done.returncode == 0


def build_images() -> None:
    """Build the lab's two images (compose tags them), so that labs start from them without building."""
    ComposeLab("", "", REPO / "reports", project="lab-build", files=["compose.yaml"]).compose(
        "build", "api", "locust-master", timeout=1800
    )


@contextmanager
def compose_lab(
    project: str,
    reports: Path,
    scenario: str | None = None,
    grafana: bool | None = None,
    scale: dict[str, int] | None = None,
    **knobs: str,
) -> Iterator[ComposeLab]:
    """`docker compose up` of the lab (with `scenario`'s override) on free ports; `down -v` at the end.

    Grafana joins when `grafana` is True, or when None and its image is present.
    """
    problem = docker_problem()
    if problem:
        raise LabError(f"Docker: {problem}; use --native to run without Docker")
    reports.mkdir(parents=True, exist_ok=True)
    reports.chmod(0o777)  # the Locust master writes as LAB_UID (1000); whoever runs this may be someone else
    env = {
        "API_PORT": str(free_port_range()[0]),
        "LOCUST_PORT": str(free_port_range()[0]),
        "PROMETHEUS_PORT": str(free_port_range()[0]),
        "GRAFANA_PORT": str(free_port_range()[0]),
        "LOCUST_REPORTS": str(reports.resolve()),
        **knobs,
    }
    with_grafana = image_present(GRAFANA_IMAGE) if grafana is None else grafana
    lab = ComposeLab(
        prometheus_url=f"http://127.0.0.1:{env['PROMETHEUS_PORT']}",
        locust_url=f"http://127.0.0.1:{env['LOCUST_PORT']}",
        reports=reports,
        api_url=f"http://127.0.0.1:{env['API_PORT']}",
        grafana_url=f"http://127.0.0.1:{env['GRAFANA_PORT']}" if with_grafana else None,
        project=f"{project}-{os.getpid()}",
        files=["compose.yaml", *([f"scenarios/{scenario_file(scenario).name}"] if scenario else [])],
        env=env,
    )
    services = [*CORE_SERVICES, *(["grafana"] if with_grafana else [])]
    scales = [arg for name, count in (scale or {}).items() for arg in ("--scale", f"{name}={count}")]
    try:
        lab.compose("up", "-d", "--build", "--wait", "--wait-timeout", "300", *scales, *services, timeout=900)
        wait_until(lambda: lab.locust_stats(), 60, "the Locust master's web UI")
        yield lab
    except BaseException:
        print("\n".join(lab.log[-4:]), lab.logs(), sep="\n")
        raise
    finally:
        lab.compose("down", "-v", "--remove-orphans", "--timeout", "20", timeout=300, check=False)


@contextmanager
def native_lab(workdir: Path, scenario: str | None = None, locust_workers: int = 2) -> Iterator[Lab]:
    """The API (gunicorn), a Locust master with workers and Prometheus as processes on 127.0.0.1.

    They are started by the very launchers the integration tests use (tests/support). Without a container, a
    scenario's CPU limit is stood in for by pinning the API to as many cores (see `native_cores`); the API
    then reports its own processes' CPU against those cores.
    """
    for tool in ("prometheus", "promtool"):
        if not shutil.which(tool):
            raise LabError(f"{tool} is not installed: `apt install prometheus` (Debian/Ubuntu) for a native run")
    from tests.support.locust import distributed_locust
    from tests.support.processes import running_api
    from tests.support.prometheus import running_prometheus

    service = api_service(scenario)
    cores = native_cores(service.cpus)
    model_dir = MODEL_DIR
    if not (model_dir / "metadata.json").is_file():
        raise LabError("the models are not trained: run `make train` first")
    reports = workdir / "locust"
    with ExitStack() as stack:
        api = stack.enter_context(
            running_api(workdir / "api", model_dir, workers=service.workers, cores=cores, **service.environment)
        )
        load = stack.enter_context(
            distributed_locust(
                reports,
                api.url,
                workers=locust_workers,
                master_args=["--class-picker"],
                locustfile="locustfile.py,shapes",
            )
        )
        prometheus = stack.enter_context(
            running_prometheus(workdir, [api.url.removeprefix("http://")], load.exporter_url.split("/")[2])
        )
        yield Lab(
            prometheus_url=prometheus.url, locust_url=load.web_url, reports=reports, target=api.url, api_url=api.url
        )
