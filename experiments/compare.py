"""Put several experiments' reports side by side: one table, one chart.

    python -m experiments.compare baseline async-io batching
    make compare SCENARIOS="baseline async-io batching"

Reads reports/experiments/<scenario>/report.json (run `make experiment SCENARIO=<name>` first) and writes
reports/experiments/comparison.md with comparison.png and comparison_cpu.png.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from experiments.charts import chart_cpu, chart_rps_p99
from experiments.report import ExperimentReport, _fmt, _ms, _p999, load_report
from experiments.run import DEFAULT_OUT
from lab.markdown import table

COLUMNS = ["scenario", "verdict under load", "time to verdict", "users (last step that held)", "RPS there",
           "P99 there", "P99.9 there", "peak RPS",
           "peak CPU / limit", "peak queueing gap", "peak loop lag", "peak batch"]  # fmt: skip


def _row(report: ExperimentReport) -> list[str]:
    held = report.held() or {}
    peaks = report.peaks
    return [
        report.scenario,
        report.verdict or "–",
        report.time_to_verdict_short(),
        str(held.get("users", "–")),
        _fmt(held.get("rps")),
        _fmt(held.get("p99_ms"), "{:.0f} ms"),
        _p999(held.get("p999_ms"), held.get("requests")),
        _fmt(peaks["rps_client"]),
        _fmt(peaks["cpu_utilization"], "{:.0%}"),
        _fmt(_ms(peaks["queueing_gap"]), "{:.0f} ms"),
        _fmt(_ms(peaks["event_loop_lag"]), "{:.0f} ms"),
        _fmt(peaks["batch_size"]),
    ]


def comparison_markdown(reports: list[ExperimentReport]) -> str:
    lines = [
        f"# Comparison: {', '.join(r.scenario for r in reports)}",
        "",
        "Each scenario under the same breaking-point load shape: users in steps until client P99 breaks the SLO. "
        "The time to verdict runs from the load crossing the API's capacity (the start of the step that broke the "
        "SLO; of the heaviest step where it held) to the diagnosis naming the verdict under load.",
        "",
        table(COLUMNS, [_row(r) for r in reports]),
        "",
        "![RPS and P99 against users](comparison.png)",
        "",
        "![CPU against users](comparison_cpu.png)",
        "",
    ]
    return "\n".join(lines)


def compare(names: list[str], out: Path) -> Path:
    reports = [load_report(out / name) for name in names]
    title = " vs ".join(names)
    chart_rps_p99(reports, out / "comparison.png", title)
    chart_cpu(reports, out / "comparison_cpu.png", f"CPU against users: {title}")
    path = out / "comparison.md"
    path.write_text(comparison_markdown(reports))
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("scenarios", nargs="+", help="scenarios whose reports to compare")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where the report folders are (%(default)s)")
    args = parser.parse_args(argv)
    try:
        path = compare(args.scenarios, args.out)
    except FileNotFoundError as error:
        print(f"compare: {error}", file=sys.stderr)
        return 1
    print(f"comparison: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
