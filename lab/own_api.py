"""The lab pointed at a learner's own service, natively (own-api.yaml is the compose way): the lab's Locust
(master and workers) loading the service at its URL, the host's exporters watching its processes, and Prometheus
scraping the service's /metrics (if it has one), the exporters and Locust, with the lab's rules."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path

from lab.errors import LabError
from lab.exporters import host_exporters
from lab.locust import distributed_locust
from lab.native import NativeLab, host
from lab.prometheus import prometheus_with
from prometheus.native import own_api_config, target_scheme_and_address


@contextmanager
def own_api_lab(
    workdir: Path,
    target: str,
    locust_workers: int = 2,
    locustfile: str = "locustfile.py,shapes",
    locust_args: Sequence[str] = ("--class-picker",),
    locust_env: dict[str, str] | None = None,
    process_pattern: str | None = None,
    metrics_path: str = "/metrics",
    locust_cores: str | None = None,
    target_cpus: float | None = None,
) -> Iterator[NativeLab]:
    """Locust against `target` (a URL; on `locust_cores`, if given), its workers connected, the exporters (the
    service's processes matched by `process_pattern`, own-api.yaml's default if None; its CPU limit `target_cpus`
    cores, else the host's) and Prometheus. The service is the caller's, running."""
    try:
        target_scheme_and_address(target)  # before anything starts
    except ValueError as error:
        raise LabError(str(error)) from None
    reports = workdir / "locust"
    with ExitStack() as stack:
        node, process = stack.enter_context(host_exporters(workdir / "exporters", process_pattern, target_cpus))
        load = stack.enter_context(
            distributed_locust(
                reports, target, locust_workers, locust_args, locustfile, locust_cores, **(locust_env or {})
            )
        )
        # Ready to swarm: the master's web UI answers and counts every worker.
        load.wait(lambda: len(load.stats()["workers"]) == locust_workers, 60, f"{locust_workers} Locust workers")
        locust = host(load.exporter_url)
        prometheus = stack.enter_context(
            prometheus_with(
                workdir, lambda me: own_api_config(target, locust, me, node.address, process.address, metrics_path)
            )
        )
        yield NativeLab(
            prometheus_url=prometheus.url, locust_url=load.web_url, reports=reports, target=target, api_url=target,
            locust_worker_pids=[worker.pid for worker in load.workers],
        )  # fmt: skip
