"""Real Locust processes on 127.0.0.1 (a master and its workers), and the master's web API, which the Locust UI
uses: its stats, and the start and stop buttons."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx2

from lab.errors import LabError, WaitTimeout
from lab.exposition import parse
from lab.paths import BIN, LOCUST_DIR
from lab.polling import wait_for
from lab.ports import free_port
from lab.processes import clean_env, pinned, stop

T = TypeVar("T")
USER_CLASSES = ("CreditRiskUser", "HousePriceUser")


@dataclass
class LocustWeb:
    """A Locust master's web API, as the UI's buttons use it."""

    url: str

    def stats(self) -> dict[str, Any]:
        """Locust's own view of the run: state, users, and per-request statistics."""
        return httpx2.get(f"{self.url}/stats/requests", timeout=5).json()

    def state(self) -> str:
        return self.stats()["state"]

    def start(self, host: str, **form: Any) -> None:
        """What the start button sends: users, spawn rate, and any of the lab's options."""
        data = {"host": host, "user_classes": list(USER_CLASSES), **form}
        response = httpx2.post(f"{self.url}/swarm", data=data, timeout=10)
        if response.status_code != 200 or not response.json().get("success"):
            raise LabError(f"Locust refused the swarm: {response.status_code} {response.text[:300]}")
        wait_for(lambda: self.state() in {"spawning", "running"}, 30, "the swarm to start", 0.5)

    def stop(self) -> None:
        """What the stop button does; returns once Locust says it stopped."""
        httpx2.post(f"{self.url}/stop", timeout=10).raise_for_status()
        wait_for(lambda: self.state() == "stopped", 30, "the swarm to stop", 0.5)

    def swarm(self, host: str, users: int, spawn_rate: float, seconds: int, **form: Any) -> None:
        """A bounded swarm: start it, then wait for Locust to stop it by itself after `seconds`."""
        self.start(host, user_count=users, spawn_rate=spawn_rate, run_time=f"{seconds}s", **form)
        wait_for(lambda: self.state() == "stopped", seconds + 60, "the swarm to stop by itself", 1)


@dataclass
class LocustRun:
    master: subprocess.Popen[bytes]
    workers: list[subprocess.Popen[bytes]]
    web_url: str
    exporter_url: str
    csv_prefix: Path
    master_port: int  # where workers connect (127.0.0.1)
    logs: list[Path] = field(default_factory=list)

    @property
    def web(self) -> LocustWeb:
        return LocustWeb(self.web_url)

    def exporter(self) -> dict:
        return parse(httpx2.get(self.exporter_url, timeout=5).text)

    def stats(self) -> dict:
        return self.web.stats()

    def wait(self, condition: Callable[[], T | None], timeout: float, what: str) -> T:
        """wait_for, failing with the Locust processes' logs attached."""
        try:
            return wait_for(condition, timeout, what)
        except WaitTimeout as error:
            raise WaitTimeout(f"{error}\n{self.output()}") from None

    def output(self) -> str:
        return "\n".join(f"--- {log.name}\n{log.read_text(errors='replace')[-4000:]}" for log in self.logs)


def start_locust(command: Sequence[str], log: Path, cores: str | None = None, **env: str) -> subprocess.Popen[bytes]:
    """`locust COMMAND...` in locust/ (on the given CPU cores, if any), its output to `log`."""
    return subprocess.Popen(
        pinned([str(BIN / "locust"), *command], cores),
        cwd=LOCUST_DIR,
        env=clean_env(**env),
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


@contextmanager
def distributed_locust(
    workdir: Path,
    host: str,
    workers: int,
    master_args: Sequence[str],
    locustfile: str = "locustfile.py",
    cores: str | None = None,
    **env: str,
) -> Iterator[LocustRun]:
    """A master (web UI and exporter on free ports) and `workers` worker processes, all on the given CPU cores
    if any (away from a pinned API)."""
    workdir.mkdir(parents=True, exist_ok=True)
    master_port, web_port, exporter_port = free_port(), free_port(), free_port()
    csv_prefix = workdir / "run"
    master_log = workdir / "master.log"
    master = start_locust(
        [
            "-f", locustfile, "--master", "--master-bind-host", "127.0.0.1", "--master-bind-port", str(master_port),
            *(["--expect-workers", str(workers)] if workers else []),  # none: workers join from elsewhere
            "--web-host", "127.0.0.1", "--web-port", str(web_port),
            "--exporter-port", str(exporter_port), "-H", host, "--csv", str(csv_prefix), *master_args,
        ],
        master_log,
        cores,
        **env,
    )  # fmt: skip
    run = LocustRun(
        master, [], f"http://127.0.0.1:{web_port}", f"http://127.0.0.1:{exporter_port}/metrics", csv_prefix, master_port
    )
    run.logs.append(master_log)
    with ExitStack() as cleanup:
        cleanup.callback(stop, master)
        for i in range(workers):
            log = workdir / f"worker-{i}.log"
            worker = start_locust(
                ["-f", locustfile, "--worker", "--master-host", "127.0.0.1", "--master-port", str(master_port)],
                log,
                cores,
                **env,
            )
            cleanup.callback(stop, worker)
            run.workers.append(worker)
            run.logs.append(log)
        yield run
