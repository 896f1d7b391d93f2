"""The lab's own start-up: a first `docker compose up --build` on a fresh machine, a second start with everything
cached, and what the lab's images weigh. One run, side by side, on this machine; see benchmarks/README.md.

    python -m benchmarks.startup      (or `make bench-startup`)

The lab runs as its own compose project on free ports (lab.compose), with its images tagged `:startup-bench`
instead of `:local`, so that the run neither uses nor removes the images your lab runs from; they are removed at
the end, with the project and its volumes. "Fresh" is a build with no cache (`build --no-cache`): on the engine's
classic builder and on BuildKit alike, that is a machine that has never built the lab, without pruning the build
cache that other projects on this engine rely on. The base images are not pulled again (that needs a registry,
and on a fresh machine it comes first): the report lists their sizes to estimate it.
Results go to benchmarks/results/startup-<UTC timestamp>.md and .json.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx2
import yaml

from benchmarks.harness import progress
from benchmarks.machine import Machine, busy_warnings, cpu_use, describe_machine
from lab.compose import ComposeLab, compose_project, docker_problem
from lab.errors import LabError
from lab.markdown import table
from lab.paths import REPO
from lab.polling import wait_for

RESULTS_DIR = REPO / "benchmarks" / "results"
BENCH_TAG = "startup-bench"
READY_TIMEOUT_S = 300  # the balancer's own healthcheck allows the API this long (compose.yaml's start_period)


@dataclass
class Readiness:
    """Seconds from `docker compose up -d` to each part of the lab answering."""

    up_command_s: float  # until `up -d` returned (it waits for the balancer before starting Locust)
    prometheus_s: float  # /-/ready answered 200
    api_s: float  # /readyz answered 200 through the balancer's published port
    locust_s: float  # the Locust UI's stats answered

    @property
    def ready_s(self) -> float:
        return max(self.prometheus_s, self.api_s, self.locust_s)


@dataclass
class ImageSize:
    image: str
    bytes: int | None  # None: not on this machine
    pulled: bool  # it came from a registry (it has a digest); a stand-in built here weighs something else


@dataclass
class Startup:
    """Everything one run measured; written as JSON and rendered as Markdown."""

    started_utc: str
    machine: Machine
    docker: dict[str, str]
    services: list[str]
    fresh_build_s: float = 0.0
    fresh: Readiness | None = None
    cached_build_s: list[float] = field(default_factory=list)  # one per warm start
    warm: list[Readiness] = field(default_factory=list)
    images: list[ImageSize] = field(default_factory=list)  # the lab's own, as built by this run
    bases: list[ImageSize] = field(default_factory=list)  # what a fresh machine pulls first
    warnings: list[str] = field(default_factory=list)


def docker_output(*args: str) -> str:
    done = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=60, check=False)
    return done.stdout.strip() if done.returncode == 0 else "?"


def docker_facts() -> dict[str, str]:
    return {
        "engine": docker_output("version", "--format", "{{.Server.Version}}"),
        "compose": docker_output("compose", "version", "--short"),
        "storage driver": docker_output("info", "--format", "{{.Driver}}"),
    }


def bench_images(compose: dict) -> dict[str, str]:
    """Service -> the image it runs, for every service that runs an image the lab builds, tagged BENCH_TAG."""
    built = {service["image"] for service in compose["services"].values() if "build" in service}
    return {
        name: f"{service['image'].rsplit(':', 1)[0]}:{BENCH_TAG}"
        for name, service in compose["services"].items()
        if service.get("image") in built
    }


def base_images(compose: dict) -> list[str]:
    """The images a fresh machine pulls: each build's FROM lines and every other service's image."""
    built = {service["image"] for service in compose["services"].values() if "build" in service}
    bases: list[str] = []
    for service in compose["services"].values():
        if "build" in service:
            build = service["build"] if isinstance(service["build"], dict) else {"context": service["build"]}
            dockerfile = REPO / build["context"] / build.get("dockerfile", "Dockerfile")
            bases += re.findall(r"^FROM (\S+)", dockerfile.read_text(), re.MULTILINE)
        elif service["image"] not in built:
            bases.append(service["image"])
    return list(dict.fromkeys(bases))  # once each, in order


def image_size(image: str) -> ImageSize:
    found = docker_output("image", "inspect", "--format", "{{.Size}} {{len .RepoDigests}}", image)
    if found == "?":
        return ImageSize(image, None, False)
    size, digests = found.split()
    return ImageSize(image, int(size), int(digests) > 0)


def timed(action: Callable[[], object]) -> float:
    started = time.monotonic()
    action()
    return time.monotonic() - started


def answers(probe: Callable[[], bool]) -> bool:
    try:
        return probe()
    except Exception:  # refused, reset, not JSON yet: not up yet
        return False


def time_to_ready(lab: ComposeLab) -> Readiness:
    """`docker compose up -d` of the lab's services, polling what a learner opens until each part answers."""
    started = time.monotonic()
    probes = {
        "prometheus": lambda: httpx2.get(f"{lab.prometheus_url}/-/ready", timeout=1).status_code == 200,
        "api": lambda: httpx2.get(f"{lab.api_url}/readyz", timeout=1).status_code == 200,
        "locust": lambda: bool(lab.locust_stats()),
    }
    seen: dict[str, float] = {}
    failures: list[BaseException] = []

    def up() -> None:
        try:
            lab.compose("up", "-d", *lab.services, timeout=READY_TIMEOUT_S + 60)
            seen["up"] = time.monotonic() - started
        except BaseException as error:  # raised in the waiting thread below
            failures.append(error)

    thread = threading.Thread(target=up, daemon=True)
    thread.start()

    def all_answer() -> bool:
        if failures:
            raise failures[0]
        for name, probe in probes.items():
            if name not in seen and answers(probe):
                seen[name] = time.monotonic() - started
        return "up" in seen and all(name in seen for name in probes)

    wait_for(all_answer, READY_TIMEOUT_S, "the lab's Prometheus, API and Locust UI", 0.1)
    return Readiness(seen["up"], seen["prometheus"], seen["api"], seen["locust"])


def remove_images(images: list[str]) -> None:
    present = [image for image in images if image_size(image).bytes is not None]
    if present:
        subprocess.run(["docker", "image", "rm", *present], capture_output=True, timeout=120, check=False)


def measure(lab: ComposeLab, report: Startup, images: list[str], repeats: int) -> None:
    """Fresh build and start, then `repeats` times `down` and a start with everything cached, as a learner's
    second day."""
    remove_images(images)
    progress("fresh: docker compose build --no-cache")
    report.fresh_build_s = timed(lambda: lab.compose("build", "--no-cache", timeout=3600))
    progress(f"  built in {report.fresh_build_s:.0f} s; docker compose up -d")
    report.fresh = time_to_ready(lab)
    progress(f"  ready in {report.fresh.ready_s:.1f} s")
    report.images = [image_size(image) for image in images]
    for run in range(1, repeats + 1):
        lab.compose("down", "--timeout", "20", timeout=300)
        progress(f"warm {run}/{repeats}: docker compose build (everything cached), then up -d")
        report.cached_build_s.append(timed(lambda: lab.compose("build", timeout=1800)))
        report.warm.append(time_to_ready(lab))
        progress(f"  built in {report.cached_build_s[-1]:.1f} s, ready in {report.warm[-1].ready_s:.1f} s")
    report.machine.after = cpu_use()  # before the teardown: removing the images keeps the engine busy


def run(repeats: int) -> Startup:
    """The whole run in a compose project of its own, removed with its images whatever happens."""
    problem = docker_problem()
    if problem:
        raise LabError(f"Docker: {problem}")
    compose = yaml.safe_load((REPO / "compose.yaml").read_text())
    tags = bench_images(compose)
    images = list(dict.fromkeys(tags.values()))
    report = Startup(
        started_utc=datetime.now(UTC).isoformat(timespec="seconds"),
        machine=describe_machine(),
        docker=docker_facts(),
        services=[],
        bases=[image_size(image) for image in base_images(compose)],
    )
    with tempfile.TemporaryDirectory(prefix="startup-bench-") as scratch:
        override = Path(scratch) / "images.yaml"
        override.write_text(yaml.safe_dump({"services": {name: {"image": tag} for name, tag in tags.items()}}))
        lab = compose_project("lab-startup", Path(scratch) / "reports", ["compose.yaml", str(override)])
        report.services = list(lab.services)
        try:
            measure(lab, report, images, repeats)
        except BaseException:
            print("\n".join(lab.log[-4:]), lab.logs(), sep="\n", file=sys.stderr)
            raise
        finally:
            lab.compose("down", "-v", "--remove-orphans", "--timeout", "20", timeout=300, check=False)
            remove_images(images)
    report.warnings = busy_warnings(report.machine)
    return report


def megabytes(size: ImageSize) -> str:
    return "not here" if size.bytes is None else f"{size.bytes / 1e6:,.0f} MB"


def origin(size: ImageSize) -> str:
    if size.bytes is None:
        return "not on this machine (the lab starts without it)"
    return "pulled" if size.pulled else "built on this machine, not pulled: the registry's image weighs otherwise"


def readiness_row(what: str, build_s: float, ready: Readiness) -> list[str]:
    return [what, f"{build_s:.1f}", f"{ready.prometheus_s:.1f}", f"{ready.api_s:.1f}", f"{ready.locust_s:.1f}",
            f"**{ready.ready_s:.1f}**", f"**{build_s + ready.ready_s:.1f}**"]  # fmt: skip


def render(report: Startup) -> str:
    """The run in Markdown: machine, timings, image sizes, what "fresh" leaves out."""
    m, d = report.machine, report.docker
    after = f"{m.after.busy_pct:.0f}% busy" if m.after else "?"
    header = ["start", "build s", "Prometheus ready s", "API ready s", "Locust UI s", "up to ready s", "total s"]
    rows = [readiness_row("fresh: `build --no-cache`, then `up -d`", report.fresh_build_s, report.fresh)]
    rows += [
        readiness_row(f"warm {run}: `down`, then `build` (cached) and `up -d`", build_s, ready)
        for run, (build_s, ready) in enumerate(zip(report.cached_build_s, report.warm, strict=True), 1)
    ]
    warm_up = ", ".join(f"{ready.up_command_s:.1f}" for ready in report.warm)
    images = [[size.image, megabytes(size)] for size in report.images]
    bases = [[size.image, megabytes(size), origin(size)] for size in report.bases]
    warnings = "\n".join(f"- {warning}" for warning in report.warnings) or "- none"
    return f"""# The lab's start-up, {report.started_utc}

- Machine: nproc {m.nproc}, {m.cpu_model}, Linux {m.kernel}; Docker {d["engine"]} ({d["storage driver"]}),
  Compose {d["compose"]}
- Services: {", ".join(report.services)}
- CPUs before the run: {m.before.busy_pct:.0f}% busy, {m.before.steal_pct:.0f}% steal; after: {after}

{table(header, rows, align="lrrrrrr")}

Each column after "build" counts from the start of `docker compose up -d` to the first answer: Prometheus's
`/-/ready`, the API's `/readyz` through the balancer's published port, the Locust UI's stats (Locust starts once
the balancer has a ready API). `up -d` itself returned after {report.fresh.up_command_s:.1f} s (fresh) and
{warm_up} s (warm).

The lab's images, as this run built them:

{table(["image", "size"], images, align="lr")}

Not in "fresh": pulling the base images. A fresh machine downloads these first (compressed, so fewer bytes than
their size on disk); here they were on the machine already:

{table(["base image", "size on disk here", "origin"], bases, align="lrl")}

Warnings:

{warnings}
"""


def main(argv: list[str] | None = None) -> int:
    """Measure, print the report and save it; a failure is one line on stderr and exit code 1."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3, help="warm starts, one after another (default 3)")
    parser.add_argument("--out-dir", type=Path, default=RESULTS_DIR, help="where to write the results")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    try:
        report = run(args.repeats)
    except LabError as error:
        print(f"startup: {error}", file=sys.stderr)
        return 1
    stamp = datetime.fromisoformat(report.started_utc).strftime("%Y%m%dT%H%M%SZ")
    args.out_dir.mkdir(parents=True, exist_ok=True)
    markdown, raw = args.out_dir / f"startup-{stamp}.md", args.out_dir / f"startup-{stamp}.json"
    text = render(report)
    markdown.write_text(text)
    raw.write_text(json.dumps(asdict(report), indent=2, default=str) + "\n")
    print()
    print(text)
    progress(f"wrote {markdown} and {raw.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
