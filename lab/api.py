"""The real API under gunicorn on a free 127.0.0.1 port, the way `make api` starts it: ready when every worker
has its models loaded and warm, stopped gracefully."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx2
import psutil

from lab.errors import ProcessExited
from lab.paths import API_DIR, BIN
from lab.polling import wait_for
from lab.ports import free_port
from lab.processes import clean_env, cpu_seconds, pinned, stop


@dataclass
class RunningApi:
    """A model server started as a child process: the lab's API under gunicorn, or another one (BentoML's)."""

    url: str
    process: subprocess.Popen[bytes]
    log: Path
    name: str = "gunicorn"  # the server, as its exit is reported

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def worker_pids(self) -> list[int]:
        return sorted(child.pid for child in psutil.Process(self.process.pid).children())

    def cpu_seconds(self) -> float:
        """CPU time used so far by gunicorn and its workers."""
        return cpu_seconds(self.process.pid)

    def metrics(self) -> str:
        response = httpx2.get(f"{self.url}/metrics", timeout=10)
        response.raise_for_status()
        return response.text

    def alive(self) -> bool:
        """True while the server runs; ProcessExited with its log once it has exited."""
        if self.process.poll() is not None:
            raise ProcessExited(f"{self.name} exited with {self.process.returncode}:\n{self.output()[-4000:]}")
        return True


def start_gunicorn(
    workdir: Path, model_dir: Path, workers: int, cores: int | str | None = None, **env: str | None
) -> RunningApi:
    """Launch gunicorn as `make api` does (on the given CPU cores, if any), not yet ready. `env` sets LAB_
    knobs; any the caller's environment had are dropped."""
    port = free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    log = workdir / f"gunicorn-{port}.log"
    process = subprocess.Popen(
        pinned([str(BIN / "gunicorn"), "-c", "gunicorn.conf.py", "--bind", f"127.0.0.1:{port}"], cores),
        cwd=API_DIR,
        env=clean_env(
            **{
                "LAB_MODEL_DIR": str(model_dir),
                "PROMETHEUS_MULTIPROC_DIR": str(workdir / f"metrics-{port}"),
                "WEB_CONCURRENCY": str(workers),
                **env,
            }
        ),
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    return RunningApi(f"http://127.0.0.1:{port}", process, log)


def wait_ready(api: RunningApi, workers: int, timeout: float = 60) -> None:
    """Until every worker has started and /readyz says the models are warm."""
    wait_for(
        lambda: api.alive() and api.output().count("Application startup complete") >= workers,
        timeout,
        f"{workers} gunicorn workers to be ready",
    )
    wait_for(lambda: api.alive() and httpx2.get(f"{api.url}/readyz", timeout=2).status_code == 200, 10, "/readyz")


@contextmanager
def running_api(
    workdir: Path, model_dir: Path, workers: int = 2, cores: int | str | None = None, **env: str
) -> Iterator[RunningApi]:
    """The API under gunicorn with `workers` workers, each with its models loaded and warmed up."""
    api = start_gunicorn(workdir, model_dir, workers, cores, **env)
    try:
        wait_ready(api, workers)
        yield api
    finally:
        stop(api.process)
