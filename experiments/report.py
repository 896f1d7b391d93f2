"""An experiment's report folder: report.json (everything), summary.md (what to read) and PNG charts."""

from __future__ import annotations

import json
import os
import statistics
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from experiments.charts import chart_cpu, chart_rps_p99, chart_timeline
from experiments.collect import RunSeries
from experiments.time_to_verdict import TimeToVerdict, heaviest_step, time_to_verdict
from lab.markdown import table
from lab.profiling import Profile
from model_api.vocabulary import (
    HEALTHY,
    NO_RESPONSE,
    P999_MIN_SAMPLES,
    STEP_SECONDS,
    TOO_FEW_REQUESTS,
)


@dataclass
class Step:
    """The run's figures while a number of users ran (means over that time; the verdict held most often)."""

    users: int
    seconds: float
    rps: float | None
    p99_client_ms: float | None
    p99_server_ms: float | None
    cpu_utilization: float | None
    in_flight: float | None
    queueing_gap_ms: float | None
    wait_ms: float | None  # mean wait before the handler, inside the worker
    wait_ratio: float | None  # that wait / the time being served
    event_loop_lag_ms: float | None
    batch_size: float | None
    verdict: str | None
    # P99.9 over the step's windows that held P999_MIN_SAMPLES requests, and the mean requests per window (a
    # report written before P99.9 was recorded has none of these).
    p999_client_ms: float | None = None
    p999_server_ms: float | None = None
    requests_client: float | None = None
    requests_server: float | None = None


def _mean(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.fmean(present) if present else None


def _ms(value: float | None) -> float | None:
    return None if value is None else value * 1000


def steps(series: RunSeries, step: float = STEP_SECONDS) -> list[Step]:
    """One Step per number of users the run held, in order."""
    users = series.values["users"]
    groups: dict[int, list[int]] = {}
    for i, count in enumerate(users):
        if count:
            groups.setdefault(round(count), []).append(i)
    result = []
    for count, indices in sorted(groups.items()):

        def mean(name: str, indices: list[int] = indices) -> float | None:
            return _mean([series.values[name][i] for i in indices])

        verdicts = Counter(series.verdicts[i] for i in indices if series.verdicts[i])
        result.append(
            Step(
                users=count,
                seconds=len(indices) * step,
                rps=mean("rps_client"),
                p99_client_ms=_ms(mean("p99_client")),
                p99_server_ms=_ms(mean("p99_server")),
                cpu_utilization=mean("cpu_utilization"),
                in_flight=mean("in_flight"),
                queueing_gap_ms=_ms(mean("queueing_gap")),
                wait_ms=_ms(mean("wait_before_handler")),
                wait_ratio=mean("wait_per_service"),
                event_loop_lag_ms=_ms(mean("event_loop_lag")),
                batch_size=mean("batch_size"),
                verdict=verdicts.most_common(1)[0][0] if verdicts else None,
                p999_client_ms=_ms(mean("p999_client")),
                p999_server_ms=_ms(mean("p999_server")),
                requests_client=mean("requests_client"),
                requests_server=mean("requests_server"),
            )
        )
    return result


def peak(series: RunSeries, name: str) -> float | None:
    present = [v for v in series.values[name] if v is not None]
    return max(present) if present else None


def verdict_under_load(series: RunSeries, broke: bool) -> str | None:
    """The diagnosis during the run's heaviest step (the most users it ran).

    The heaviest step is the last one, and the verdict lags the load by up to a rule window: the samples taken
    in the window after the load stopped still describe that step, and a short step may have no others
    (heaviest_step).
    When the SLO broke there, the bottleneck the diagnosis named most often ("healthy" only if it named none):
    that is the answer to "why did it break?". When it held, simply the verdict held most often.
    """
    counts = Counter(series.verdicts[i] for i in heaviest_step(series) if series.verdicts[i])
    problems = Counter({verdict: n for verdict, n in counts.items() if verdict != HEALTHY})
    if broke and problems:
        return problems.most_common(1)[0][0]
    return counts.most_common(1)[0][0] if counts else None


def _no_answer(message: str) -> bool:
    return NO_RESPONSE in message or any(f"HTTP {status}: " in message for status in (502, 503, 504))


def broke_the_slo(breaking_point: dict[str, Any] | None) -> bool:
    """Whether the breaking-point run ended on a step that broke the SLO (that step was then cut short)."""
    return bool((breaking_point or {}).get("breaking_step"))


@dataclass
class ExperimentReport:
    """One experiment: what the breaking-point shape measured per step (Locust's own JSON summary, as written),
    and what Prometheus recorded over the run, read as steps, peaks and verdicts."""

    scenario: str
    mode: str  # "compose" or "native"
    started: float | None
    ended: float | None
    breaking_point: dict[str, Any] | None  # lab_locust.shapes' summary: steps, last_held, breaking_step, result
    verdict: str | None  # the diagnosis under the heaviest load (verdict_under_load)
    verdicts: dict[str, int]  # every verdict of the run, how many evaluations each
    peaks: dict[str, float | None]  # per series of experiments.collect.SERIES
    steps: list[Step]
    series: RunSeries
    profile: dict[str, Any] | None = None  # lab.profiling.Profile.to_json: the flame graph of the breaking step
    # From the load crossing the API's capacity to the verdict named (None in a report written before it was).
    time_to_verdict: TimeToVerdict | None = None

    def measured_steps(self) -> list[dict[str, Any]]:
        """Locust's own measurement of each step (its requests only, after its ramp), the breaking one included."""
        bp = self.breaking_point or {}
        return [*bp.get("steps", []), *([bp["breaking_step"]] if bp.get("breaking_step") else [])]

    def failures(self) -> list[dict[str, Any]]:
        """Locust's failures table at the end of the run (route, message, occurrences), the most frequent first."""
        return (self.breaking_point or {}).get("failures", [])

    def no_answer(self) -> int:
        """Requests that got no answer from the API: no response at all, or the balancer's 502 or 503 when the
        replica it sent them to closed the connection or had no worker to take it (the failures a dead worker
        leaves; the counters say how many it lost)."""
        return sum(row["occurrences"] for row in self.failures() if _no_answer(row["error"]))

    def held(self) -> dict[str, Any] | None:
        """The last step that held the SLO, as Locust measured it."""
        return (self.breaking_point or {}).get("last_held")

    def time_to_verdict_short(self) -> str:
        """The time to verdict for a table cell or a console line; "–" in a report written before it was measured."""
        return self.time_to_verdict.short() if self.time_to_verdict else "–"

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "series": self.series.to_json()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ExperimentReport:
        ttv = data.get("time_to_verdict")
        return cls(
            **{
                **data,
                "steps": [Step(**s) for s in data["steps"]],
                "series": RunSeries.from_json(data["series"]),
                "time_to_verdict": TimeToVerdict(**ttv) if ttv else None,
            }
        )


def build_report(
    scenario: str,
    mode: str,
    series: RunSeries,
    breaking_point: dict[str, Any] | None,
    profile: Profile | None = None,
) -> ExperimentReport:
    broke = broke_the_slo(breaking_point)
    verdict = verdict_under_load(series, broke)
    return ExperimentReport(
        scenario=scenario,
        mode=mode,
        started=series.timestamps[0] if series.timestamps else None,
        ended=series.timestamps[-1] if series.timestamps else None,
        breaking_point=breaking_point,
        verdict=verdict,
        verdicts=series.verdict_counts(),
        peaks={name: peak(series, name) for name in series.values if name != "users"},
        steps=steps(series),
        series=series,
        profile=profile.to_json() if profile else None,
        time_to_verdict=time_to_verdict(series, verdict, broke),
    )


def _fmt(value: float | None, pattern: str = "{:.1f}", missing: str = "–") -> str:
    return missing if value is None else pattern.format(value)


def _p999(p999_ms: float | None, requests: float | None) -> str:
    """A P99.9 with the requests of its 30 s window, or in words when they were too few for one."""
    if requests is None:
        return "–"
    behind = f"{requests:,.0f} requests"
    if p999_ms is None:  # no window of it held P999_MIN_SAMPLES requests
        return f"{TOO_FEW_REQUESTS} ({behind})"
    return f"{p999_ms:.0f} ms ({behind})"


def _cores(value: float | None, pattern: str = "{}") -> str:
    """ "1 core", "2 cores", "0.5 cores"; nothing when unknown."""
    return "" if value is None else pattern.format(f"{value:g} core" + ("" if value == 1 else "s"))


MODES = {
    "compose": "on Docker Compose",
    "native": "natively: processes on 127.0.0.1, the API pinned to as many cores as its CPU limit (so nothing is "
    "throttled)",
}


def _answer_rows(bp: dict[str, Any]) -> list[list[str]]:
    """The last step that held and the one that broke, as Locust measured them (either may be missing)."""
    rows = []
    for label, step in (("last step that held", bp.get("last_held")), ("step that broke", bp.get("breaking_step"))):
        if step:
            rows.append(
                [
                    label,
                    str(step["users"]),
                    f"{step['rps']:.1f}",
                    f"{step['p99_ms']:.0f} ms",
                    _p999(step.get("p999_ms"), step["requests"]),
                    f"{step['failure_ratio']:.1%}",
                ]
            )
    return rows


def _peak_rows(peaks: dict[str, float | None]) -> list[list[str]]:
    memory = None if peaks["memory_bytes"] is None else peaks["memory_bytes"] / 2**20
    return [
        ["client RPS", f"{_fmt(peaks['rps_client'])} req/s"],
        [f"CPU against the limit{_cores(peaks['cpu_limit'], ' ({})')}", _fmt(peaks["cpu_utilization"], "{:.0%}")],
        ["throttled periods", _fmt(peaks["cpu_throttled"], "{:.0%}")],
        ["busiest API worker's CPU", _fmt(peaks["worker_cpu"], "{:.2f} cores")],
        ["client P99", _fmt(_ms(peaks["p99_client"]), "{:.0f} ms")],
        ["server P99", _fmt(_ms(peaks["p99_server"]), "{:.0f} ms")],
        [
            "client P99.9 (most requests in a 30 s window)",
            _p999(_ms(peaks.get("p999_client")), peaks.get("requests_client")),
        ],
        [
            "server P99.9 (most requests in a 30 s window)",
            _p999(_ms(peaks.get("p999_server")), peaks.get("requests_server")),
        ],
        ["queueing gap (client P99 − server P99, the worst route)", _fmt(_ms(peaks["queueing_gap"]), "{:.0f} ms")],
        [
            "requests in flight",
            f"{_fmt(peaks['in_flight'], '{:.0f}')} (threads: {_fmt(peaks['thread_capacity'], '{:.0f}')})",
        ],
        ["event-loop lag (worst worker)", _fmt(_ms(peaks["event_loop_lag"]), "{:.0f} ms")],
        ["mean batch size", _fmt(peaks["batch_size"])],
        ["API memory", _fmt(memory, "{:.0f} MiB")],
        ["busiest Locust worker CPU", _fmt(peaks["locust_worker_cpu"], "{:.0f}%")],
        [
            "503s from the API while its models load (no readiness gate)",
            _fmt(peaks.get("not_ready_rps"), "{:.1f} req/s"),
        ],
        ["a worker's start to ready (slowest)", _fmt(peaks.get("start_to_ready"), "{:.1f} s")],
        ["a worker's first request (slowest)", _fmt(_ms(peaks.get("first_request")), "{:.0f} ms")],
        ["API memory against its limit", _fmt(peaks.get("memory_utilization"), "{:.0%}")],
        [
            "OOM kills / workers replaced / requests they held",
            " / ".join(_fmt(peaks.get(name), "{:.0f}") for name in ("oom_kills", "worker_restarts", "lost_requests")),
        ],
        ["requests the balancer sent again (compose)", _fmt(peaks.get("balancer_retries"), "{:.0f}")],
        ["answer cache hit ratio", _fmt(peaks.get("cache_hit_ratio"), "{:.0%}")],
    ]


def _failure_lines(report: ExperimentReport) -> list[str]:
    """Locust's failures table, and how many of them the API's own counters explain."""
    rows = report.failures()
    if not rows:
        return ["Locust counted no failure.", ""]
    lost, retried = report.peaks.get("lost_requests"), report.peaks.get("balancer_retries")
    explained = (
        f"{report.no_answer()} of them got no answer from the API (no response, or the balancer's 502, 503 or "
        f"504). The API counts {_fmt(lost, '{:.0f}')} requests held by workers that died: those failures are a "
        "dead worker's requests, not a bug in the API (docs/scenarios/memory-bound.md)"
        + (
            f"; the balancer sent {_fmt(retried, '{:.0f}')} requests again when a replica closed their connection "
            "without an answer, which the clients then never saw fail."
            if retried
            else "."
        )
    )
    cells = [[row["method"], row["name"], str(row["error"])[:120], str(row["occurrences"])] for row in rows]
    return [table(["method", "route", "message", "count"], cells), "", explained, ""]


STEP_COLUMNS = ["users", "RPS", "P99 client", "P99 server", "P99.9 client (requests / 30 s)",
                "P99.9 server (requests / 30 s)", "CPU / limit", "in flight", "queueing gap (worst route)",
                "loop lag", "batch", "verdict"]  # fmt: skip


def _step_row(s: Step) -> list[str]:
    return [
        str(s.users),
        _fmt(s.rps),
        _fmt(s.p99_client_ms, "{:.0f} ms"),
        _fmt(s.p99_server_ms, "{:.0f} ms"),
        _p999(s.p999_client_ms, s.requests_client),
        _p999(s.p999_server_ms, s.requests_server),
        _fmt(s.cpu_utilization, "{:.0%}"),
        _fmt(s.in_flight, "{:.1f}"),
        _fmt(s.queueing_gap_ms, "{:.0f} ms"),
        _fmt(s.event_loop_lag_ms, "{:.0f} ms"),
        _fmt(s.batch_size),
        s.verdict or "–",
    ]


def _profile_lines(profile: dict[str, Any] | None, folder: Path | None) -> list[str]:
    """The flame graph section: links to both files (relative to the summary's folder) and what they cover."""
    if not profile:
        return ["No flame graph: `--no-profile` was given, the run measured no step, or py-spy could not record.", ""]

    def link(path: str | Path) -> str:
        return os.path.relpath(path, folder) if folder else str(path)

    seconds = profile["ended"] - profile["started"]
    return [
        f"py-spy recorded {profile['process']} during {profile['note']}, once the run was measured, so that its "
        f"pauses changed none of the figures above (about {seconds:.0f} s, with native frames and waiting "
        "threads): the speedscope file covers the first half of that time, the flame graph the second half. "
        "How to open and read them: `docs/profiling.md` in the lab's repository.",
        "",
        f"- [flame graph (SVG, opens in a browser)]({link(profile['svg'])})",
        f"- [speedscope JSON (open at https://www.speedscope.app)]({link(profile['speedscope'])})",
        "",
    ]


def summary_markdown(report: ExperimentReport, folder: Path | None = None) -> str:
    """The summary; `folder`, where it is written, makes the profile's links relative to it."""
    bp = report.breaking_point or {}
    verdicts = ", ".join(f"{v} {n}x" for v, n in report.verdicts.items()) or "none"
    lines = [
        f"# Experiment: {report.scenario}",
        "",
        f"Run {MODES.get(report.mode, report.mode)}, breaking-point load shape. "
        + bp.get("result", "No breaking-point summary was written."),
        "",
        "## The answer",
        "",
        table(
            ["", "users", "RPS", "P99 (client)", "P99.9 (client, requests in the step)", "failures"], _answer_rows(bp)
        ),
        "",
        f"**Verdict under load: {report.verdict or 'none'}** (the diagnosis during the heaviest step: the "
        f"bottleneck it named most often there; over the whole run: {verdicts}).",
        "",
        report.time_to_verdict.sentence()
        if report.time_to_verdict
        else "Time to verdict: not measured (a report written before the runner measured it).",
        "",
        "## Key figures (peaks over the run)",
        "",
        table(["figure", "peak"], _peak_rows(report.peaks)),
        "",
        "## Client failures",
        "",
        *_failure_lines(report),
        "## Step by step",
        "",
        "From Prometheus, averaged over the time each number of users ran; its 30 s windows lag short steps, so "
        "the RPS and P99 of each step as Locust measured them are in report.json (`breaking_point.steps`) "
        "and in the first chart. The queueing gap is that of the route where it is largest (what the diagnosis "
        "reads), so it need not be the difference of the two P99 columns, which are over both routes together. "
        f"A P99.9 is averaged over the step's windows that held {P999_MIN_SAMPLES:,} requests or more, beside the "
        f"mean requests per window; with fewer, one request in {P999_MIN_SAMPLES:,} is no more than the slowest "
        f"one or two, so the cell says {TOO_FEW_REQUESTS}.",
        "",
        table(STEP_COLUMNS, [_step_row(s) for s in report.steps]),
        "",
        "## Charts",
        "",
        "![RPS and P99 against users](rps_p99_vs_users.png)",
        "",
        "![CPU against users](cpu_vs_users.png)",
        "",
        "![The run over time, coloured by verdict](timeline.png)",
        "",
        "## Flame graph of the step at the breaking point",
        "",
        *_profile_lines(report.profile, folder),
    ]
    return "\n".join(lines)


def write_report(report: ExperimentReport, folder: Path) -> Path:
    """report.json, summary.md and the three charts in `folder`; returns the summary's path."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "report.json").write_text(json.dumps(report.to_json(), indent=1) + "\n")
    chart_rps_p99([report], folder / "rps_p99_vs_users.png", f"{report.scenario}: throughput and latency")
    chart_cpu([report], folder / "cpu_vs_users.png", f"{report.scenario}: CPU against users")
    chart_timeline(report, folder / "timeline.png")
    summary = folder / "summary.md"
    summary.write_text(summary_markdown(report, folder))
    return summary


def load_report(folder: Path) -> ExperimentReport:
    path = folder / "report.json"
    if not path.is_file():
        raise FileNotFoundError(f"no report in {folder}: run `make experiment SCENARIO={folder.name}` first")
    return ExperimentReport.from_json(json.loads(path.read_text()))
