"""The lab's Locust options. Each is a command-line flag, a LOCUST_* environment variable and a field of the
web UI's start form, like Locust's own options; Locust passes them from the master to its workers."""

from __future__ import annotations

from locust import events

DEFAULTS = {
    "slo_ms": 1000.0,  # the threshold the course uses
    "wait_min": 0.01,
    "wait_max": 2.0,
    "credit_weight": 3,
    "house_weight": 1,
    "workload": "closed",
    "open_rate": 1.0,
    "exporter_port": 9646,
    # Breaking point: steps of users, each held long enough to measure; stop at the first that breaks the SLO.
    "bp_start_users": 5,
    "bp_step_users": 5,
    "bp_step_seconds": 20.0,
    "bp_max_users": 200,
    "bp_spawn_rate": 10.0,
    "bp_max_failure_ratio": 0.01,
    # Spike: steady, burst, steady again.
    "spike_base_users": 10,
    "spike_peak_users": 60,
    "spike_base_seconds": 30.0,
    "spike_peak_seconds": 20.0,
    "spike_recovery_seconds": 40.0,
}

SHAPE_HELP = {
    "bp_start_users": "Breaking point: users in the first step",
    "bp_step_users": "Breaking point: users added per step",
    "bp_step_seconds": "Breaking point: seconds each step is measured (after its users have spawned)",
    "bp_max_users": "Breaking point: stop here if the SLO never breaks",
    "bp_spawn_rate": "Breaking point: users started per second",
    "bp_max_failure_ratio": "Breaking point: a step with more failures than this (0.01 = 1%) breaks",
    "spike_base_users": "Spike: users before and after the burst",
    "spike_peak_users": "Spike: users during the burst",
    "spike_base_seconds": "Spike: seconds of steady load before the burst",
    "spike_peak_seconds": "Spike: seconds the burst lasts",
    "spike_recovery_seconds": "Spike: seconds of steady load after the burst",
}


@events.init_command_line_parser.add_listener
def add_options(parser) -> None:
    parser.add_argument(
        "--slo-ms",
        type=float,
        env_var="LOCUST_SLO_MS",
        default=DEFAULTS["slo_ms"],
        help="A response slower than this (ms) is recorded as a failure",
    )
    parser.add_argument(
        "--wait-min",
        type=float,
        env_var="LOCUST_WAIT_MIN",
        default=DEFAULTS["wait_min"],
        help="Closed workload: shortest wait between a user's requests (s)",
    )
    parser.add_argument(
        "--wait-max",
        type=float,
        env_var="LOCUST_WAIT_MAX",
        default=DEFAULTS["wait_max"],
        help="Closed workload: longest wait between a user's requests (s)",
    )
    parser.add_argument(
        "--credit-weight",
        type=int,
        env_var="LOCUST_CREDIT_WEIGHT",
        default=DEFAULTS["credit_weight"],
        help="Relative share of credit-risk users (POST /classify)",
    )
    parser.add_argument(
        "--house-weight",
        type=int,
        env_var="LOCUST_HOUSE_WEIGHT",
        default=DEFAULTS["house_weight"],
        help="Relative share of house-price users (POST /predict)",
    )
    parser.add_argument(
        "--workload",
        choices=["closed", "open"],
        env_var="LOCUST_WORKLOAD",
        default=DEFAULTS["workload"],
        help="closed: users wait for each answer, then think; open: each user sends --open-rate requests per "
        "second whether or not the earlier ones have been answered",
    )
    parser.add_argument(
        "--open-rate",
        type=float,
        env_var="LOCUST_OPEN_RATE",
        default=DEFAULTS["open_rate"],
        help="Open workload: requests per second per user",
    )
    for name, help_text in SHAPE_HELP.items():
        default = DEFAULTS[name]
        parser.add_argument(
            f"--{name.replace('_', '-')}",
            type=type(default),
            default=default,
            env_var=f"LOCUST_{name.upper()}",
            help=help_text,
        )
    parser.add_argument(
        "--exporter-port",
        type=int,
        env_var="LOCUST_EXPORTER_PORT",
        default=DEFAULTS["exporter_port"],
        include_in_web_ui=False,
        help="Port of the Prometheus exporter on the master (0: off)",
    )
