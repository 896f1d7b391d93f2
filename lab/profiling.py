"""Flame graphs of a running lab with py-spy: which process to record (the API's gunicorn master and its
workers, or a Locust worker), natively or inside its container, and a speedscope file read back.

py-spy writes one format per recording, so a profile is two recordings back to back over one window: the
speedscope JSON first (the file the figures are read from, and the richer viewer), then py-spy's own
interactive SVG flame graph. Each file is exact for its half of the window; rendering an SVG ourselves from the
speedscope samples would cover the same samples, but with an encoder of our own where py-spy has one.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

from lab.compose import ComposeLab
from lab.errors import LabError
from lab.native import NativeLab
from lab.paths import BIN, REPO
from lab.stack import Lab

PROFILES_DIR = REPO / "reports" / "profiles"
# Samples per second. py-spy's default is 100; the load generator, the API and py-spy share two cores here, and
# each sample pauses the target for a moment (native frames need a paused process), so half that.
RATE = 50
# What every recording includes, and why:
#   --native       C and Cython frames, so the time inside the model (scikit-learn's tree code) shows
#   --idle         threads that wait are sampled too: a blocked event loop or a thread pool waiting downstream is
#                  the lesson of half the scenarios, and a CPU-only profile would show it as nearly empty
#   --subprocesses the target's children: gunicorn's workers under its master
RECORD_FLAGS = ("--native", "--idle", "--subprocesses")
FORMATS = {"speedscope": ".speedscope.json", "flamegraph": ".svg"}
IN_CONTAINER = "/tmp/lab-profile"  # where py-spy writes inside a container before `docker compose cp`


class PySpyMissing(LabError):
    """py-spy is not installed where the profile is taken."""


class NoProcessToProfile(LabError):
    """Nothing runs that could be profiled."""


class ProfilingDenied(LabError):
    """The system refused py-spy access to the process."""

    def __init__(self, what: str, detail: str) -> None:
        super().__init__(
            f"py-spy may not read {what}: {detail.strip()[-300:]}\n"
            "Natively, run it as root (sudo) or allow tracing your own processes: "
            "`sudo sysctl kernel.yama.ptrace_scope=0`. In the compose lab, the service needs "
            "`cap_add: [SYS_PTRACE]` (compose.yaml gives it to the api and locust-worker services) and py-spy "
            "runs as root inside the container."
        )


def stem(scenario: str, when: datetime) -> str:
    """A profile's file name without its suffix: the scenario and the UTC time it started."""
    return f"{scenario}-{when.astimezone(UTC):%Y%m%dT%H%M%SZ}"


@dataclass
class Profile:
    """One profile's two files and what they cover."""

    speedscope: Path
    svg: Path
    process: str  # which process was recorded, in words
    started: float  # Unix seconds
    ended: float
    note: str = ""  # what the load was meanwhile (the runner: which step)

    def remove(self) -> None:
        for path in (self.speedscope, self.svg):
            path.unlink(missing_ok=True)

    def to_json(self) -> dict[str, Any]:
        return {
            "speedscope": str(self.speedscope),
            "svg": str(self.svg),
            "process": self.process,
            "started": self.started,
            "ended": self.ended,
            "note": self.note,
        }


@dataclass
class Target:
    """A process py-spy can record with its children: on this machine (`lab` None), or inside a compose
    service's container (its replica `index`), where py-spy runs as root."""

    pid: int
    description: str
    lab: ComposeLab | None = None
    service: str = ""
    index: int = 1

    def record(self, fmt: str, seconds: int, output: Path, rate: int = RATE) -> None:
        """One py-spy recording of `seconds` in `fmt` ("speedscope" or "flamegraph") into `output`."""
        args = ["record", "--pid", str(self.pid), "--duration", str(seconds), "--rate", str(rate),
                "--format", fmt, *RECORD_FLAGS]  # fmt: skip
        if self.lab is None:
            done = subprocess.run(
                [py_spy(), *args, "--output", str(output)], capture_output=True, text=True, timeout=seconds + 60
            )
        else:
            inside = f"{IN_CONTAINER}{FORMATS[fmt]}"
            exec_ = ["exec", "-T", "-u", "root", "--index", str(self.index), self.service]
            done = self.lab.compose(*exec_, "py-spy", *args, "--output", inside, timeout=seconds + 60, check=False)
            if done.returncode == 0:
                self.lab.compose("cp", "--index", str(self.index), f"{self.service}:{inside}", str(output))
                self.lab.compose(*exec_, "rm", "-f", inside, check=False)
        if done.returncode != 0 or not output.is_file():
            raise failure(self.description, done)


def failure(what: str, done: subprocess.CompletedProcess[str]) -> LabError:
    """py-spy's failure as the LabError that says what to do."""
    said = (done.stderr or "") + (done.stdout or "")
    if "executable file not found" in said or "py-spy: not found" in said:
        return PySpyMissing(f"py-spy is not in the image of {what}: rebuild it (`docker compose build`)")
    if "Permission" in said or "Operation not permitted" in said:
        return ProfilingDenied(what, said)
    return LabError(f"py-spy could not record {what} (exit {done.returncode}):\n{said.strip()[-2000:]}")


def py_spy() -> str:
    """The py-spy program: the virtualenv's (requirements.lock pins it), else one on PATH."""
    for candidate in (BIN / "py-spy", shutil.which("py-spy")):
        if candidate and Path(candidate).is_file():
            return str(candidate)
    raise PySpyMissing("py-spy is not installed: `make install` puts the pinned one in .venv (PyPI: py-spy)")


def record(target: Target, seconds: int, folder: Path, scenario: str, note: str = "") -> Profile:
    """A profile of `target` over `seconds` (at least 2): the speedscope JSON over the first half, the SVG
    flame graph over the second, in `folder` named by `scenario` and the UTC start time."""
    folder.mkdir(parents=True, exist_ok=True)
    started = datetime.now(UTC)
    name = stem(scenario, started)
    profile = Profile(folder / f"{name}.speedscope.json", folder / f"{name}.svg", target.description,
                      started.timestamp(), started.timestamp(), note)  # fmt: skip
    first = max(1, seconds // 2)
    try:
        target.record("speedscope", first, profile.speedscope)
        target.record("flamegraph", max(1, seconds - first), profile.svg)
    except BaseException:
        profile.remove()
        raise
    profile.ended = datetime.now(UTC).timestamp()
    return profile


# Finding the process, natively.


def gunicorn_master(port: int) -> int:
    """The pid of the gunicorn master listening on `port` on this machine (its workers listen on the same
    socket: the master is the one whose parent does not)."""
    sockets = psutil.net_connections("tcp")
    listening = {c.pid for c in sockets if c.status == psutil.CONN_LISTEN and c.laddr.port == port and c.pid}
    masters = [pid for pid in listening if psutil.Process(pid).ppid() not in listening]
    if not masters:
        raise NoProcessToProfile(f"no process listens on port {port} here: start the API (`make api`) first")
    (master,) = masters
    return master


def api_target(pid: int) -> Target:
    return Target(pid, f"the API's gunicorn master (pid {pid}) and its workers")


def busiest(pids: Sequence[int]) -> int:
    """The process among `pids` that used the most CPU so far (the load generator's bottleneck)."""

    def used(pid: int) -> float:
        with contextlib.suppress(psutil.NoSuchProcess):
            times = psutil.Process(pid).cpu_times()
            return times.user + times.system
        return -1.0

    alive = [pid for pid in pids if used(pid) >= 0]
    if not alive:
        raise NoProcessToProfile("no Locust worker runs: start the lab's Locust (`make locust`) first")
    return max(alive, key=used)


def locust_workers() -> list[int]:
    """Every Locust worker process on this machine (`locust ... --worker`)."""
    found = []
    for process in psutil.process_iter(["cmdline"]):
        cmdline = process.info["cmdline"] or []
        if "--worker" in cmdline and any(Path(part).name in {"locust", "lab-locust"} for part in cmdline[:2]):
            found.append(process.pid)
    return found


def locust_target(pid: int) -> Target:
    return Target(pid, f"a Locust worker (pid {pid})")


# Inside the compose lab: PID 1 of the service's container is gunicorn, or the Locust worker (lab-locust execs it).


def compose_target(lab: ComposeLab, service: str, index: int = 1) -> Target:
    what = "the API's gunicorn master and its workers" if service == "api" else "a Locust worker"
    return Target(1, f"{what} in container {index} of the compose service {service}", lab, service, index)


def target_in(lab: Lab, what: str) -> Target:
    """What to record in a running lab: `what` is "api" (gunicorn and its workers) or "locust" (the busiest
    Locust worker natively, the first one in the compose lab)."""
    if isinstance(lab, ComposeLab):
        return compose_target(lab, "api" if what == "api" else "locust-worker")
    if isinstance(lab, NativeLab):
        return api_target(lab.api_pid) if what == "api" else locust_target(busiest(lab.locust_worker_pids))
    raise LabError(f"cannot profile a {type(lab).__name__}: only the native and the compose labs")


# Reading a profile back.


@dataclass(frozen=True)
class Frame:
    name: str
    file: str
    line: int | None


@dataclass
class Samples:
    """A speedscope file's samples (every thread of every process together): each stack, root first, with its
    weight (seconds)."""

    stacks: list[tuple[tuple[Frame, ...], float]]
    threads: list[str] = field(default_factory=list)

    @property
    def total(self) -> float:
        return sum(weight for _, weight in self.stacks)

    def share(self, matches: Callable[[Frame], bool], unless: Callable[[Frame], bool] | None = None) -> float:
        """The share of the samples (by weight) whose stack holds a frame that `matches` (and none that `unless`
        matches): its inclusive time."""
        total = self.total
        hit = sum(
            weight
            for stack, weight in self.stacks
            if any(matches(frame) for frame in stack) and not (unless and any(unless(frame) for frame in stack))
        )
        return hit / total if total else 0.0

    def busy(self) -> Samples:
        """The samples of threads at work: without those waiting (`--idle` records them too), whose stack ends, past
        its last Python frame, in a wait (a lock, a condition, epoll, a sleep). Where the CPU went."""
        return Samples([(stack, weight) for stack, weight in self.stacks if not _waiting(stack)], self.threads)

    def shares(self) -> dict[str, float]:
        """Each frame name's inclusive share of the samples, largest first."""
        counts: Counter[str] = Counter()
        for stack, weight in self.stacks:
            for name in {frame.name for frame in stack}:
                counts[name] += weight
        total = self.total or 1.0
        return {name: weight / total for name, weight in counts.most_common()}


WAITS = ("wait", "epoll", "select", "poll", "sleep", "acquire")  # in the name of a frame that waits
# The model: the two methods every prediction goes through, whatever the runtime (the features and the forest).
MODEL_FRAMES = ("Models.default_probabilities", "Models.house_prices")
# The web framework and the lab's own request path around the model: the server, routing, validation, JSON,
# middleware and metrics. The event loop's and the thread pool's own frames are left out: they are also where
# a worker waits.
FRAMEWORK_FILES = (
    "/uvicorn/", "/httptools/", "/h11/", "/starlette/", "/fastapi/", "/pydantic/", "/pydantic_core/", "/json/",
    "/prometheus_client/", "/model_api/middleware.py", "/model_api/routes.py", "/model_api/errors.py",
)  # fmt: skip


def _waiting(stack: tuple[Frame, ...]) -> bool:
    last_python = max((i for i, frame in enumerate(stack) if frame.file.endswith(".py")), default=0)
    return any(word in frame.name.lower() for frame in stack[last_python:] for word in WAITS)


def in_model(frame: Frame) -> bool:
    return frame.name in MODEL_FRAMES


def in_framework(frame: Frame) -> bool:
    return any(part in frame.file for part in FRAMEWORK_FILES)


def read_speedscope(path: Path) -> Samples:
    """The samples of a speedscope JSON file (py-spy's `--format speedscope`)."""
    data = json.loads(path.read_text())
    frames = [Frame(f["name"], f.get("file", ""), f.get("line")) for f in data["shared"]["frames"]]
    stacks = [
        (tuple(frames[i] for i in sample), float(weight))
        for profile in data["profiles"]
        for sample, weight in zip(profile["samples"], profile["weights"], strict=True)
    ]
    return Samples(stacks, [profile["name"] for profile in data["profiles"]])
