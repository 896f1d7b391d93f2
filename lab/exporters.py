"""The host's exporters natively, for a lab pointed at a learner's own service (docs/own-api.md): Debian's
Prometheus node exporter (the host's CPU and memory) and process exporter (the service's processes, one group per
process whose command line matches a pattern), each on a free 127.0.0.1 port."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx2

from lab.errors import LabError
from lab.paths import REPO
from lab.polling import wait_for
from lab.ports import free_port
from lab.processes import find_tool, stop

EXPORTERS_DIR = REPO / "exporters"
PROCESS_CONFIG = EXPORTERS_DIR / "process-exporter.yml"
OWN_API_FILE = REPO / "own-api.yaml"
# The node exporter's collectors: only what the lab reads (CPU, memory) and the load, not the host's every detail.
NODE_COLLECTORS = ("cpu", "meminfo", "loadavg")


def default_target_process() -> str:
    """The pattern own-api.yaml gives LAB_TARGET_PROCESS when it is not set: read from that file, never copied."""
    (pattern,) = re.findall(r"\$\{LAB_TARGET_PROCESS:-([^}]*)\}", OWN_API_FILE.read_text())
    return pattern


def process_exporter_config(pattern: str) -> str:
    """exporters/process-exporter.yml with `pattern` in place: the regular expression of the service's command lines."""
    try:
        re.compile(pattern)
    except re.error as error:
        raise LabError(f"LAB_TARGET_PROCESS={pattern!r} is not a regular expression: {error}") from error
    return PROCESS_CONFIG.read_text().replace("@LAB_TARGET_PROCESS@", pattern.replace("'", "''"))


@dataclass
class RunningExporter:
    address: str  # host:port, as a Prometheus target
    process: subprocess.Popen[bytes]
    log: Path


@contextmanager
def running_exporter(workdir: Path, name: str, command: list[str], listen_flag: str) -> Iterator[RunningExporter]:
    """`command` listening on a free 127.0.0.1 port (given with `listen_flag`), once its /metrics answers."""
    address = f"127.0.0.1:{free_port()}"
    log = workdir / f"{name}.log"
    process = subprocess.Popen(
        [*command, f"{listen_flag}={address}"], stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True
    )

    def answers() -> bool:
        if process.poll() is not None:
            raise LabError(f"{name} exited:\n{log.read_text()[-2000:]}")
        return httpx2.get(f"http://{address}/metrics", timeout=2).status_code == 200

    try:
        wait_for(answers, 30, f"the {name} to answer")
        yield RunningExporter(address, process, log)
    finally:
        stop(process)


def cpu_limit_textfile(cpus: float) -> str:
    """The node exporter's textfile for LAB_TARGET_CPUS, as exporters/start-node-exporter.sh writes it."""
    if cpus <= 0:
        raise LabError(f"LAB_TARGET_CPUS={cpus}: the cores the service may use, more than 0")
    return (
        "# HELP lab_target_cpu_limit_cores The cores the service under test may use (LAB_TARGET_CPUS).\n"
        f"# TYPE lab_target_cpu_limit_cores gauge\nlab_target_cpu_limit_cores {cpus:g}\n"
    )


@contextmanager
def host_exporters(
    workdir: Path, pattern: str | None = None, cpus: float | None = None
) -> Iterator[tuple[RunningExporter, RunningExporter]]:
    """The node exporter (with the service's CPU limit, `cpus` cores, when given: else its CPU is judged against the
    host's cores) and the process exporter (the service's processes: command lines matching `pattern`,
    own-api.yaml's default if None), both answering."""
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "process-exporter.yml"
    config.write_text(process_exporter_config(pattern or default_target_process()))
    textfiles = workdir / "textfile"
    textfiles.mkdir(exist_ok=True)
    if cpus is not None:
        (textfiles / "lab_target.prom").write_text(cpu_limit_textfile(cpus))
    node = [find_tool("prometheus-node-exporter", "prometheus-node-exporter"), "--collector.disable-defaults",
            *(f"--collector.{name}" for name in NODE_COLLECTORS), "--collector.textfile",
            f"--collector.textfile.directory={textfiles}"]  # fmt: skip
    process = [find_tool("prometheus-process-exporter", "prometheus-process-exporter"), "-config.path", str(config),
               "-threads=false"]  # fmt: skip
    with (
        running_exporter(workdir, "node exporter", node, "--web.listen-address") as node_exporter,
        running_exporter(workdir, "process exporter", process, "-web.listen-address") as process_exporter,
    ):
        yield node_exporter, process_exporter
