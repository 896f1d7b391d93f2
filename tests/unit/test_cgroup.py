"""Reading the container's CPU and memory accounting from cgroup v2, or v1 where v2 is absent."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from lab.exposition import parse
from model_api.collectors import ContainerCollector, process_tree_usage, read_cgroup, usable_cores

FIXTURES = Path(__file__).parent / "fixtures" / "cgroup"
HOST_CORES = 8.0
HOST_MEMORY = 32 * 2**30


def reading(name: str):
    root = FIXTURES / name
    return read_cgroup(root, root / "proc-self-cgroup", host_cores=HOST_CORES, host_memory=HOST_MEMORY)


def test_v2_with_limits_gives_usage_quota_throttling_and_memory():
    r = reading("v2-limited")

    assert r.version == "v2"
    assert r.cpu_usage_seconds == pytest.approx(123.456789)
    assert r.cpu_limit_cores == 1.5
    assert r.cpu_limited
    assert (r.periods, r.throttled_periods) == (5000, 1200)
    assert r.throttled_seconds == pytest.approx(45.0)
    # memory.current less memory.stat's inactive_file: the page cache the kernel drops before it kills anything
    assert (r.memory_usage_bytes, r.memory_limit_bytes, r.memory_limited) == (224 * 2**20, 512 * 2**20, True)
    assert r.oom_kills == 2  # memory.events: oom_kill, not oom (the times the limit was hit)


def test_v2_without_limits_falls_back_to_the_hosts_cores_and_memory():
    r = reading("v2-unlimited")

    assert r.cpu_usage_seconds == pytest.approx(2.0)
    assert (r.cpu_limit_cores, r.cpu_limited) == (HOST_CORES, False)
    assert (r.memory_limit_bytes, r.memory_limited) == (HOST_MEMORY, False)
    assert r.periods is None  # the cpu controller is off: the kernel does not count periods
    assert r.oom_kills is None  # no memory.events: unknown, not zero
    assert r.throttled_seconds is None


def test_v2_on_a_host_reads_the_processs_own_cgroup_not_the_root():
    r = reading("v2-nested")

    assert r.cpu_usage_seconds == pytest.approx(4.0)
    assert r.cpu_limit_cores == 2.0
    assert r.throttled_seconds == pytest.approx(0.3)


def test_v1_with_limits_converts_nanoseconds_and_quota():
    r = reading("v1-limited")

    assert r.version == "v1"
    assert r.cpu_usage_seconds == pytest.approx(61.0)
    assert (r.cpu_limit_cores, r.cpu_limited) == (1.0, True)
    assert (r.periods, r.throttled_periods) == (800, 300)
    assert r.throttled_seconds == pytest.approx(9.0)
    # usage_in_bytes less the hierarchy's total_inactive_file (not this cgroup's own inactive_file alone)
    assert (r.memory_usage_bytes, r.memory_limit_bytes) == (600 * 2**20, 2**30)
    assert r.oom_kills == 1  # memory.oom_control's oom_kill line


def test_v1_unlimited_with_cpu_and_cpuacct_mounted_together():
    r = reading("v1-unlimited")

    assert r.cpu_usage_seconds == pytest.approx(5.0)
    assert (r.cpu_limit_cores, r.cpu_limited) == (HOST_CORES, False)
    assert (r.memory_limit_bytes, r.memory_limited) == (HOST_MEMORY, False)


def test_no_cgroup_at_all_reports_the_host(tmp_path):
    r = read_cgroup(tmp_path, tmp_path / "missing", host_cores=HOST_CORES, host_memory=HOST_MEMORY)

    assert r.version == "none"
    assert r.cpu_usage_seconds is None
    assert (r.cpu_limit_cores, r.memory_limit_bytes) == (HOST_CORES, HOST_MEMORY)


def test_the_collector_exposes_a_reading_as_prometheus_families():
    registry = CollectorRegistry()
    registry.register(ContainerCollector(lambda: reading("v1-limited")))

    samples = parse(generate_latest(registry).decode())

    assert samples[("lab_container_cpu_usage_seconds_total", ())] == pytest.approx(61.0)
    assert samples[("lab_container_cpu_limit_cores", ())] == 1.0
    assert samples[("lab_container_cpu_throttled_periods_total", ())] == 300
    assert samples[("lab_container_memory_limit_bytes", ())] == 2**30
    assert samples[("lab_container_oom_kills_total", ())] == 1


def test_the_collector_leaves_out_what_the_kernel_does_not_report():
    registry = CollectorRegistry()
    registry.register(ContainerCollector(lambda: reading("v2-unlimited")))

    names = {name for name, _ in parse(generate_latest(registry).decode())}

    assert "lab_container_cpu_usage_seconds_total" in names
    assert "lab_container_cpu_throttled_seconds_total" not in names
    assert "lab_container_oom_kills_total" not in names


def test_this_machine_can_be_read():
    r = read_cgroup()

    assert r.cpu_limit_cores > 0
    assert r.memory_limit_bytes > 0


def test_without_limits_the_collector_reports_the_apis_own_processes_not_the_shared_cgroup():
    # Natively the cgroup is the user's, shared with Locust: its 2 s of CPU (fixture) are not the API's.
    collector = ContainerCollector(lambda: reading("v2-unlimited"), api_root_pid=os.getpid)
    before = process_tree_usage(os.getpid())

    samples = parse(generate_latest_of(collector))

    after = process_tree_usage(os.getpid())
    assert before.cpu_seconds <= samples[("lab_container_cpu_usage_seconds_total", ())] <= after.cpu_seconds
    memory = samples[("lab_container_memory_usage_bytes", ())]
    assert memory == pytest.approx(after.resident_bytes, rel=0.2)
    assert samples[("lab_container_cpu_limit_cores", ())] == HOST_CORES


def test_with_limits_the_collector_keeps_the_cgroups_figures():
    collector = ContainerCollector(lambda: reading("v1-limited"), api_root_pid=os.getpid)

    samples = parse(generate_latest_of(collector))

    assert samples[("lab_container_cpu_usage_seconds_total", ())] == pytest.approx(61.0)
    assert samples[("lab_container_memory_usage_bytes", ())] == 600 * 2**20


def test_without_a_limit_the_cpu_is_counted_against_the_cores_the_process_may_run_on():
    assert usable_cores() == len(os.sched_getaffinity(0))
    assert read_cgroup(FIXTURES / "v2-unlimited", FIXTURES / "v2-unlimited" / "proc-self-cgroup").cpu_limit_cores == (
        usable_cores()
    )


def generate_latest_of(collector: ContainerCollector) -> str:
    registry = CollectorRegistry()
    registry.register(collector)
    return generate_latest(registry).decode()


@pytest.mark.parametrize("proc", ["/proc", "/nonexistent"], ids=["the master's children file", "psutil's scan"])
def test_a_worker_finds_itself_and_its_siblings_among_its_parents_children(proc):
    """Run in a child of this process, as a gunicorn worker is a child of the master, beside two siblings."""
    siblings = [subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]) for _ in range(2)]
    program = "from pathlib import Path; from model_api.collectors import gunicorn_worker_pids as pids; "
    program += f"print(pids(Path({proc!r})))"
    try:
        worker = subprocess.Popen([sys.executable, "-c", program], stdout=subprocess.PIPE, text=True)
        output, _ = worker.communicate(timeout=60)
    finally:
        for sibling in siblings:
            sibling.kill()
            sibling.wait()

    assert set(ast.literal_eval(output.strip())) == {worker.pid, *(sibling.pid for sibling in siblings)}
