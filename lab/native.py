"""The lab without Docker: the API (gunicorn), a Locust master with workers and Prometheus as processes on
127.0.0.1, started from the same compose files the container lab reads."""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from lab.api import running_api
from lab.errors import LabError
from lab.locust import distributed_locust
from lab.paths import MODEL_DIR
from lab.processes import find_tool
from lab.prometheus import running_prometheus
from lab.scenarios import api_service
from lab.stack import Lab


@dataclass
class NativeLab(Lab):
    """The native lab, with its processes' pids (what a profile records)."""

    api_pid: int = 0  # the gunicorn master
    locust_worker_pids: list[int] = field(default_factory=list)


def native_cores(cpus: float, usable: Sequence[int] | None = None) -> str | None:
    """The cores a native API is pinned to (a `taskset -c` list) to stand in for a CPU limit of `cpus`: as many
    whole cores as the limit rounds up to, or None when that is every usable core. Pinning caps the API's CPU
    as a quota would, without the throttling: a native run reports no throttled periods."""
    usable = sorted(usable if usable is not None else os.sched_getaffinity(0))
    wanted = max(1, math.ceil(cpus))
    return None if wanted >= len(usable) else ",".join(str(core) for core in usable[:wanted])


def host(url: str) -> str:
    """host:port of an http:// URL, as a Prometheus target."""
    return url.split("/")[2]


@contextmanager
def native_lab(
    workdir: Path,
    scenario: str | None = None,
    locust_workers: int = 2,
    model_dir: Path = MODEL_DIR,
    locust_args: Sequence[str] = ("--class-picker",),
    locustfile: str = "locustfile.py,shapes",
    api_env: dict[str, str] | None = None,
    locust_env: dict[str, str] | None = None,
    workers: int | None = None,
    cpus: float | None = None,
) -> Iterator[NativeLab]:
    """The three processes, with `scenario`'s API settings (plus `api_env`; `workers` and `cpus` override its
    worker count and CPU limit). Without a container, the CPU limit is stood in for by pinning the API to as
    many cores (see `native_cores`); the API then reports its own processes' CPU against those cores."""
    for tool in ("prometheus", "promtool"):
        find_tool(tool, "prometheus")
    if not (model_dir / "metadata.json").is_file():
        raise LabError(f"no trained models in {model_dir}: run `make train` first")
    service = api_service(scenario)
    reports = workdir / "locust"
    with ExitStack() as stack:
        api = stack.enter_context(
            running_api(
                workdir / "api", model_dir, workers=workers or service.workers,
                cores=native_cores(cpus or service.cpus),
                **{**service.environment, **(api_env or {})},
            )
        )  # fmt: skip
        load = stack.enter_context(
            distributed_locust(
                reports, api.url, locust_workers, locust_args, locustfile=locustfile, **(locust_env or {})
            )
        )
        prometheus = stack.enter_context(running_prometheus(workdir, [host(api.url)], host(load.exporter_url)))
        yield NativeLab(
            prometheus_url=prometheus.url, locust_url=load.web_url, reports=reports, target=api.url, api_url=api.url,
            api_pid=api.process.pid, locust_worker_pids=[worker.pid for worker in load.workers],
        )  # fmt: skip
