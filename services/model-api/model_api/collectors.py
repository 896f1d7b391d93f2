"""Metrics computed when Prometheus scrapes: the container's cgroup, the gunicorn workers, the build.

They are read at scrape time rather than sampled, so they are never stale and cost nothing between scrapes.
The worker that answers a scrape reads them for the whole container and all its sibling workers.

Natively (no container, no CPU limit) the process's cgroup is shared with everything else the user runs,
Locust included, so the "container" figures are then those of the API's own processes instead.
"""

from __future__ import annotations

import os
import socket
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from model_api.metrics import SCRAPE_TIME_FAMILIES

CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC_SELF_CGROUP = Path("/proc/self/cgroup")
# cgroup v1 reports "no memory limit" as a huge page-aligned number rather than "max".
_V1_UNLIMITED = 1 << 60


@dataclass(frozen=True)
class CgroupReading:
    """One reading of the container's CPU and memory accounting. None where the kernel does not say."""

    version: str  # "v2", "v1" or "none"
    cpu_usage_seconds: float | None
    cpu_limit_cores: float
    cpu_limited: bool
    periods: int | None
    throttled_periods: int | None
    throttled_seconds: float | None
    memory_usage_bytes: int | None
    memory_limit_bytes: int
    memory_limited: bool
    oom_kills: int | None = None  # processes the kernel's OOM killer has killed in this cgroup


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _keyed(text: str | None) -> dict[str, int]:
    """Parse `key value` lines (cpu.stat, memory.events, memory.oom_control)."""
    pairs = (line.split() for line in (text or "").splitlines())
    return {fields[0]: int(fields[1]) for fields in pairs if len(fields) == 2 and fields[1].lstrip("-").isdigit()}


def _working_set(usage: str | None, stat: str | None, inactive_file: str) -> int | None:
    """The cgroup's memory use less the file cache it can drop at once (the kernel's inactive file pages).

    This is the working set that `docker stats`, cAdvisor and the kubelet report: the cgroup's own count also holds
    the page cache of every file the container read (the Python libraries, the model files), which the kernel
    reclaims before the OOM killer kills, so against the limit it would read "nearly full" long before it is.
    """
    if not (usage and usage.isdigit()):
        return None
    return max(int(usage) - _keyed(stat).get(inactive_file, 0), 0)


def _own_paths(proc_self_cgroup: Path) -> dict[str, str]:
    """Controller -> this process's cgroup path, from /proc/self/cgroup ("" is the v2 unified entry)."""
    paths: dict[str, str] = {}
    for line in (_read(proc_self_cgroup) or "").splitlines():
        _, controllers, path = line.split(":", 2)
        for controller in controllers.split(",") if controllers else [""]:
            paths[controller] = path
    return paths


def _cgroup_dir(mount: Path, own_path: str | None) -> Path:
    # Inside a container with its own cgroup namespace the mount is already the container's cgroup and the
    # path may name a host folder that is not visible here; natively the path leads to the process's cgroup.
    if own_path and own_path != "/":
        candidate = mount / own_path.lstrip("/")
        if candidate.is_dir():
            return candidate
    return mount


def usable_cores() -> float:
    """The cores this process may run on: its CPU affinity (taskset, --cpuset-cpus), else all the host's."""
    try:
        return float(len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not on Linux
        return float(os.cpu_count() or 1)


def read_cgroup(
    root: Path = CGROUP_ROOT,
    proc_self_cgroup: Path = PROC_SELF_CGROUP,
    host_cores: float | None = None,
    host_memory: int | None = None,
) -> CgroupReading:
    """Read cgroup v2, or v1 where v2 is absent; without a limit, the usable cores and host memory stand in."""
    host_cores = host_cores or usable_cores()
    host_memory = host_memory or psutil.virtual_memory().total
    own = _own_paths(proc_self_cgroup)
    if (root / "cgroup.controllers").is_file():
        return _read_v2(_cgroup_dir(root, own.get("")), host_cores, host_memory)
    if (root / "cpu").is_dir() or (root / "cpuacct").is_dir() or (root / "memory").is_dir():
        return _read_v1(root, own, host_cores, host_memory)
    return CgroupReading("none", None, host_cores, False, None, None, None, None, host_memory, False)


def _read_v2(group: Path, host_cores: float, host_memory: int) -> CgroupReading:
    stat = _keyed(_read(group / "cpu.stat"))
    quota, _, period = (_read(group / "cpu.max") or "max 100000").partition(" ")
    limited = quota != "max" and period.isdigit() and int(period) > 0
    memory_max = _read(group / "memory.max")
    memory_limited = bool(memory_max and memory_max.isdigit())
    memory_current = _working_set(_read(group / "memory.current"), _read(group / "memory.stat"), "inactive_file")
    return CgroupReading(
        version="v2",
        cpu_usage_seconds=stat["usage_usec"] / 1e6 if "usage_usec" in stat else None,
        cpu_limit_cores=int(quota) / int(period) if limited else host_cores,
        cpu_limited=limited,
        periods=stat.get("nr_periods"),
        throttled_periods=stat.get("nr_throttled"),
        throttled_seconds=stat["throttled_usec"] / 1e6 if "throttled_usec" in stat else None,
        memory_usage_bytes=memory_current,
        memory_limit_bytes=min(int(memory_max), host_memory) if memory_limited else host_memory,
        memory_limited=memory_limited,
        oom_kills=_keyed(_read(group / "memory.events")).get("oom_kill"),
    )


def _v1_dir(root: Path, own: dict[str, str], *names: str) -> Path:
    for name in names:  # cpu and cpuacct are often mounted together as "cpu,cpuacct"
        if (root / name).is_dir():
            return _cgroup_dir(root / name, own.get(name.split(",")[0]))
    return root / names[0]


def _read_v1(root: Path, own: dict[str, str], host_cores: float, host_memory: int) -> CgroupReading:
    cpu = _v1_dir(root, own, "cpu", "cpu,cpuacct")
    cpuacct = _v1_dir(root, own, "cpuacct", "cpu,cpuacct")
    memory = _v1_dir(root, own, "memory")
    quota = _read(cpu / "cpu.cfs_quota_us")
    period = _read(cpu / "cpu.cfs_period_us")
    limited = bool(quota and period and quota.isdigit() and int(quota) > 0 and period.isdigit())
    stat = _keyed(_read(cpu / "cpu.stat"))
    usage = _read(cpuacct / "cpuacct.usage")
    memory_limit = _read(memory / "memory.limit_in_bytes")
    memory_limited = bool(memory_limit and memory_limit.isdigit() and int(memory_limit) < _V1_UNLIMITED)
    memory_usage = _working_set(
        _read(memory / "memory.usage_in_bytes"), _read(memory / "memory.stat"), "total_inactive_file"
    )
    return CgroupReading(
        version="v1",
        cpu_usage_seconds=int(usage) / 1e9 if usage and usage.isdigit() else None,
        cpu_limit_cores=int(quota) / int(period) if limited else host_cores,
        cpu_limited=limited,
        periods=stat.get("nr_periods"),
        throttled_periods=stat.get("nr_throttled"),
        throttled_seconds=stat["throttled_time"] / 1e9 if "throttled_time" in stat else None,
        memory_usage_bytes=memory_usage,
        memory_limit_bytes=min(int(memory_limit), host_memory) if memory_limited else host_memory,
        memory_limited=memory_limited,
        oom_kills=_keyed(_read(memory / "memory.oom_control")).get("oom_kill"),  # since Linux 4.13
    )


def _family(name: str, value: float | None = None, **labels: str) -> Metric:
    kind, label_names, documentation = SCRAPE_TIME_FAMILIES[name]
    base = name.removesuffix("_total") if kind == "counter" else name
    family_class = CounterMetricFamily if kind == "counter" else GaugeMetricFamily
    family = family_class(base, documentation, labels=list(label_names))
    if value is not None:
        family.add_metric([labels[label] for label in label_names], value)
    return family


@dataclass(frozen=True)
class ProcessUsage:
    cpu_seconds: float
    resident_bytes: int


def process_tree_usage(root_pid: int) -> ProcessUsage:
    """CPU time and resident memory of a process and its descendants.

    The CPU time of children that have exited counts too: the kernel adds it to the parent's once the parent has
    reaped them, as the gunicorn master does with the workers it replaces. Resident memory is summed, so pages
    the workers share with the master after the fork are counted once per process (an upper bound).
    """
    root = psutil.Process(root_pid)
    reaped = root.cpu_times()
    cpu, resident = reaped.children_user + reaped.children_system, 0
    tree, index = [root_pid], 0
    while index < len(tree):
        tree += children(tree[index])
        index += 1
    for pid in tree:
        try:
            process = psutil.Process(pid)
            with process.oneshot():
                times = process.cpu_times()
                rss = process.memory_info().rss
        except psutil.Error:
            continue  # exited between listing and reading: its master counts it once reaped
        cpu += times.user + times.system
        resident += rss
    return ProcessUsage(cpu, resident)


def gunicorn_master_pid() -> int:
    return os.getppid()


def this_pid() -> int:
    return os.getpid()


class ContainerCollector:
    """CPU and memory of the container, read from its cgroup files.

    Where the cgroup sets no CPU (or memory) limit, the API is not alone in it (a native run shares the user's
    cgroup with Locust and the rest): usage is then that of the API's own process tree, and the CPU it may use is
    its usable cores.
    """

    def __init__(
        self, read: Callable[[], CgroupReading] = read_cgroup, api_root_pid: Callable[[], int] = this_pid
    ) -> None:
        self._read = read
        self._api_root_pid = api_root_pid

    def describe(self) -> list[Metric]:
        return []  # nothing to register up front; avoids a read at registration

    def collect(self) -> Iterator[Metric]:
        reading = self._read()
        cpu_seconds, memory_bytes = reading.cpu_usage_seconds, reading.memory_usage_bytes
        if not (reading.cpu_limited and reading.memory_limited):
            own = self._own_usage()
            if not reading.cpu_limited:
                cpu_seconds = own.cpu_seconds if own else None
            if not reading.memory_limited:
                memory_bytes = own.resident_bytes if own else None
        yield _family("lab_container_cpu_usage_seconds_total", cpu_seconds)
        yield _family("lab_container_cpu_limit_cores", reading.cpu_limit_cores)
        yield _family("lab_container_cpu_periods_total", reading.periods)
        yield _family("lab_container_cpu_throttled_periods_total", reading.throttled_periods)
        yield _family("lab_container_cpu_throttled_seconds_total", reading.throttled_seconds)
        yield _family("lab_container_memory_usage_bytes", memory_bytes)
        yield _family("lab_container_memory_limit_bytes", reading.memory_limit_bytes)
        # Only the API's own cgroup: natively, an unlimited cgroup is the user's session, whose OOM kills (a browser
        # tab) say nothing about the API.
        yield _family("lab_container_oom_kills_total", reading.oom_kills if reading.memory_limited else None)

    def _own_usage(self) -> ProcessUsage | None:
        try:
            return process_tree_usage(self._api_root_pid())
        except psutil.Error:
            return None


def children(pid: int, proc: Path = Path("/proc")) -> list[int]:
    """The pids of a process's children, from its own list (Linux's /proc/PID/task/PID/children, one small file)
    where the kernel keeps one: psutil finds children by reading every process's status, several milliseconds
    a scrape. Empty when the process is gone."""
    try:
        return [int(child) for child in (proc / str(pid) / "task" / str(pid) / "children").read_text().split()]
    except (OSError, ValueError):
        pass
    try:
        return [child.pid for child in psutil.Process(pid).children()]
    except psutil.Error:
        return []


def gunicorn_worker_pids(proc: Path = Path("/proc")) -> list[int]:
    """The pids of this worker and its siblings: every child of the gunicorn master that forked us."""
    return children(os.getppid(), proc) or [os.getpid()]


def this_process() -> list[int]:
    return [os.getpid()]


class WorkerCollector:
    """CPU seconds and resident memory of each live worker process, and how many are live."""

    def __init__(self, worker_pids: Callable[[], list[int]] = this_process) -> None:
        self._worker_pids = worker_pids

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        cpu = _family("lab_worker_cpu_seconds_total")
        memory = _family("lab_worker_resident_memory_bytes")
        live = 0
        for pid in self._worker_pids():
            try:
                process = psutil.Process(pid)
                with process.oneshot():
                    times = process.cpu_times()
                    rss = process.memory_info().rss
            except psutil.Error:
                continue  # exited between listing and reading: it is simply not live any more
            live += 1
            cpu.add_metric([str(pid)], times.user + times.system)
            memory.add_metric([str(pid)], rss)
        yield _family("lab_workers", live)
        yield cpu
        yield memory


# struct tcp_info (linux/tcp.h): eight one-byte fields, then u32 rto, ato, snd_mss, rcv_mss, unacked. For a listening
# socket the kernel reports its accept queue's length as tcpi_unacked.
_TCP_INFO = getattr(socket, "TCP_INFO", 11)  # Linux's number, where Python does not name it
_UNACKED_OFFSET = 8 + 4 * 4


def _accept_queue(fd: int) -> int | None:
    """The accept queue of the socket at `fd` if it is a listening TCP socket, else None."""
    try:
        sock = socket.socket(fileno=os.dup(fd))
    except OSError:
        return None  # closed since it was listed, or not a socket
    try:
        if sock.family not in (socket.AF_INET, socket.AF_INET6) or sock.type != socket.SOCK_STREAM:
            return None
        if not sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
            return None
        info = sock.getsockopt(socket.IPPROTO_TCP, _TCP_INFO, 104)
        return struct.unpack_from("=I", info, _UNACKED_OFFSET)[0]
    except OSError:
        return None
    finally:
        sock.close()  # the duplicate only: the listener itself stays open


def listen_queue(fd_dir: Path = Path("/proc/self/fd")) -> int | None:
    """Connections waiting in the accept queue of the listening sockets this process holds (gunicorn's, which
    every worker inherits), asked of the kernel for each of this process's sockets (TCP_INFO). None when the
    process listens on no TCP socket (a test client).

    Reading /proc/net/tcp instead costs a scrape several milliseconds under load: the kernel writes a line for
    every socket of the network namespace."""
    waiting, listening = 0, False
    for entry in fd_dir.iterdir():
        try:
            if not os.readlink(entry).startswith("socket:["):
                continue
        except OSError:
            continue  # closed between listing and reading
        queue = _accept_queue(int(entry.name))
        if queue is not None:
            listening = True
            waiting += queue
    return waiting if listening else None


class ServiceCollector:
    """What this API runs and judges by: `lab_build_info` (code, model, workload style), `lab_slo_seconds`, and
    its accept queue (`lab_listen_queue_connections`), connections no worker has taken yet."""

    def __init__(self, labels: dict[str, str], slo_seconds: float, queue: Callable[[], int | None] = listen_queue):
        self._labels = labels
        self._slo_seconds = slo_seconds
        self._queue = queue

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        yield _family("lab_build_info", 1, **self._labels)
        yield _family("lab_slo_seconds", self._slo_seconds)
        yield _family("lab_listen_queue_connections", self._queue())
