"""Take a flame graph of a running lab: an SVG and a speedscope JSON in reports/profiles/ (docs/profiling.md).

    python -m experiments.profile                         # the compose lab's API (docker compose up)
    python -m experiments.profile --native                # a native API on 127.0.0.1:8000 (make api)
    python -m experiments.profile --target locust --seconds 20
    make profile PROFILE_ARGS="--native --scenario cpu-bound"

py-spy records the API's gunicorn master and its workers (or a Locust worker) while you put load on it: start
a swarm first. The speedscope file covers the first half of the time, the SVG the second half.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lab.compose import ComposeLab
from lab.errors import LabError
from lab.paths import REPO
from lab.profiling import (
    PROFILES_DIR,
    api_target,
    busiest,
    compose_target,
    gunicorn_master,
    locust_target,
    locust_workers,
    read_speedscope,
    record,
)

COMPOSE_PROJECT = "model-serving-lab"  # compose.yaml's `name:`


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--native", action="store_true", help="a lab running as processes on this machine")
    mode.add_argument("--compose", metavar="PROJECT", default=COMPOSE_PROJECT, help="the compose project (%(default)s)")
    parser.add_argument("--target", choices=["api", "locust"], default="api", help="what to record (%(default)s)")
    parser.add_argument("--port", type=int, default=8000, help="the native API's port (%(default)s)")
    parser.add_argument("--seconds", type=int, default=20, help="how long to record, both files (%(default)s)")
    parser.add_argument("--scenario", default="lab", help="the name the files start with (%(default)s)")
    parser.add_argument("--out", type=Path, default=PROFILES_DIR, help="where the files go (%(default)s)")
    args = parser.parse_args(argv)
    if args.seconds < 2:
        parser.error("--seconds must be at least 2 (one second for each file)")
    try:
        if args.native:
            target = api_target(gunicorn_master(args.port)) if args.target == "api" else None
            target = target or locust_target(busiest(locust_workers()))
        else:
            lab = ComposeLab("", "", REPO / "reports", project=args.compose, files=["compose.yaml"])
            target = compose_target(lab, "api" if args.target == "api" else "locust-worker")
        print(f"recording {target.description} for {args.seconds}s at the same time as your load...", flush=True)
        profile = record(target, args.seconds, args.out, args.scenario)
    except LabError as error:
        print(f"profile failed: {error}", file=sys.stderr)
        return 1
    samples = read_speedscope(profile.speedscope)
    print(f"flame graph (open in a browser): {profile.svg}")
    print(f"speedscope (open at https://www.speedscope.app): {profile.speedscope}, {len(samples.stacks)} samples")
    return 0


if __name__ == "__main__":
    sys.exit(main())
