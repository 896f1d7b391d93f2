"""The flame graphs of docs/reading-flame-graphs.md, taken again on this machine:

    python -m experiments.flamegraphs [--out docs/img/flamegraphs] [--seconds 10]      (make flamegraphs)

For each scenario of the guide, the API runs natively with the scenario's knobs, 6 client threads on 127.0.0.1
keep it busy, and py-spy records it as `make profile` does. Each scenario's SVG is written as <scenario>.svg, and
the shares the guide quotes are printed as a Markdown table.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

from lab.api import running_api
from lab.errors import LabError
from lab.load import closed_loop
from lab.markdown import table
from lab.paths import MODEL_DIR, REPO
from lab.profiling import Samples, api_target, in_framework, in_model, read_speedscope, record
from lab.scenarios import api_service

SCENARIOS = ("cpu-bound", "io-bound", "blocking-async", "onnx")
DEFAULT_OUT = REPO / "docs" / "img" / "flamegraphs"


def figures(samples: Samples) -> list[str]:
    """What the guide reads off each flame graph: how much of the time threads waited (in the downstream call's
    `time.sleep`, among others), and of the time they worked, how much went to the model and how much to the web
    framework around it."""
    busy = samples.busy()
    return [
        f"{1 - busy.total / samples.total:.0%}",
        f"{samples.share(lambda frame: frame.name == 'time_sleep'):.0%}",
        f"{busy.share(in_model):.0%}",
        f"{busy.share(in_framework, unless=in_model):.0%}",
    ]


def take(scenario: str, seconds: int, workdir: Path, out: Path, model_dir: Path) -> list[str]:
    service = api_service(scenario)
    with (
        running_api(workdir / scenario, model_dir, service.workers, **service.environment) as api,
        closed_loop(api.url),
    ):
        profile = record(api_target(api.process.pid), seconds, workdir / "profiles", scenario)
    shutil.copyfile(profile.svg, out / f"{scenario}.svg")
    return [scenario, *figures(read_speedscope(profile.speedscope))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where the SVGs go (%(default)s)")
    parser.add_argument("--seconds", type=int, default=10, help="recording time per scenario, both files together")
    parser.add_argument("--model-dir", type=Path, default=MODEL_DIR, help="the trained models (%(default)s)")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    try:
        with tempfile.TemporaryDirectory(prefix="flamegraphs-") as tmp:
            for scenario in SCENARIOS:
                print(f"[{scenario}] recording {args.seconds}s under load", flush=True)
                rows.append(take(scenario, args.seconds, Path(tmp), args.out, args.model_dir))
    except LabError as error:
        print(f"flame graphs failed: {error}", file=sys.stderr)
        return 1
    header = ["scenario", "threads waiting", "in time.sleep", "model (of the busy samples)", "framework (of the busy)"]
    print(table(header, rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
