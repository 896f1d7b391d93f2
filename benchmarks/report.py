"""Everything one benchmark run measured, the warnings it deserves, and its JSON (benchmarks/render.py writes
the Markdown)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

from benchmarks.handler_styles import TARGET_BATCHING_P99_MS, TARGET_BATCHING_RATIO, BatchingResult
from benchmarks.harness import Options
from benchmarks.instrumentation import TARGET_METRICS_DROP_PCT, InstrumentationResult
from benchmarks.machine import Machine, busy_warnings
from benchmarks.model_runtimes import RuntimeComparison
from benchmarks.scrape import TARGET_SCRAPE_MS, ScrapeResult
from benchmarks.serving_path import BENTOML, CEILING, HEALTHZ, SKLEARN_BATCHED_NO_METRICS, ServingPathResult
from benchmarks.wrk import WrkResult


@dataclass
class Report:
    """Everything one run measured; written as JSON and rendered as Markdown."""

    started_utc: str
    machine: Machine
    options: Options
    instrumentation: InstrumentationResult | None = None
    batching: BatchingResult | None = None
    scrape: ScrapeResult | None = None
    matrix: list[WrkResult] = field(default_factory=list)
    runtimes: list[RuntimeComparison] = field(default_factory=list)
    serving_path: ServingPathResult | None = None
    chart: str | None = None  # the serving path's chart, beside the Markdown
    warnings: list[str] = field(default_factory=list)

    def all_runs(self) -> list[WrkResult]:
        """Every measured wrk run, in the order it ran."""
        runs = list(self.instrumentation.runs) if self.instrumentation else []
        runs += self.matrix
        runs += [comparison.onnx for comparison in self.runtimes]  # their scikit-learn side is in the matrix
        runs += self.scrape.traffic if self.scrape else []
        if self.serving_path:  # only its own points: the others are the matrix's and benchmark 5's
            own = (CEILING, HEALTHZ, SKLEARN_BATCHED_NO_METRICS, BENTOML)
            runs += [row.result for row in self.serving_path.rows if row.server in own and row.result]
        return runs

    def to_json(self) -> str:
        """The raw numbers, every run included."""
        return json.dumps(asdict(self), indent=2, default=str)  # str: the paths


def collect_warnings(report: Report) -> list[str]:
    """Errors wrk saw, a busy machine and targets missed, so that they are not lost in the tables."""
    warnings = [f"{r.label} ({r.path}): {r.describe_errors()}" for r in report.all_runs() if r.errors]
    warnings += busy_warnings(report.machine)
    if report.instrumentation and not report.instrumentation.met:
        cost = report.instrumentation.metric_share_pct
        warnings.append(
            f"metrics cost {cost:.1f}% of the server's CPU per request (target <= {TARGET_METRICS_DROP_PCT:.0f}%)"
        )
    if report.batching and not report.batching.ratio_met:
        warnings.append(f"batching gained {report.batching.ratio:.1f}x (target >= {TARGET_BATCHING_RATIO:.0f}x)")
    if report.batching and not report.batching.p99_met:
        p99 = report.batching.batched.p99_ms
        warnings.append(f"batched P99 {p99:.0f} ms (target < {TARGET_BATCHING_P99_MS:.0f} ms)")
    if report.serving_path:
        warnings += [
            f"target missed: {t.name}" + (f" ({', '.join(t.conditions)})" if t.conditions else "")
            for t in report.serving_path.targets
            if not t.met
        ]
    if report.scrape and not report.scrape.met:
        warnings.append(f"/metrics P99 {report.scrape.p99_ms:.0f} ms (target < {TARGET_SCRAPE_MS:.0f} ms)")
    return warnings
