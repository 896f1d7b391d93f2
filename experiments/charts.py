"""The experiment report's PNG charts (matplotlib): RPS and P99 against users, CPU against users, and the run over
time coloured by verdict. `experiments.report.write_report` and `experiments.compare` draw them."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")  # files only, no screen
import matplotlib.pyplot as plt

from model_api.vocabulary import VERDICTS

if TYPE_CHECKING:
    from experiments.report import ExperimentReport


def _xy(report: ExperimentReport, key: str, scale: float = 1) -> tuple[list[int], list[float]]:
    points = [(s.users, getattr(s, key) * scale) for s in report.steps if getattr(s, key) is not None]
    return [p[0] for p in points], [p[1] for p in points]


def chart_rps_p99(reports: list[ExperimentReport], path: Path, title: str) -> None:
    """RPS (left) and client P99 (right) against users, one colour per report.

    From Locust's per-step measurement where the breaking-point summary has it: exact for each step, where
    Prometheus's 30 s windows would lag behind short steps. Server P99 (single reports) comes from Prometheus.
    """
    fig, (ax_rps, ax_p99) = plt.subplots(1, 2, figsize=(12, 4.5))
    for report in reports:
        measured = report.measured_steps()
        if measured:
            users = [s["users"] for s in measured]
            ax_rps.plot(users, [s["rps"] for s in measured], marker="o", label=report.scenario)
            ax_p99.plot(users, [s["p99_ms"] for s in measured], marker="o", label=f"{report.scenario} client")
        else:
            ax_rps.plot(*_xy(report, "rps"), marker="o", label=report.scenario)
            ax_p99.plot(*_xy(report, "p99_client_ms"), marker="o", label=f"{report.scenario} client")
        if len(reports) == 1:
            ax_p99.plot(*_xy(report, "p99_server_ms"), marker=".", linestyle="--", label="server (Prometheus)")
    slo = (reports[0].breaking_point or {}).get("slo_ms")
    if slo:
        ax_p99.axhline(slo, color="grey", linestyle=":", label=f"SLO {slo:.0f} ms")
    ax_rps.set(title="Requests per second", xlabel="users", ylabel="req/s")
    ax_p99.set(title="P99 latency", xlabel="users", ylabel="ms")
    for ax in (ax_rps, ax_p99):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def chart_cpu(reports: list[ExperimentReport], path: Path, title: str) -> None:
    """CPU utilization against the limit (100% = the limit) against users."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for report in reports:
        ax.plot(*_xy(report, "cpu_utilization", 100), marker="o", label=report.scenario)
    ax.axhline(100, color="red", linestyle="--", label="the CPU limit")
    ax.set(title=title, xlabel="users", ylabel="CPU used, % of the limit", ylim=(0, 115))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _increases(counter: list[float | None]) -> list[int]:
    """The indexes where a counter rose since its last known value."""
    rises, last = [], None
    for i, value in enumerate(counter):
        if value is not None:
            if last is not None and value > last:
                rises.append(i)
            last = value
    return rises


def chart_timeline(report: ExperimentReport, path: Path) -> None:
    """Users, RPS, P99, CPU and memory over the run, the background coloured by the verdict of the moment, a dotted
    line where the OOM killer took a process."""
    series = report.series
    t0 = series.timestamps[0]
    t = [x - t0 for x in series.timestamps]
    v = series.values
    panels = [
        (
            "users and RPS",
            [
                ("users", "users", 1),
                ("rps_client", "client RPS", 1),
                ("failures_client", "client failures/s", 1),
                ("not_ready_rps", "API's 503s/s: not loaded", 1),
            ],
        ),
        (
            "P99, P99.9 (ms)",
            [
                ("p99_client", "client P99", 1000),
                ("p99_server", "server P99", 1000),
                # only where a 30 s window held P999_MIN_SAMPLES requests: a gap elsewhere
                ("p999_client", "client P99.9", 1000),
                ("p999_server", "server P99.9", 1000),
            ],
        ),
        (
            "% (of the limit)",
            [
                ("cpu_utilization", "CPU / limit", 100),
                ("cpu_throttled", "throttled periods", 100),
                ("memory_utilization", "memory / limit", 100),
                ("cache_hit_ratio", "cache hit ratio", 100),
            ],
        ),
    ]
    kills = _increases(v.get("oom_kills") or [])
    fig, axes = plt.subplots(len(panels), 1, figsize=(12, 7), sharex=True)
    for ax, (label, lines) in zip(axes, panels, strict=True):
        for name, legend, scale in lines:
            if any(v.get(name) or []):  # a series the run has (a report of an older lab may lack it), not all None
                ax.plot(t, [None if x is None else x * scale for x in v[name]], label=legend)
        for i, verdict in enumerate(series.verdicts):
            if verdict and i + 1 < len(t):
                ax.axvspan(t[i], t[i + 1], color=VERDICTS.get(verdict, "white"), alpha=0.15, linewidth=0)
        for n, i in enumerate(kills):  # where the OOM killer took a process (seen at the next scrape)
            ax.axvline(t[i], color="black", linestyle=":", label="OOM kill" if n == 0 else None)
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="upper left")
    axes[-1].set_xlabel("seconds since the start")
    shown = [v for v in VERDICTS if v in report.verdicts]
    handles = [plt.Rectangle((0, 0), 1, 1, color=VERDICTS[v], alpha=0.4) for v in shown]
    fig.legend(handles, shown, loc="upper right", ncol=len(shown) or 1, fontsize=8, title="verdict")
    fig.suptitle(f"{report.scenario}: the run over time")
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    fig.savefig(path, dpi=100)
    plt.close(fig)
