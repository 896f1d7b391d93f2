"""The BentoML service (services/bentoml/) on a free 127.0.0.1 port, the way `make bentoml` starts it: from its own
virtualenv, pinned to a core if asked, ready when BentoML's /readyz says so, stopped gracefully.

`CreditRisk` (what `make bentoml` serves) takes one applicant at `POST /classify`, as the course's service does,
and answers one decision; `CreditModel` (the batchable model behind it, which the benchmarks serve alone) takes
a JSON list of the lab's applicants and answers a list of decisions (`classify_body`).
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx2

from lab.api import RunningApi
from lab.errors import MissingVirtualenv
from lab.paths import BENTOML_DIR, BENTOML_VENV
from lab.polling import wait_for
from lab.ports import free_port
from lab.processes import clean_env, pinned, stop

READY_TIMEOUT = 90.0  # BentoML's import, its worker's start, the model's load and warm-up: 5-10 s on 2 cores
API_SERVICE = "CreditRisk"  # one applicant in, one decision out: the course's shape, and `make bentoml`'s
MODEL_SERVICE = "CreditModel"  # the batchable model alone: a list of applicants in, their decisions out


def classify_body(applicant: Mapping[str, Any]) -> list[dict[str, Any]]:
    """CreditModel's POST /classify body for one of the lab's applicants (as `model_api.data` makes them): a list of
    one, since a batchable BentoML API takes a batch from each request. The answer is a list of one decision."""
    return [dict(applicant)]


def bentoml_program() -> Path:
    """The virtualenv's `bentoml`, else MissingVirtualenv naming `make bentoml-install`."""
    program = BENTOML_VENV / "bin" / "bentoml"
    if not program.is_file():
        raise MissingVirtualenv(f"BentoML is not installed: {program} is missing; run `make bentoml-install`")
    return program


def start_bentoml(
    workdir: Path,
    model_dir: Path,
    cores: int | str | None = None,
    service: str = API_SERVICE,
    host: str = "127.0.0.1",
    **arguments: int,
) -> RunningApi:
    """Launch `bentoml serve` of `service` on `host` as `make bentoml` does (on the given CPU cores, if any), not
    yet ready. `arguments` are the service's BentoML arguments (workers, max_batch_size, max_latency_ms); LAB_
    knobs of the caller are dropped."""
    program = bentoml_program()
    port = free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    log = workdir / f"bentoml-{port}.log"
    command = [str(program), "serve", f"service:{service}", "--host", host, "--port", str(port)]
    command += [f"--arg={name}={value}" for name, value in arguments.items()]
    process = subprocess.Popen(
        pinned(command, cores),
        cwd=BENTOML_DIR,
        # No usage reports to BentoML, and its home (models, logs) in the run's folder rather than ~/bentoml.
        env=clean_env(LAB_MODEL_DIR=str(model_dir), BENTOML_DO_NOT_TRACK="true", BENTOML_HOME=str(workdir / "home")),
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    return RunningApi(f"http://{host}:{port}", process, log, name="bentoml serve")


def wait_ready(service: RunningApi, timeout: float = READY_TIMEOUT) -> None:
    """Until BentoML's /readyz answers 200: every worker has loaded and warmed up the model."""
    wait_for(
        lambda: service.alive() and httpx2.get(f"{service.url}/readyz", timeout=2).status_code == 200,
        timeout,
        "the BentoML service's /readyz",
    )


@contextmanager
def running_bentoml(
    workdir: Path,
    model_dir: Path,
    cores: int | str | None = None,
    service: str = API_SERVICE,
    host: str = "127.0.0.1",
    **arguments: int,
) -> Iterator[RunningApi]:
    """The BentoML `service` on `host` serving the models in `model_dir`, ready; SIGTERM (then SIGKILL) when done."""
    running = start_bentoml(workdir, model_dir, cores, service, host, **arguments)
    try:
        wait_ready(running)
        yield running
    finally:
        stop(running.process)
