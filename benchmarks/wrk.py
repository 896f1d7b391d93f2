"""wrk, the load generator of the benchmarks: its command line, its Lua scripts, and what it reports.

wrk reports through its Lua `done(summary, latency, requests)` hook: every script written here ends with one
that prints the run's figures as one JSON line after wrk's text report, and `read_summary` reads that line.
Nothing parses wrk's text.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lab.errors import LabError
from lab.processes import pinned

WRK_THREADS = 1  # one epoll thread outruns a Python worker many times over, and leaves the most CPU to it
WRK_TIMEOUT = "10s"  # slow answers are measured as latency, not counted as timeouts (wrk's default is 2 s)

# Latencies and the duration are in microseconds (wrk's unit). %.15g writes counts as whole numbers, and
# number() writes null for what JSON cannot hold (the stdev of a run without a single answer is NaN).
DONE_HOOK = """
-- wrk calls done() once, after its text report: the run's figures as one JSON line (benchmarks/wrk.py)
local function number(x)
  if x ~= x or x == math.huge or x == -math.huge then return "null" end
  return string.format("%.15g", x)
end

function done(summary, latency, requests)
  local e = summary.errors
  local fields = {
    '"duration_us":' .. number(summary.duration),
    '"requests":' .. number(summary.requests),
    '"bytes":' .. number(summary.bytes),
    string.format('"errors":{"connect":%s,"read":%s,"write":%s,"status":%s,"timeout":%s}',
      number(e.connect), number(e.read), number(e.write), number(e.status), number(e.timeout)),
  }
  local l = {}
  for _, name in ipairs({"min", "max", "mean", "stdev"}) do
    l[#l + 1] = string.format('"%s":%s', name, number(latency[name]))
  end
  for _, p in ipairs({50, 75, 90, 99, 99.9}) do  -- keys p50 ... p99.9
    l[#l + 1] = string.format('"p%s":%s', p, number(latency:percentile(p)))
  end
  fields[#fields + 1] = '"latency_us":{' .. table.concat(l, ",") .. "}"
  io.write("{" .. table.concat(fields, ",") .. "}\\n")
end
"""


class WrkError(LabError):
    """wrk failed, or printed no summary: the message has its output."""


@dataclass
class WrkResult:
    """One measured wrk run, as its done() hook reported it (latencies in milliseconds)."""

    label: str
    path: str
    connections: int
    duration_s: float
    requests: int
    rps: float
    p50_ms: float
    p75_ms: float
    p90_ms: float
    p99_ms: float
    p999_ms: float
    avg_ms: float | None
    max_ms: float
    bytes: int
    non_2xx: int  # wrk's "status" errors: answers with a status above 399
    socket_errors: dict[str, int]  # connect, read, write, timeout
    command: str
    server_cpu_us_per_request: float | None = None  # gunicorn's CPU time over the run / requests wrk counted
    # Where a request's time went, in ms per request, from the API's own histograms over the run: each stage
    # (lab_request_stage_duration_seconds) and `request`, the whole time from receipt to response
    # (lab_http_request_duration_seconds). None for a server without the lab's metrics.
    stages_ms: dict[str, float] | None = None

    @property
    def errors(self) -> int:
        """Non-2xx answers plus socket errors of every kind."""
        return self.non_2xx + sum(self.socket_errors.values())

    def describe_errors(self) -> str:
        """`0`, or what went wrong: non-2xx answers and socket errors by kind."""
        parts = [f"{self.non_2xx} non-2xx"] if self.non_2xx else []
        parts += [f"{n} {kind}" for kind, n in self.socket_errors.items() if n]
        return ", ".join(parts) or "0"


def write_lua(directory: Path, name: str, body: Mapping[str, Any] | list[Any]) -> Path:
    """A wrk script that POSTs `body` as JSON and ends with the JSON summary hook; kept beside the results so
    the command lines can be rerun (by hand or for plain load, the summary is one more line of output)."""
    payload = json.dumps(body if isinstance(body, list) else dict(body), separators=(",", ":"))
    script = directory / f"post-{name}.lua"
    script.write_text(
        f"-- wrk -s {script.name}: POST the course's {name} payload as JSON\n"
        'wrk.method = "POST"\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
        f"wrk.body = [==[{payload}]==]\n" + DONE_HOOK
    )
    return script


def write_get_lua(directory: Path, name: str) -> Path:
    """A wrk script that GETs the URL it is given, ending with the JSON summary hook."""
    script = directory / f"get-{name}.lua"
    script.write_text(f"-- wrk -s {script.name}: GET, with the JSON summary\n" + DONE_HOOK)
    return script


def read_summary(output: str) -> dict[str, Any]:
    """The JSON line the done() hook printed: wrk's text report comes before it, and no line of that starts
    with `{`."""
    lines = [line for line in output.splitlines() if line.startswith("{")]
    if not lines:
        raise WrkError(f"wrk printed no JSON summary (was the script written by write_lua?):\n{output}")
    try:
        return json.loads(lines[-1])
    except json.JSONDecodeError as error:
        raise WrkError(f"wrk's summary is not JSON ({error}): {lines[-1]}") from error


def _ms(microseconds: float | None) -> float | None:
    return None if microseconds is None else microseconds / 1000


def result_from_summary(summary: Mapping[str, Any], label: str, path: str, connections: int, command: str) -> WrkResult:
    """A WrkResult from the done() hook's JSON: rates and milliseconds, errors split as wrk's text had them."""
    latency, errors = summary["latency_us"], dict(summary["errors"])
    duration_s = summary["duration_us"] / 1e6
    return WrkResult(
        label=label,
        path=path,
        connections=connections,
        duration_s=duration_s,
        requests=int(summary["requests"]),
        rps=summary["requests"] / duration_s if duration_s else 0.0,  # wrk's own Requests/sec
        p50_ms=latency["p50"] / 1000,
        p75_ms=latency["p75"] / 1000,
        p90_ms=latency["p90"] / 1000,
        p99_ms=latency["p99"] / 1000,
        p999_ms=latency["p99.9"] / 1000,
        avg_ms=_ms(latency["mean"]),
        max_ms=latency["max"] / 1000,
        bytes=int(summary["bytes"]),
        non_2xx=int(errors.pop("status")),
        socket_errors={kind: int(errors[kind]) for kind in ("connect", "read", "write", "timeout")},
        command=command,
    )


@dataclass
class Wrk:
    """How this run calls wrk: its environment, and the Lua script for each route (by URL path)."""

    env: dict[str, str]
    scripts: dict[str, Path]

    def command(self, url: str, path: str, connections: int, seconds: int, core: int | None) -> list[str]:
        """The wrk command line for one point; `--latency` only adds the distribution to the text, for a reader."""
        if path not in self.scripts:
            raise WrkError(f"no wrk script for {path}: its summary comes from the script's done() hook")
        threads = min(WRK_THREADS, connections)
        command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", f"--timeout={WRK_TIMEOUT}"]
        return pinned([*command, "-s", str(self.scripts[path]), "--latency", f"{url}{path}"], core)

    def run(self, label: str, url: str, path: str, connections: int, seconds: int, core: int | None) -> WrkResult:
        """Run wrk once and read its summary."""
        command = self.command(url, path, connections, seconds, core)
        done = subprocess.run(command, capture_output=True, text=True, env=self.env, check=False)
        if done.returncode != 0:
            raise WrkError(f"{' '.join(command)} exited with {done.returncode}:\n{done.stdout}{done.stderr}")
        return result_from_summary(read_summary(done.stdout), label, path, connections, " ".join(command))
