"""The lab's Locust options. Each is a command-line flag, a LOCUST_* environment variable and a field of the
web UI's start form, like Locust's own options; Locust passes them from the master to its workers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from locust import events
from model_api.vocabulary import BREAKING_POINT, SLO_MS


@dataclass(frozen=True)
class Option:
    default: Any
    help: str
    extra: dict[str, Any] = field(default_factory=dict)  # further add_argument keywords


OPTIONS: dict[str, Option] = {
    "slo_ms": Option(SLO_MS, "A response slower than this (ms) is recorded as a failure"),  # the course's threshold
    "wait_min": Option(0.01, "Closed workload: shortest wait between a user's requests (s)"),
    "wait_max": Option(2.0, "Closed workload: longest wait between a user's requests (s)"),
    "credit_weight": Option(3, "Relative share of credit-risk users (POST /classify)"),
    "house_weight": Option(1, "Relative share of house-price users (POST /predict)"),
    "workload": Option(
        "closed",
        "closed: users wait for each answer, then think; open: each user sends --open-rate requests per second "
        "whether or not the earlier ones have been answered",
        {"choices": ["closed", "open"]},
    ),
    "open_rate": Option(1.0, "Open workload: requests per second per user"),
    # A catalog makes requests repeat, as real ones do, so that an answer cache (LAB_CACHE) has hits to find.
    "catalog_size": Option(
        0, "Distinct applicants and houses the users draw from (0: an endless varied stream, none twice)"
    ),
    "catalog_skew": Option(
        1.0, "How unevenly the catalog is drawn: the Zipf exponent (0: uniform; 1: the top 1% take about half)"
    ),
    "exporter_port": Option(
        9646, "Port of the Prometheus exporter on the master (0: off)", {"include_in_web_ui": False}
    ),
    # Breaking point: steps of users, each held long enough to measure; stop at the first that breaks the SLO.
    "bp_start_users": Option(BREAKING_POINT["start_users"], "Breaking point: users in the first step"),
    "bp_step_users": Option(BREAKING_POINT["step_users"], "Breaking point: users added per step"),
    "bp_step_seconds": Option(
        BREAKING_POINT["step_seconds"], "Breaking point: seconds each step is measured (after its users have spawned)"
    ),
    "bp_max_users": Option(BREAKING_POINT["max_users"], "Breaking point: stop here if the SLO never breaks"),
    "bp_spawn_rate": Option(BREAKING_POINT["spawn_rate"], "Breaking point: users started per second"),
    "bp_max_failure_ratio": Option(
        BREAKING_POINT["max_failure_ratio"], "Breaking point: a step with more failures than this (0.01 = 1%) breaks"
    ),
    # Spike: steady, burst, steady again.
    "spike_base_users": Option(10, "Spike: users before and after the burst"),
    "spike_peak_users": Option(60, "Spike: users during the burst"),
    "spike_base_seconds": Option(30.0, "Spike: seconds of steady load before the burst"),
    "spike_peak_seconds": Option(20.0, "Spike: seconds the burst lasts"),
    "spike_recovery_seconds": Option(40.0, "Spike: seconds of steady load after the burst"),
}
DEFAULTS = {name: option.default for name, option in OPTIONS.items()}


@events.init_command_line_parser.add_listener
def add_options(parser: Any) -> None:
    for name, option in OPTIONS.items():
        parser.add_argument(
            f"--{name.replace('_', '-')}",
            type=type(option.default),
            default=option.default,
            env_var=f"LOCUST_{name.upper()}",
            help=option.help,
            **option.extra,
        )
