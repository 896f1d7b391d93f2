"""Start a real Locust master and worker processes on 127.0.0.1 (never mocked), and read what they report."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx2

from tests.support.metrics import parse
from tests.support.processes import BIN, REPO, clean_env, free_port, pinned, stop
from tests.support.waiting import wait_for

LOCUST_DIR = REPO / "locust"


@dataclass
class LocustRun:
    master: subprocess.Popen[bytes]
    workers: list[subprocess.Popen[bytes]]
    web_url: str
    exporter_url: str
    csv_prefix: Path
    logs: list[Path] = field(default_factory=list)

    def exporter(self) -> dict:
        return parse(httpx2.get(self.exporter_url, timeout=5).text)

    def stats(self) -> dict:
        """Locust's own view of the run, from its web UI's JSON."""
        return httpx2.get(f"{self.web_url}/stats/requests", timeout=5).json()

    def wait(self, condition, timeout: float, what: str):
        """wait_for, failing with the Locust processes' logs attached."""
        try:
            return wait_for(condition, timeout, what)
        except TimeoutError as error:
            raise TimeoutError(f"{error}\n{self.output()}") from None

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
    """A master (web UI and exporter on free ports, autostarted) and `workers` worker processes, all on the
    given CPU cores if any (away from a pinned API)."""
    workdir.mkdir(parents=True, exist_ok=True)
    master_port, web_port, exporter_port = free_port(), free_port(), free_port()
    csv_prefix = workdir / "run"
    master_log = workdir / "master.log"
    master = start_locust(
        [
            "-f", locustfile, "--master", "--master-bind-host", "127.0.0.1", "--master-bind-port", str(master_port),
            "--expect-workers", str(workers), "--web-host", "127.0.0.1", "--web-port", str(web_port),
            "--exporter-port", str(exporter_port), "-H", host, "--csv", str(csv_prefix), *master_args,
        ],
        master_log,
        cores,
        **env,
    )  # fmt: skip
    run = LocustRun(master, [], f"http://127.0.0.1:{web_port}", f"http://127.0.0.1:{exporter_port}/metrics", csv_prefix)
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
