"""The lab as compose runs it: one project per run on free 127.0.0.1 ports, its own volumes, `down -v` after."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lab.errors import LabError
from lab.paths import REPO
from lab.polling import wait_for
from lab.ports import free_port_range
from lab.scenarios import scenario_file
from lab.stack import Lab

GRAFANA_IMAGE = "grafana/grafana:13.1.0"
CORE_SERVICES = ("api", "balancer", "prometheus", "locust-master", "locust-worker")
# own-api.yaml's: the lab without its API and balancer, with the host's exporters (naming a service of the profile
# "lab-api" would start it).
OWN_API_SERVICES = ("prometheus", "locust-master", "locust-worker", "node-exporter", "process-exporter")


@dataclass
class ComposeLab(Lab):
    """One compose project of the lab: its files, its environment (ports, knobs), its own volumes."""

    project: str = ""
    files: Sequence[str] = ()
    env: dict[str, str] = field(default_factory=dict)
    services: Sequence[str] = CORE_SERVICES  # what `up` starts: the core, and Grafana where its image is present
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


def lab_environment(reports: Path, **knobs: str) -> dict[str, str]:
    """The variables compose.yaml reads for a lab of its own on this machine: free host ports, a reports folder
    the Locust master can write to, and the knobs."""
    reports.mkdir(parents=True, exist_ok=True)
    reports.chmod(0o777)  # the Locust master writes as LAB_UID (1000); whoever runs this may be someone else
    return {
        "API_PORT": str(free_port_range()[0]),
        "LOCUST_PORT": str(free_port_range()[0]),
        "PROMETHEUS_PORT": str(free_port_range()[0]),
        "GRAFANA_PORT": str(free_port_range()[0]),
        "LOCUST_REPORTS": str(reports.resolve()),
        **knobs,
    }


def compose_project(
    project: str,
    reports: Path,
    files: Sequence[str] = ("compose.yaml",),
    grafana: bool | None = None,
    services: Sequence[str] = CORE_SERVICES,
    **knobs: str,
) -> ComposeLab:
    """A compose project of the lab on free 127.0.0.1 ports, not started yet; `project` gets this process's id.
    `up` starts `services`, and Grafana when `grafana` is True, or when None and its image is present.
    """
    problem = docker_problem()
    if problem:
        raise LabError(f"Docker: {problem}; use --native to run without Docker")
    env = lab_environment(reports, **knobs)
    with_grafana = image_present(GRAFANA_IMAGE) if grafana is None else grafana
    return ComposeLab(
        prometheus_url=f"http://127.0.0.1:{env['PROMETHEUS_PORT']}",
        locust_url=f"http://127.0.0.1:{env['LOCUST_PORT']}",
        reports=reports,
        api_url=f"http://127.0.0.1:{env['API_PORT']}",
        target=knobs.get("LAB_TARGET", ComposeLab.target),  # own-api.yaml's: another service, not the balancer
        grafana_url=f"http://127.0.0.1:{env['GRAFANA_PORT']}" if with_grafana else None,
        project=f"{project}-{os.getpid()}",
        files=list(files),
        env=env,
        services=[*services, *(["grafana"] if with_grafana else [])],
    )


@contextmanager
def compose_lab(
    project: str,
    reports: Path,
    scenario: str | None = None,
    grafana: bool | None = None,
    scale: dict[str, int] | None = None,
    overrides: Sequence[Path] = (),
    services: Sequence[str] = CORE_SERVICES,
    **knobs: str,
) -> Iterator[ComposeLab]:
    """`docker compose up` of the lab's `services` (with `scenario`'s override, then `overrides`) on free ports
    (compose_project); `down -v` at the end."""
    files = [
        "compose.yaml", *([f"scenarios/{scenario_file(scenario).name}"] if scenario else []),
        *(str(path.resolve()) for path in overrides),
    ]  # fmt: skip
    lab = compose_project(project, reports, files, grafana, services, **knobs)
    scales = [arg for name, count in (scale or {}).items() for arg in ("--scale", f"{name}={count}")]
    try:
        lab.compose("up", "-d", "--build", "--wait", "--wait-timeout", "300", *scales, *lab.services, timeout=900)
        wait_for(lambda: lab.locust_stats(), 60, "the Locust master's web UI", 0.5)
        yield lab
    except BaseException:
        print("\n".join(lab.log[-4:]), lab.logs(), sep="\n")
        raise
    finally:
        lab.compose("down", "-v", "--remove-orphans", "--timeout", "20", timeout=300, check=False)
