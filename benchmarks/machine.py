"""What the numbers were measured on, and how busy the machine was: another job on it (a build, a test run, a
neighbour on a shared VM) makes every figure noisy, so the report says so."""

from __future__ import annotations

import os
import platform
import subprocess
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import psutil

from lab.processes import clean_env

BUSY_MACHINE_PCT = 10.0  # CPU use by others above which the report warns that its numbers are noisy
SERVER_PACKAGES = ("gunicorn", "uvicorn", "fastapi", "scikit-learn", "onnxruntime", "prometheus-client")


@dataclass
class CpuUse:
    """How busy the whole machine was over a short window, whoever used it."""

    busy_pct: float  # of all CPUs together
    steal_pct: float  # taken by the hypervisor from this virtual machine
    load_average: tuple[float, float, float]

    @classmethod
    def from_shares(cls, shares: Any, load_average: tuple[float, float, float]) -> CpuUse:
        """From psutil's `cpu_times_percent()`: busy is everything but idle and waiting for I/O (a CPU waiting
        for a disk could run something else); steal exists on Linux only."""
        idle = shares.idle + getattr(shares, "iowait", 0.0)
        return cls(
            busy_pct=round(100.0 - idle, 1),
            steal_pct=round(getattr(shares, "steal", 0.0), 1),
            load_average=load_average,
        )


def cpu_use(window: float = 1.0) -> CpuUse:
    """The machine's CPU use over `window` seconds (a measurement window, not a wait)."""
    return CpuUse.from_shares(psutil.cpu_times_percent(interval=window), os.getloadavg())


@dataclass
class Machine:
    """What the numbers were measured on."""

    nproc: int
    cpu_model: str
    kernel: str
    python: str
    wrk: str
    packages: dict[str, str]
    before: CpuUse
    after: CpuUse | None = None
    governor: str = "unknown"  # the CPU frequency governor, where the kernel shows it (a VM often does not)


def governor() -> str:
    """The first core's cpufreq scaling governor (performance, powersave, ...), or why it is unknown."""
    try:
        return Path("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor").read_text().strip()
    except OSError:
        return "not exposed (no cpufreq: usual on a VM)"


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo (the first core's); psutil does not know it."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def wrk_version() -> str:
    """wrk's version line (`wrk --version` prints it, then its usage, and exits non-zero)."""
    try:
        result = subprocess.run(["wrk", "--version"], capture_output=True, text=True, env=clean_env(), check=False)
    except FileNotFoundError:
        return "wrk not installed"  # only the wrk benchmarks need it (benchmarks.harness.require_tools says so)
    first = (result.stdout or result.stderr).strip().splitlines()
    return first[0].split(" Copyright")[0].strip() if first else "unknown"


def package_versions(names: tuple[str, ...] = SERVER_PACKAGES) -> dict[str, str]:
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def describe_machine() -> Machine:
    """nproc, CPU, kernel, Python, wrk and the server's package versions, and how busy the CPUs are now."""
    return Machine(
        nproc=len(os.sched_getaffinity(0)),
        cpu_model=cpu_model(),
        kernel=platform.release(),
        python=platform.python_version(),
        wrk=wrk_version(),
        packages=package_versions(),
        before=cpu_use(),
        governor=governor(),
    )


def busy_warnings(machine: Machine) -> list[str]:
    """A warning for each moment (before, after the run) the machine was busy with something else."""
    return [
        f"the machine was {use.busy_pct:.0f}% busy {when} the run (other processes): the numbers are noisy"
        for when, use in (("before", machine.before), ("after", machine.after))
        if use is not None and use.busy_pct > BUSY_MACHINE_PCT
    ]
