"""Start the real API under gunicorn on a free 127.0.0.1 port, wait until every worker is ready, stop it.

The tests and the benchmarks both start the API through here, the way `make api` does.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx2
import psutil

from tests.support.waiting import wait_for

REPO = Path(__file__).resolve().parents[2]
API_DIR = REPO / "services" / "model-api"
BIN = Path(sys.executable).parent


def pinned(command: list[str], cores: int | str | None) -> list[str]:
    """`command` run on the given CPU cores with taskset (a core, or a list such as "0-1"), or as is for None."""
    return command if cores is None else ["taskset", "-c", str(cores), *command]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def clean_env(**overrides: str | None) -> dict[str, str]:
    """The test process's environment without any LAB_ knob a developer may have exported, plus `overrides`
    (an override of None removes the variable)."""
    dropped = {"PROMETHEUS_MULTIPROC_DIR", "LOCUST_SKIP_MONKEY_PATCH"}  # the latter is the test process's own
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAB_") and k not in dropped}
    env.update(overrides)
    return {k: v for k, v in env.items() if v is not None}


@dataclass
class RunningApi:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def worker_pids(self) -> list[int]:
        return sorted(child.pid for child in psutil.Process(self.process.pid).children())

    def cpu_seconds(self) -> float:
        """CPU time used so far by gunicorn and its workers."""
        total = 0.0
        master = psutil.Process(self.process.pid)
        for process in [master, *master.children()]:
            with contextlib.suppress(psutil.NoSuchProcess):
                times = process.cpu_times()
                total += times.user + times.system
        return total

    def metrics(self) -> str:
        response = httpx2.get(f"{self.url}/metrics", timeout=10)
        response.raise_for_status()
        return response.text


def start_gunicorn(
    workdir: Path, model_dir: Path, workers: int, cores: int | str | None = None, **env: str | None
) -> tuple[subprocess.Popen[bytes], Path, str]:
    """Launch gunicorn as `make api` does (on the given CPU cores, if any); return the process, its log file
    and its base URL, not yet ready. `env` sets LAB_ knobs; any the caller's environment had are dropped."""
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
    return process, log, f"http://127.0.0.1:{port}"


@contextmanager
def running_api(
    workdir: Path, model_dir: Path, workers: int = 2, cores: int | str | None = None, **env: str
) -> Iterator[RunningApi]:
    """The API under gunicorn with `workers` workers, each with its models loaded and warmed up."""
    process, log, url = start_gunicorn(workdir, model_dir, workers, cores, **env)
    api = RunningApi(url, process, log)

    def all_workers_ready() -> bool:
        assert process.poll() is None, f"gunicorn exited with {process.returncode}:\n{api.output()}"
        return api.output().count("Application startup complete") >= workers

    try:
        wait_for(all_workers_ready, timeout=60, what=f"{workers} gunicorn workers to be ready")
        wait_for(lambda: httpx2.get(f"{url}/readyz", timeout=2).status_code == 200, 10, "/readyz")
        yield api
    finally:
        stop(process)


def stop(process: subprocess.Popen[bytes], timeout: float = 40) -> int:
    """SIGTERM (gunicorn's graceful stop), then SIGKILL to the whole group if it does not exit in time."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)
    return process.returncode
