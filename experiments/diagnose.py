"""The verdict in a terminal: what the lab's diagnosis says now, the evidence behind it, and what to change.

    make diagnose                          (python -m experiments.diagnose)
    make diagnose DIAGNOSE_ARGS=--watch    refreshed in place every 5 s, until Ctrl-C

It asks the lab's Prometheus (compose or native, 127.0.0.1:$PROMETHEUS_PORT by default, or --prometheus URL)
for the verdict of prometheus/rules/diagnosis.yml, the summary of its alert when it fires, the advice its alert
carries, and each figure the rules weigh, beside the threshold the rules compare it with. The thresholds are
those of diagnosis.yml (a unit test checks each against the rule's expression); the figures are read, never
computed here.
"""

from __future__ import annotations

import argparse
import math
import operator
import os
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx2

from lab.errors import LabError
from lab.prometheus import PrometheusClient
from model_api.vocabulary import MODEL_ROUTES_REGEX, P999_MIN_SAMPLES, TOO_FEW_REQUESTS

NO_CLIENT = "unavailable: no client-side data (the load is not coming from the lab's Locust)"


@dataclass(frozen=True)
class Evidence:
    """One figure the rules weigh: its query, how to print it, and the comparison diagnosis.yml makes with it,
    word for word (a unit test finds each there), from which the threshold is read."""

    name: str
    expr: str
    show: Callable[[float], str]
    rule: str = ""  # e.g. "max(pid:lab_worker_cpu:rate30s) > 0.75"; empty: shown for context
    client_side: bool = False  # exists only when the lab's Locust sends the load

    @property
    def threshold(self) -> tuple[str, float] | None:
        found = COMPARISON.search(self.rule)
        return (found["op"], float(found["value"])) if found else None

    def crossed(self, value: float) -> bool:
        return self.threshold is not None and OPERATORS[self.threshold[0]](value, self.threshold[1])

    def describe(self) -> str:
        return f"{self.threshold[0]} {self.show(self.threshold[1])}" if self.threshold else ""


COMPARISON = re.compile(r"(?P<op>>=|<=|>|<)\s*(?P<value>[0-9.]+)$")
OPERATORS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
}


def percent(value: float) -> str:
    return f"{value:.0%}"


def ms(value: float) -> str:
    return f"{value * 1000:.0f} ms"


def plain(value: float) -> str:
    return f"{value:.2f}"


def count(value: float) -> str:
    return f"{value:.0f}"


EVIDENCE = [
    Evidence("requests per second (server)", f'sum(route:lab_http_requests:rate30s{{route=~"{MODEL_ROUTES_REGEX}"}})',
             lambda v: f"{v:.1f}"),
    Evidence("P99, the worse of client and server", "job:lab_p99_seconds:worse_rate30s", ms),
    # NaN where no route's window holds P999_MIN_SAMPLES requests: printed as TOO_FEW_REQUESTS, not a number.
    Evidence("P99.9, the worse of client and server", "job:lab_p999_seconds:worse_rate30s", ms),
    Evidence(f"requests behind it (P99.9 needs {P999_MIN_SAMPLES})", "job:lab_http_requests:max_count30s", count),
    Evidence("the SLO (P99 over half of it: requests wait)", "job:lab_slo_seconds:max", ms),
    Evidence("failures (Locust's, or 5xx)", "job:lab_failures:worse_ratio_rate30s", percent,
             "job:lab_failures:worse_ratio_rate30s > 0.01"),
    Evidence("waiting / being served, per request", "job:lab_request_wait_per_service:ratio_rate30s", plain,
             "job:lab_request_wait_per_service:ratio_rate30s >= 1"),
    Evidence("share of the wait that is for a CPU", "job:lab_request_wait_for_cpu:ratio_rate30s", percent,
             "job:lab_request_wait_for_cpu:ratio_rate30s >= 0.5"),
    Evidence("CPU / limit (busiest replica)", "max(instance:lab_cpu_utilization:ratio_rate30s)", percent,
             "max(instance:lab_cpu_utilization:ratio_rate30s) > 0.75"),
    Evidence("throttled periods", "max(instance:lab_cpu_throttled_periods:ratio_rate30s)", percent,
             "max(instance:lab_cpu_throttled_periods:ratio_rate30s) > 0.25"),
    Evidence("busiest gunicorn worker (cores)", "max(pid:lab_worker_cpu:rate30s)", plain,
             "max(pid:lab_worker_cpu:rate30s) > 0.75"),
    Evidence("in flight per thread", "max(instance:lab_http_requests_in_flight_per_capacity:ratio)", plain,
             "max(instance:lab_http_requests_in_flight_per_capacity:ratio) >= 0.9"),
    Evidence("requests waiting for a thread", "sum(lab_threadpool_tasks_waiting)", count,
             "sum(lab_threadpool_tasks_waiting) > 0"),
    Evidence("share of the time spent downstream", "job:lab_downstream_share:ratio_rate30s", percent,
             "job:lab_downstream_share:ratio_rate30s > 0.5"),
    Evidence("event-loop lag, mean", "job:lab_event_loop_lag_seconds:mean_rate30s", ms,
             "job:lab_event_loop_lag_seconds:mean_rate30s > 0.05"),
    Evidence("event-loop lag, worst worker", "job:lab_event_loop_lag_seconds:max", ms,
             "job:lab_event_loop_lag_seconds:max > 0.1"),
    Evidence("accept queue (connections)", "job:lab_listen_queue_connections:sum", count,
             "job:lab_listen_queue_connections:sum > 0"),
    Evidence("queueing gap: client P99 - server P99", "max(route:lab_queueing_gap_seconds:p99_rate30s)", ms,
             "max(route:lab_queueing_gap_seconds:p99_rate30s) > 0.1", client_side=True),
    Evidence("requests in the balancer's queue", "job:haproxy_backend_queue:sum", count,
             "job:haproxy_backend_queue:sum > 0"),
    Evidence("busiest Locust worker CPU (%)", "max(locust_worker_cpu_percent)", count, client_side=True),
]  # fmt: skip


def advice_and_summary(prometheus: PrometheusClient, verdict: str) -> tuple[str, str | None]:
    """The advice label of the verdict's alert rule, and its summary if the alert fires (it waits 10 s)."""
    alert_rules = [
        rule for group in prometheus.rule_groups() for rule in group["rules"] if rule.get("type") == "alerting"
    ]
    for rule in alert_rules:
        if re.search(rf'verdict="{re.escape(verdict)}"', rule.get("query", "")):
            firing = [alert for alert in rule.get("alerts", []) if alert.get("state") == "firing"]
            summary = firing[0]["annotations"].get("summary") if firing else None
            return rule.get("labels", {}).get("advice", ""), summary
    return "", None


def report(prometheus: PrometheusClient) -> str:
    """The verdict, its alert's summary, the advice, and the evidence table, as text."""
    verdicts = [series["metric"].get("verdict", "?") for series in prometheus.query("job:lab_diagnosis:verdict")]
    client = prometheus.value("max(locust_users)") is not None
    lines = []
    if verdicts:
        verdict = verdicts[0]
        advice, summary = advice_and_summary(prometheus, verdict)
        lines.append(f"Verdict: {verdict}")
        if summary:
            lines.append(f"  {summary}")
        lines.append(f"What to change: {advice}" if advice else "")
    else:
        lines.append("Verdict: none (no traffic, or its first 15 s: the diagnosis waits for its 30 s windows)")
    lines += ["", f"{'evidence':<44} {'now':>8}   the rule's threshold", f"{'-' * 44} {'-' * 8}   {'-' * 20}"]
    for item in EVIDENCE:
        value = prometheus.value(item.expr)
        if value is None:
            note = NO_CLIENT if item.client_side and not client else "no data"
            lines.append(f"{item.name:<44} {'-':>8}   {item.describe()}{'; ' if item.rule else ''}{note}")
            continue
        if math.isnan(value):  # a percentile the rules give no number for: too few requests in its window
            lines.append(f"{item.name:<44} {TOO_FEW_REQUESTS:>8}   {item.describe()}")
            continue
        mark = "  <" if item.crossed(value) else ""
        lines.append(f"{item.name:<44} {item.show(value):>8}   {item.describe()}{mark}")
    lines += ["", "'<' marks a figure past its threshold. The rules: docs/prometheus.md."]
    return "\n".join(lines)


def default_url() -> str:
    return f"http://127.0.0.1:{os.environ.get('PROMETHEUS_PORT', '9090')}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make diagnose", description=__doc__.split("\n")[0])
    parser.add_argument("--prometheus", default=default_url(), help="the lab's Prometheus (default: %(default)s)")
    parser.add_argument("--watch", action="store_true", help="refresh in place every --every seconds")
    parser.add_argument("--every", type=float, default=5.0, help="seconds between refreshes (default: 5)")
    args = parser.parse_args(argv)
    prometheus = PrometheusClient(args.prometheus.rstrip("/"))
    try:
        if not args.watch:
            print(report(prometheus))
            return 0
        while True:
            text = report(prometheus)
            print(f"\x1b[H\x1b[2J{time.strftime('%H:%M:%S')}  {args.prometheus}  (Ctrl-C stops)\n\n{text}", flush=True)
            time.sleep(args.every)
    except httpx2.HTTPError as error:
        print(
            f"make diagnose: cannot reach the lab's Prometheus at {args.prometheus} ({error}): start the lab "
            "(`docker compose up`, or the native Prometheus of docs/prometheus.md), or pass --prometheus URL",
            file=sys.stderr,
        )
        return 1
    except LabError as error:
        print(f"make diagnose: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
