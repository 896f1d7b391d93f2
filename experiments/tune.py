"""Tune: the configuration of the API that holds the most load within the SLO on this machine, and what it costs.

    make tune                                   # the compose lab, the API's CPU and memory limits from .env
    make tune TUNE_ARGS=--native                # processes on 127.0.0.1, for a quick look
    make tune TUNE_BUDGET=40m SCENARIO=io-bound # longer, from a scenario's workload
    python -m experiments.tune --help

Each point (one configuration) is measured by experiments/points.py: two probes, then the breaking-point
finder, whose last step that held is the point's figure.

The search does not run the whole grid. It starts from the scenario's configuration and turns one knob at a
time, in the order of what each usually buys (runtime, batching, workers, handler, threads, batch size and wait,
cache), keeping a change only when it holds more. Along a knob with an order (workers, threads, batch size,
wait) it stops at the first value that holds no more: the values beyond it are pruned as dominated. It stops at
the time budget and resumes from what it measured: every point goes to reports/tune/points.json as it is taken.
It writes reports/tune/: summary.md, tune.json, pareto.png and tuned.yaml, an override to run at once.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2

from experiments.points import Config, Point, check_measurement_options, measure, measurement_options, say
from lab.errors import LabError
from lab.markdown import table
from lab.paths import MODEL_DIR, REPO
from lab.scenarios import api_override, api_service, scenario_file
from model_api.vocabulary import SLO_MS

DEFAULT_OUT = REPO / "reports" / "tune"
DEFAULT_BUDGET = "20m"
NOISE = 0.05  # two points within 5% of each other hold the same: this machine's run-to-run spread
STATE_VERSION = 1


# --- the knobs


def doubling(value: float, low: float, high: float) -> list[float]:
    """`value`, halved and doubled within [low, high]: an ordered knob's values around where it stands."""
    values = {value}
    below, above = value / 2, value * 2
    while below >= low:
        values.add(below)
        below /= 2
    while above <= high:
        values.add(above)
        above *= 2
    return sorted(values)


@dataclass(frozen=True)
class Knob:
    """One knob of the search: its values from a configuration, whether they have an order, when it applies."""

    name: str
    values: Callable[[Config, float], list[Any]]  # (configuration, the API's CPU limit) -> values
    ordered: bool
    applies: Callable[[Config], bool] = lambda config: True

    def get(self, config: Config) -> Any:
        return getattr(config, self.name)

    def set(self, config: Config, value: Any) -> Config:
        return dataclasses.replace(config, **{self.name: value}).canonical()


# In the order of what each usually buys: a cheaper runtime and batching change the cost of a request tenfold;
# workers add cores; the handler, threads and the batch's size and wait reshape the queue; a cache pays only for
# repeated requests.
# fmt: off
KNOBS: list[Knob] = [
    Knob("runtime", lambda c, cpus: ["sklearn", "onnx"], ordered=False),
    Knob("batching", lambda c, cpus: [False, True], ordered=False),
    Knob("workers", lambda c, cpus: sorted({*range(1, max(2, math.ceil(cpus) + 1) + 1), c.workers}), ordered=True),
    Knob("handler", lambda c, cpus: ["sync", "async"], ordered=False),
    Knob("threads", lambda c, cpus: [int(v) for v in doubling(c.threads, 4, 160)], ordered=True,
         applies=lambda c: c.handler == "sync"),
    Knob("batch_max_size", lambda c, cpus: [int(v) for v in doubling(c.batch_max_size, 8, 256)], ordered=True,
         applies=lambda c: c.batching),
    Knob("batch_max_wait_ms", lambda c, cpus: doubling(c.batch_max_wait_ms, 0.5, 16), ordered=True,
         applies=lambda c: c.batching),
    Knob("cache", lambda c, cpus: ["off", "local", *(["redis"] if c.cache == "redis" else [])], ordered=False),
]
# fmt: on


# --- the search


class BudgetSpent(Exception):
    """The next point would not fit in the time left."""


@dataclass
class Pruned:
    label: str
    reason: str


@dataclass
class Tuner:
    """The search: coordinate ascent from the scenario's configuration, measured points kept in `state`."""

    base: Config
    cpus: float
    budget_seconds: float
    measure: Callable[[Config], Point]
    state: Path
    identity: dict[str, Any]
    points: dict[str, Point] = field(default_factory=dict)
    pruned: list[Pruned] = field(default_factory=list)
    order: list[str] = field(default_factory=list)  # keys in the order the search asked for them
    spent: float = 0.0
    resumed: int = 0
    began: float = field(default_factory=time.time)

    def load(self) -> None:
        """The points an earlier run of the same tune measured (same mode, scenario, limits and SLO)."""
        if not self.state.is_file():
            return
        data = json.loads(self.state.read_text())
        if data.get("version") != STATE_VERSION or data.get("identity") != self.identity:
            say(f"{self.state} is from another tune ({data.get('identity')}); starting afresh")
            return
        self.points = {Point.from_json(p).config.key(): Point.from_json(p) for p in data["points"]}
        self.resumed = len(self.points)
        if self.points:
            say(f"resuming: {len(self.points)} point(s) already measured in {self.state}")

    def save(self) -> None:
        self.state.parent.mkdir(parents=True, exist_ok=True)
        data = {"version": STATE_VERSION, "identity": self.identity,
                "points": [p.to_json() for p in self.points.values()]}  # fmt: skip
        partial = self.state.with_suffix(".partial")
        partial.write_text(json.dumps(data, indent=2) + "\n")
        partial.replace(self.state)  # a kill mid-write leaves the last whole file

    def estimate(self) -> float:
        """How long the next point takes: the mean of those measured in this run, else of any measured."""
        fresh = [p.seconds for key, p in self.points.items() if key in self.order and p.measured_at >= self.began]
        known = fresh or [p.seconds for p in self.points.values()]
        return sum(known) / len(known) if known else 0.0

    def point(self, config: Config, why: str) -> Point:
        key = config.key()
        if key not in self.order:
            self.order.append(key)
        if key in self.points:
            return self.points[key]
        left, pace = self.budget_seconds - self.spent, self.estimate()
        if pace > left or left <= 0:
            raise BudgetSpent
        measured = len([k for k in self.order if k in self.points])
        room = f"about {pace / 60:.1f} min a point, room for {int(left // pace)}" if pace else "the first sets the pace"
        say(f"point {measured + 1} ({why}): {config.label()}; {left / 60:.0f} min of the budget left, {room}")
        began = time.monotonic()
        point = self.measure(config)
        self.spent += time.monotonic() - began
        self.points[key] = point
        self.save()
        say(f"  held {point.held_rps:.0f} req/s within the SLO ({point.result})")
        return point

    def run(self) -> Point:
        """The best point found within the budget (the base's, at least)."""
        best = self.point(self.base, "where the scenario stands")
        try:
            for knob in KNOBS:
                if knob.applies(best.config):
                    best = self.turn(knob, best)
        except BudgetSpent:
            say(f"the budget ({self.budget_seconds / 60:.0f} min) is spent; run `make tune` again with a larger "
                "TUNE_BUDGET to go on from here")  # fmt: skip
        return best

    def turn(self, knob: Knob, best: Point) -> Point:
        start = best.config
        values = knob.values(start, self.cpus)
        here = knob.get(start)
        if not knob.ordered:
            for value in values:
                if value != here:
                    best = better_of(best, self.point(knob.set(start, value), f"{knob.name} {value}"))
            return best
        index = values.index(here)
        for direction in (+1, -1):
            walk = values[index + 1 :] if direction > 0 else values[:index][::-1]
            for n, value in enumerate(walk):
                candidate = self.point(knob.set(start, value), f"{knob.name} {value:g}")
                if better_of(best, candidate) is not candidate:
                    for beyond in walk[n + 1 :]:
                        self.pruned.append(Pruned(
                            knob.set(start, beyond).label(),
                            f"{knob.name} {value:g} held no more than {best.config.label()} "
                            f"({candidate.held_rps:.0f} against {best.held_rps:.0f} req/s): {knob.name} {beyond:g} "
                            "is further along the same way",
                        ))  # fmt: skip
                    break
                best = candidate
            if knob.get(best.config) != here:
                break  # one direction improved: the other goes back past where it started
        return best


def better_of(a: Point, b: Point) -> Point:
    """The point that holds more by more than the noise; within it, the one with less memory, then less CPU."""
    if b.held_rps > a.held_rps * (1 + NOISE):
        return b
    if a.held_rps > b.held_rps * (1 + NOISE):
        return a
    cost = lambda p: (p.memory_bytes or math.inf, p.peak_cores or math.inf)  # noqa: E731
    return b if cost(b) < cost(a) else a


def pareto(points: list[Point], cost: Callable[[Point], float | None]) -> list[Point]:
    """The points that no other holds more with no more cost, by held load, against `cost`."""
    known = [p for p in points if cost(p) is not None]
    return [
        p for p in known
        if not any(q is not p and q.held_rps >= p.held_rps and cost(q) <= cost(p)
                   and (q.held_rps > p.held_rps or cost(q) < cost(p)) for q in known)
    ]  # fmt: skip


# --- what it writes


def parse_budget(text: str) -> float:
    """'20m', '90s', '1h', '1h30m' or a number of seconds, in seconds."""
    match = re.fullmatch(r"\s*(?:(\d+(?:\.\d+)?)h)?\s*(?:(\d+(?:\.\d+)?)m)?\s*(?:(\d+(?:\.\d+)?)s?)?\s*", text)
    if not text.strip() or not match or not any(match.groups()):
        raise LabError(f"TUNE_BUDGET {text!r} is not a duration: write 20m, 90s, 1h or 1h30m")
    hours, minutes, seconds = (float(group or 0) for group in match.groups())
    return hours * 3600 + minutes * 60 + seconds


def chart_pareto(points: list[Point], chosen: Point, path: Path) -> None:
    """Held load against memory and against CPU per request, one numbered dot per point (the summary's table
    names each number), the frontier joined, the choice ringed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    number = {id(p): n for n, p in enumerate(points, 1)}
    figure, axes = plt.subplots(1, 2, figsize=(12, 5.5), sharey=True)
    for axis, cost, unit in (
        (axes[0], lambda p: p.memory_bytes and p.memory_bytes / 2**20, "the workers' memory at its largest (MiB)"),
        (axes[1], lambda p: p.cpu_per_request_ms, "CPU a request costs at saturation (ms)"),
    ):
        known = [p for p in points if cost(p) is not None]
        axis.scatter([cost(p) for p in known], [p.held_rps for p in known], color="tab:blue", zorder=3,
                     label="a configuration (its number in summary.md)")  # fmt: skip
        front = sorted(pareto(known, cost), key=cost)
        axis.plot([cost(p) for p in front], [p.held_rps for p in front], color="tab:green", zorder=2,
                  label="the frontier: nothing holds more for less")  # fmt: skip
        if cost(chosen) is not None:
            axis.scatter([cost(chosen)], [chosen.held_rps], s=260, facecolors="none", edgecolors="tab:red",
                         linewidths=2, zorder=4, label=f"chosen: {chosen.config.label()}")  # fmt: skip
        for p in known:
            axis.annotate(str(number[id(p)]), (cost(p), p.held_rps), fontsize=9, xytext=(5, 3),
                          textcoords="offset points")  # fmt: skip
        axis.set_xlabel(unit)
        axis.grid(alpha=0.3)
    axes[1].set_xscale("log")  # scikit-learn unbatched costs some forty times ONNX batched
    axes[0].set_ylabel("held within the SLO (req/s)")
    handles, labels = axes[0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="lower center", ncol=3, fontsize=8)
    figure.suptitle("make tune: each configuration measured, the load it held against what it costs")
    figure.tight_layout(rect=(0, 0.07, 1, 1))
    figure.savefig(path, dpi=110)
    plt.close(figure)


def why(chosen: Point, points: list[Point]) -> str:
    rivals = [p for p in points if p is not chosen and p.held_rps >= chosen.held_rps * (1 - NOISE)]
    text = (f"It held {chosen.held_rps:.0f} req/s within the SLO, the most of the {len(points)} point(s) "
            "measured")  # fmt: skip
    if rivals:
        text += (f"; {len(rivals)} other(s) held within {NOISE:.0%} of it (the same, on a shared machine), and it "
                 "uses the least memory, then CPU, of those")  # fmt: skip
    if chosen.load_generator_limited:
        text += (". The load generator ran out first (verdict load-generator-saturated): the API may hold more; "
                 "add Locust workers or cores to find out")  # fmt: skip
    return text + "."


def mib(value: float | None) -> str:
    return "–" if value is None else f"{value / 2**20:.0f}"


def summary_markdown(result: dict[str, Any], points: list[Point], chosen: Point, pruned: list[Pruned]) -> str:
    rows = [
        [str(n), ("**" if p is chosen else "") + p.config.label() + ("**" if p is chosen else ""),
         f"{p.held_rps:.0f}", "–" if p.held_p99_ms is None else f"{p.held_p99_ms:.0f}", f"{p.saturation_rps:.0f}",
         f"{p.service_ms:.1f}", "–" if p.cpu_per_request_ms is None else f"{p.cpu_per_request_ms:.2f}",
         mib(p.memory_bytes), p.verdict or "–", f"{p.seconds:.0f}"]
        for n, p in sorted(enumerate(points, 1), key=lambda pair: -pair[1].held_rps)
    ]  # fmt: skip
    header = ["#", "configuration", "held req/s", "P99 then (ms)", "saturation req/s", "alone (ms)",
              "CPU a request (ms)", "memory (MiB)", "verdict", "took (s)"]  # fmt: skip
    lines = [
        f"# make tune: {result['scenario']} ({result['mode']})",
        "",
        f"SLO {result['slo_ms']:.0f} ms; the API's CPU limit {result['cpus']:g} core(s) per replica; budget "
        f"{result['budget_seconds'] / 60:.0f} min, measuring took {result['spent_seconds'] / 60:.1f} min"
        + (f" (and {result['resumed']} point(s) came from an earlier run)" if result["resumed"] else "")
        + ".",
        "",
        f"## Chosen: {chosen.config.label()}",
        "",
        result["why"],
        "",
        f"Run it: `{result['run']}`. Size it: `make capacity RPS=<your load>`.",
        "",
        "## Every point measured",
        "",
        table(header, rows, align="rlrrrrrrlr"),
        "",
        "#: the order they were measured in, and their number on the chart. Held: the last step of the "
        "breaking-point finder whose P99 stayed within the SLO with under 1% failures (0: not even its first). "
        "Saturation: the most the API completed, without pause or in a step. Alone: one user's mean latency. CPU "
        "a request: the API's CPU at its busiest over the requests it served then. Memory: the workers' resident "
        "memory at its largest.",
        "",
        "![Held load against memory and CPU](pareto.png)",
        "",
    ]
    if pruned:
        lines += ["## Pruned without measuring", "", *(f"- {p.label}: {p.reason}" for p in pruned), ""]
    return "\n".join(lines)


def write_results(
    out: Path, tuner: Tuner, chosen: Point, scenario: str | None, native: bool, slo_ms: float
) -> dict[str, Any]:
    points = [tuner.points[key] for key in tuner.order if key in tuner.points]
    files = [
        "compose.yaml",
        *([f"scenarios/{scenario_file(scenario).name}"] if scenario else []),
        str((out / "tuned.yaml").relative_to(REPO) if out.resolve().is_relative_to(REPO) else out / "tuned.yaml"),
    ]
    run = "docker compose " + " ".join(f"-f {f}" for f in files) + " up --build"
    result = {
        "scenario": scenario or "default", "mode": "native" if native else "compose", "slo_ms": slo_ms,
        "cpus": tuner.cpus, "budget_seconds": tuner.budget_seconds, "spent_seconds": tuner.spent,
        "resumed": tuner.resumed, "why": why(chosen, points), "run": run,
        "chosen": {**chosen.to_json(), "replica": chosen.replica(slo_ms).to_json()},
        "points": [p.to_json() for p in points],
        "pruned": [dataclasses.asdict(p) for p in tuner.pruned],
    }  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    (out / "tune.json").write_text(json.dumps(result, indent=2) + "\n")
    chart_pareto(points, chosen, out / "pareto.png")
    comment = (
        f"Generated by `make tune` on {time.strftime('%Y-%m-%d %H:%M')} ({result['mode']}, scenario "
        f"{result['scenario']}): the configuration that held the most within the SLO of {slo_ms:.0f} ms.\n"
        f"{chosen.config.label()}: {chosen.held_rps:.0f} req/s. Do not edit: run `make tune` again.\n\n{run}"
    )
    (out / "tuned.yaml").write_text(api_override(chosen.config.environment(), comment))
    (out / "summary.md").write_text(summary_markdown(result, points, chosen, tuner.pruned))
    return result


def tune(
    scenario: str | None, out: Path, budget_seconds: float, native: bool, slo_ms: float = SLO_MS,
    step_seconds: float = 10.0, fresh: bool = False, model_dir: Path = MODEL_DIR,
    measure_point: Callable[..., Point] = measure,
) -> dict[str, Any]:  # fmt: skip
    """The search, then its report; returns tune.json's content."""
    cpus = api_service(scenario).cpus
    identity = {"mode": "native" if native else "compose", "scenario": scenario or "default", "cpus": cpus,
                "slo_ms": slo_ms, "cores": os.cpu_count(), "step_seconds": step_seconds}  # fmt: skip
    tuner = Tuner(
        base=Config.of_scenario(scenario).canonical(), cpus=cpus, budget_seconds=budget_seconds,
        measure=lambda config: measure_point(config, scenario, native, slo_ms, step_seconds, model_dir=model_dir),
        state=out / "points.json", identity=identity,
    )  # fmt: skip
    if fresh and tuner.state.exists():
        tuner.state.unlink()
    tuner.load()
    try:
        chosen = tuner.run()
    except BudgetSpent:
        raise LabError(f"nothing measured: the budget of {budget_seconds:.0f}s leaves no time for a point") from None
    except KeyboardInterrupt:
        say(f"interrupted: {len(tuner.points)} point(s) kept in {tuner.state}; `make tune` again resumes")
        raise
    result = write_results(out, tuner, chosen, scenario, native, slo_ms)
    say(f"chosen: {chosen.config.label()}, {chosen.held_rps:.0f} req/s within the SLO. {result['why']}")
    say(f"report: {out / 'summary.md'}; override: {out / 'tuned.yaml'}")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    measurement_options(parser, DEFAULT_OUT)
    parser.add_argument(
        "--budget", default=DEFAULT_BUDGET, help="stop measuring after this long: 20m, 90s, 1h (%(default)s)"
    )
    parser.add_argument("--native", action="store_true", help="processes on 127.0.0.1 instead of Docker")
    parser.add_argument("--fresh", action="store_true", help="forget the points an earlier run measured")
    parser.add_argument(
        "--model-dir", type=Path, default=MODEL_DIR, help="the trained models a native run serves (%(default)s)"
    )
    args = parser.parse_args(argv)
    try:
        budget = parse_budget(args.budget)
        check_measurement_options(args)
        tune(args.scenario or None, args.out, budget, args.native, args.slo_ms, args.step_seconds, args.fresh,
             args.model_dir)  # fmt: skip
    except (LabError, httpx2.HTTPError) as error:
        print(f"tune: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
