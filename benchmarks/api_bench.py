"""API benchmarks with wrk: what metrics cost, what micro-batching gains, how long a scrape takes, how the
handler styles compare, what ONNX Runtime changes. One run, side by side, on this machine; see benchmarks/README.md.

    python -m benchmarks.api_bench [--quick] [--duration 8] [--warmup 2] [--repeats 3]      (or `make bench`)

Every server is the real API under gunicorn on a free 127.0.0.1 port, started as `make api` starts it, by the
lab's harness (lab/api.py). Results go to benchmarks/results/api-<UTC timestamp>.md and .json.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from benchmarks import handler_styles, instrumentation, model_runtimes, scrape, serving_path
from benchmarks.harness import Bench, Options, ensure_artifacts, progress, require_tools
from benchmarks.machine import cpu_use, describe_machine
from benchmarks.render import render
from benchmarks.report import Report, collect_warnings
from benchmarks.wrk import Wrk, write_get_lua, write_lua
from lab.errors import LabError
from lab.paths import MODEL_DIR, REPO
from lab.processes import clean_env
from model_api.data import COURSE_APPLICANT, COURSE_HOUSE

RESULTS_DIR = REPO / "benchmarks" / "results"


def parse_args(argv: list[str] | None, default_model_dir: Path) -> tuple[Options, Path]:
    """Command-line options; --quick shortens every point to a smoke run."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=8, help="measured seconds per point (default 8)")
    parser.add_argument("--warmup", type=int, default=2, help="warm-up seconds before each point (default 2)")
    parser.add_argument("--repeats", type=int, default=3, help="instrumentation runs per side (default 3)")
    parser.add_argument("--scrapes", type=int, default=50, help="sequential GET /metrics to time (default 50)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 2 s per point, 1 s warm-up, 2 repeats")
    parser.add_argument("--model-dir", type=Path, default=default_model_dir, help="trained artifacts")
    parser.add_argument("--out-dir", type=Path, default=RESULTS_DIR, help="where to write the results")
    args = parser.parse_args(argv)
    if args.quick:
        args.duration, args.warmup, args.repeats, args.scrapes = 2, 1, 2, min(args.scrapes, 50)
    if args.duration < 1 or args.warmup < 0 or args.repeats < 1 or args.scrapes < 1:
        parser.error("--duration and --repeats and --scrapes must be at least 1, --warmup at least 0")
    options = Options(
        duration_s=args.duration,
        warmup_s=args.warmup,
        repeats=args.repeats,
        scrapes=args.scrapes,
        model_dir=args.model_dir.resolve(),
        quick=args.quick,
    )
    return options, args.out_dir


def measure(options: Options, out_dir: Path, started: datetime) -> Report:
    """Run the benchmarks; the wrk scripts are kept in `out_dir`/lua so the command lines can be rerun."""
    report = Report(started_utc=started.isoformat(timespec="seconds"), machine=describe_machine(), options=options)
    lua_dir = out_dir / "lua"
    lua_dir.mkdir(parents=True, exist_ok=True)
    scripts = {
        "/predict": write_lua(lua_dir, "house", COURSE_HOUSE),
        "/classify": write_lua(lua_dir, "applicant", COURSE_APPLICANT),
        "/healthz": write_get_lua(lua_dir, "healthz"),
    }
    machine = report.machine
    progress(f"{machine.nproc} CPUs, {machine.cpu_model}; {machine.wrk}; models in {options.model_dir}")
    with tempfile.TemporaryDirectory(prefix="api-bench-") as scratch:
        bench = Bench(options, Path(scratch), Wrk(clean_env(), scripts))
        report.instrumentation = instrumentation.run(bench)
        report.matrix = handler_styles.run(bench)
        report.batching = handler_styles.batching_from_matrix(report.matrix)
        report.runtimes = model_runtimes.run(bench, report.matrix)
        report.serving_path = serving_path.run(bench, report.matrix, report.runtimes)
        report.scrape = scrape.run(bench)
        report.serving_path.targets = serving_path.targets(report.serving_path, report.instrumentation, report.scrape)
    machine.after = cpu_use()
    report.warnings = collect_warnings(report)
    return report


def save(report: Report, out_dir: Path, stamp: str) -> tuple[Path, Path]:
    """Write api-<stamp>.md and api-<stamp>.json."""
    out_dir.mkdir(parents=True, exist_ok=True)
    markdown, raw = out_dir / f"api-{stamp}.md", out_dir / f"api-{stamp}.json"
    chart = serving_path.chart(report.serving_path, out_dir / f"api-{stamp}.png") if report.serving_path else None
    report.chart = chart.name if chart else None
    markdown.write_text(render(report))
    raw.write_text(report.to_json() + "\n")
    return markdown, raw


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks, print the tables, save them; a failure is one line on stderr and exit code 1."""
    # The one read of the environment here; children get a copy without any LAB_ knob (clean_env).
    options, out_dir = parse_args(argv, Path(os.environ.get("LAB_MODEL_DIR") or MODEL_DIR))
    started = datetime.now(UTC)
    try:
        require_tools()
        ensure_artifacts(options.model_dir)
        report = measure(options, out_dir, started)
    except LabError as error:
        print(f"api_bench: {error}", file=sys.stderr)
        return 1
    markdown, raw = save(report, out_dir, started.strftime("%Y%m%dT%H%M%SZ"))
    print()
    print(render(report))
    progress(f"wrote {markdown.relative_to(REPO) if markdown.is_relative_to(REPO) else markdown} and {raw.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
