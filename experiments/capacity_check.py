"""The capacity model checked against real replicas: one replica measured, the model fitted to it, and its
prediction for two replicas set against a real run of two (`docker compose --scale api=2`).

    make capacity-check                         # the configuration `make tune` chose, else the scenario's
    API_CPUS=0.5 make capacity-check            # smaller replicas, so that two leave a core for the load
    python -m experiments.capacity_check --help

Each run is one of `make tune`'s points: the probes (many users without pause, then one user alone) and the
breaking-point finder. Writes reports/capacity/: check.md, check.json and check.png. Not in CI: two compose runs
take about 5 minutes; docs/tuning.md has the result of a real one.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import httpx2

from experiments.capacity import held_rps, predict
from experiments.points import Config, Point, check_measurement_options, measure, measurement_options, say
from lab.errors import LabError
from lab.markdown import table
from lab.paths import REPO
from lab.scenarios import api_service

DEFAULT_OUT = REPO / "reports" / "capacity"
DEFAULT_TUNE = REPO / "reports" / "tune" / "tune.json"
REPLICAS = (1, 2)


def chosen_config(tune_report: Path, scenario: str | None) -> tuple[Config, str]:
    """The configuration `make tune` chose, if it wrote a report; else the scenario's own."""
    if tune_report.is_file():
        chosen = json.loads(tune_report.read_text())["chosen"]
        return Config(**chosen["config"]), f"chosen by make tune ({tune_report})"
    return Config.of_scenario(scenario), f"the scenario's own ({scenario or 'compose.yaml and .env'})"


def compare(points: dict[int, Point], slo_ms: float) -> list[dict[str, Any]]:
    """Per replica count: the model's held load and utilisation there, fitted to one replica, against the
    measured held load."""
    replica = points[1].replica(slo_ms)
    rows = []
    for replicas, point in points.items():
        predicted = held_rps(replica, replicas)
        measured = point.held_rps
        rows.append({
            "replicas": replicas, "predicted_held_rps": predicted, "measured_held_rps": measured,
            "error": (predicted - measured) / measured if measured else None,
            "predicted_saturation_rps": replicas * replica.saturation_rps,
            "measured_saturation_rps": point.saturation_rps,
            "predicted_cpu_per_replica": predict(replica, replicas, measured).cpu_per_replica if measured else None,
            "measured_peak_cores": point.peak_cores,
        })  # fmt: skip
    return rows


def chart(rows: list[dict[str, Any]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 4.5))
    x = [row["replicas"] for row in rows]
    width = 0.35
    axis.bar([v - width / 2 for v in x], [row["predicted_held_rps"] for row in rows], width, label="predicted")
    axis.bar([v + width / 2 for v in x], [row["measured_held_rps"] for row in rows], width, label="measured")
    for row in rows:
        if row["error"] is not None:
            top = max(row["predicted_held_rps"], row["measured_held_rps"])
            axis.annotate(f"{row['error']:+.0%}", (row["replicas"], top), ha="center", xytext=(0, 4),
                          textcoords="offset points")  # fmt: skip
    axis.set_xticks(x, [f"{v} replica{'s' if v > 1 else ''}" for v in x])
    axis.set_ylabel("held within the SLO (req/s)")
    axis.set_title(title, fontsize=10)
    axis.legend()
    axis.grid(axis="y", alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def markdown(result: dict[str, Any]) -> str:
    rows = [
        [str(r["replicas"]), f"{r['predicted_held_rps']:.0f}", f"{r['measured_held_rps']:.0f}",
         "–" if r["error"] is None else f"{r['error']:+.0%}", f"{r['predicted_saturation_rps']:.0f}",
         f"{r['measured_saturation_rps']:.0f}",
         "–" if r["measured_peak_cores"] is None else f"{r['measured_peak_cores']:.2f}"]
        for r in result["rows"]
    ]  # fmt: skip
    header = ["replicas", "predicted held req/s", "measured held req/s", "error", "predicted saturation req/s",
              "measured saturation req/s", "API CPU at peak (cores)"]  # fmt: skip
    return "\n".join([
        f"# The capacity model against real replicas: {result['label']}",
        "",
        f"Configuration {result['source']}; {result['cpus']:g} core(s) per replica; SLO {result['slo_ms']:.0f} ms; "
        f"{result['cores']} cores on this machine. The model is fitted to the one-replica run and predicts the rest.",
        "",
        table(header, rows, align="rrrrrrr"),
        "",
        "![Predicted against measured](check.png)",
        "",
    ])  # fmt: skip


def check(scenario: str | None, out: Path, tune_report: Path, slo_ms: float, step_seconds: float) -> dict[str, Any]:
    config, source = chosen_config(tune_report, scenario)
    points: dict[int, Point] = {}
    for replicas in REPLICAS:
        say(f"{replicas} replica(s) of {config.label()} in compose")
        points[replicas] = measure(config, scenario, False, slo_ms, step_seconds, replicas=replicas)
        say(f"  held {points[replicas].held_rps:.0f} req/s ({points[replicas].result})")
    result = {
        "label": config.label(), "source": source, "scenario": scenario or "default", "slo_ms": slo_ms,
        "cpus": api_service(scenario).cpus, "cores": os.cpu_count(), "rows": compare(points, slo_ms),
        "points": {str(k): p.to_json() for k, p in points.items()},
    }  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    (out / "check.json").write_text(json.dumps(result, indent=2) + "\n")
    chart(result["rows"], out / "check.png", f"{config.label()}: the model fitted to 1 replica")
    (out / "check.md").write_text(markdown(result))
    for row in result["rows"]:
        say(f"{row['replicas']} replica(s): predicted {row['predicted_held_rps']:.0f} req/s, measured "
            f"{row['measured_held_rps']:.0f}")  # fmt: skip
    say(f"report: {out / 'check.md'}")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    measurement_options(parser, DEFAULT_OUT)
    parser.add_argument("--tune", type=Path, default=DEFAULT_TUNE, help="the tune report whose choice to check")
    args = parser.parse_args(argv)
    try:
        check_measurement_options(args)
        check(args.scenario or None, args.out, args.tune, args.slo_ms, args.step_seconds)
    except (LabError, httpx2.HTTPError) as error:
        print(f"capacity-check: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
