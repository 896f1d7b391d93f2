"""How many requests per second one Locust process can send, and the CPU it needs for them.

    python -m benchmarks.locust_bench [--seconds 15] [--users 50]      (or `make bench-locust`)

The target is nginx (Debian's package) answering 200 from memory on 127.0.0.1, pinned to one core, so that it
is never the bottleneck; one Locust process (the lab's FastHttpUser, and Locust's HttpUser for comparison)
runs pinned to the other core with no wait between requests. The answer tells a learner how many Locust
workers a target RPS needs. Results go to benchmarks/results/locust-<UTC timestamp>.md.
"""

from __future__ import annotations

import argparse
import csv
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx2
import psutil

from lab.errors import LabError
from lab.markdown import table
from lab.paths import BIN, REPO
from lab.polling import wait_for
from lab.ports import free_port
from lab.processes import clean_env, cpu_seconds, find_tool, pinned, stop

RESULTS_DIR = REPO / "benchmarks" / "results"
LAB_LOCUSTFILE = REPO / "locust" / "locustfile.py"
TARGET_CORE, LOCUST_CORE = 1, 0
HEADROOM = 0.7  # plan workers to run at most 70% of what one can do: above 90% CPU Locust's timings skew

NGINX_CONF = """
worker_processes 1;
daemon off;
pid {workdir}/nginx.pid;
error_log {workdir}/error.log;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {workdir}/body;
    proxy_temp_path {workdir}/proxy;
    fastcgi_temp_path {workdir}/fastcgi;
    uwsgi_temp_path {workdir}/uwsgi;
    scgi_temp_path {workdir}/scgi;
    keepalive_requests 1000000;
    server {{
        listen 127.0.0.1:{port};
        location / {{ return 200 "ok"; }}
    }}
}}
"""

LOCUSTFILE = '''
from locust import FastHttpUser, HttpUser, constant, task


class Fast(FastHttpUser):
    """The lab's client: geventhttpclient."""

    wait_time = constant(0)

    @task
    def get(self):
        self.client.get("/")


class Requests(HttpUser):
    """Locust's default client: requests."""

    wait_time = constant(0)

    @task
    def get(self):
        self.client.get("/")
'''


@dataclass
class Point:
    user_class: str
    rps: float
    cpu_percent: float  # of one core, by the Locust process over the run
    failures: int

    @property
    def rps_per_core(self) -> float:
        return self.rps / max(self.cpu_percent / 100.0, 0.01)


def start_nginx(workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    """nginx on a free port, pinned to its core, answering 200; MissingTool when it is not installed."""
    nginx = find_tool("nginx", "nginx-light")
    port = free_port()
    conf = workdir / "nginx.conf"
    conf.write_text(NGINX_CONF.format(workdir=workdir, port=port))
    process = subprocess.Popen(pinned([nginx, "-c", str(conf), "-p", str(workdir)], TARGET_CORE))
    url = f"http://127.0.0.1:{port}"
    wait_for(lambda: httpx2.get(url, timeout=1).status_code == 200, 20, "nginx")
    return process, url


def measure(user_class: str, url: str, workdir: Path, seconds: int, users: int) -> Point:
    """One Locust process of the trivial users, headless, no wait time; its RPS from its CSV, its CPU from psutil."""
    locustfile = workdir / "trivial.py"
    locustfile.write_text(LOCUSTFILE)
    return _run_locust(locustfile, user_class, url, workdir, seconds, users)


def measure_lab_users(url: str, workdir: Path, seconds: int, users: int) -> Point:
    """One Locust process of the lab's own credit users (FastHttpUser, POST /classify, judged as in the lab), with no
    wait between requests: what one Locust worker of the lab can send, against a target that outruns it."""
    lab_users = ["--wait-min", "0", "--wait-max", "0"]
    return _run_locust(
        LAB_LOCUSTFILE, "CreditRiskUser", url, workdir, seconds, users, lab_users, cwd=LAB_LOCUSTFILE.parent
    )


def _run_locust(
    locustfile: Path,
    user_class: str,
    url: str,
    workdir: Path,
    seconds: int,
    users: int,
    extra: list[str] | None = None,
    cwd: Path | None = None,
) -> Point:
    """One Locust process, headless, pinned to its core; its RPS from its CSV, its CPU from psutil."""
    prefix = workdir / user_class
    command = [str(BIN / "locust"), "-f", str(locustfile), user_class, "--headless", "-u", str(users),
               "-r", str(users), "-t", f"{seconds}s", "-H", url, "--csv", str(prefix), "--only-summary",
               *(extra or [])]  # fmt: skip
    process = subprocess.Popen(
        pinned(command, LOCUST_CORE), env=clean_env(), cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    started, cpu_before = time.monotonic(), cpu_seconds(process.pid)
    cpu_after = cpu_before
    while process.poll() is None:  # sample until it exits; the last sample is taken just before the end
        cpu_after = max(cpu_after, cpu_seconds(process.pid))  # 0 once it has exited
        time.sleep(0.2)
    elapsed = time.monotonic() - started
    stats = Path(f"{prefix}_stats.csv")
    if not stats.exists():
        raise LabError(f"locust {' '.join(command)} wrote no statistics (exit code {process.returncode})")
    with stats.open() as rows:
        total = next(row for row in csv.DictReader(rows) if row["Name"] == "Aggregated")
    used = cpu_after - cpu_before
    return Point(user_class, float(total["Requests/s"]), used / elapsed * 100.0, int(total["Failure Count"]))


def report(points: list[Point], seconds: int, users: int) -> str:
    fast = next(p for p in points if p.user_class == "Fast")
    rows = [
        [
            "FastHttpUser (the lab)" if p.user_class == "Fast" else "HttpUser",
            f"{p.rps:,.0f}",
            f"{p.cpu_percent:.0f}%",
            f"{p.rps_per_core:,.0f}",
            str(p.failures),
        ]
        for p in points
    ]
    header = ["client", "req/s", "CPU of the Locust process", "req/s per core", "failures"]
    per_worker = fast.rps_per_core * HEADROOM
    return f"""# Locust capacity, {datetime.now(UTC).isoformat(timespec="seconds")}

One Locust process (pinned to core {LOCUST_CORE}), {users} users with no wait, {seconds} s, against nginx returning
200 from memory (pinned to core {TARGET_CORE}). Python {sys.version.split()[0]}, {psutil.cpu_count()} CPUs.

{table(header, rows, align="lrrrr")}

FastHttpUser / HttpUser: {fast.rps / next(p for p in points if p.user_class == "Requests").rps:.1f}x.

Plan workers at {HEADROOM:.0%} of a core each: about **{per_worker:,.0f} req/s per Locust worker** here,
so a target of R req/s needs R / {per_worker:,.0f} workers (rounded up), each on a core of its own. The API
answers far fewer requests per second than nginx, so against it a worker uses correspondingly less CPU.
"""


def main(argv: list[str] | None = None) -> int:
    """Measure both clients, print the report and save it; a failure is one line on stderr and exit code 1."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=15, help="seconds per client (default 15)")
    parser.add_argument("--users", type=int, default=50, help="users with no wait (default 50)")
    args = parser.parse_args(argv)
    try:
        with tempfile.TemporaryDirectory() as folder:
            workdir = Path(folder)
            nginx, url = start_nginx(workdir)
            try:
                points = [measure(name, url, workdir, args.seconds, args.users) for name in ("Fast", "Requests")]
            finally:
                stop(nginx)
    except LabError as error:
        print(f"locust_bench: {error}", file=sys.stderr)
        return 1
    text = report(points, args.seconds, args.users)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    out = RESULTS_DIR / f"locust-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.md"
    out.write_text(text)
    print(text + f"\nwrote {out.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
