"""Benchmarks 4 and 2: the handler styles side by side on POST /classify, one pinned worker, at 1, 16 and 64
connections; micro-batching's gain is read from the matrix's two async points at 64 connections."""

from __future__ import annotations

from dataclasses import dataclass

from benchmarks.harness import CLIENT_CORE, SERVER_CORE, Bench, check_endpoint, progress
from benchmarks.wrk import WrkResult
from model_api.data import COURSE_APPLICANT

# The three handler styles of the matrix: the LAB_ knobs that make each one.
STYLES: dict[str, dict[str, str]] = {
    "sync": {"LAB_HANDLER_STYLE": "sync", "LAB_BATCHING": "false"},
    "async": {"LAB_HANDLER_STYLE": "async", "LAB_BATCHING": "false"},
    "async+batching": {"LAB_HANDLER_STYLE": "async", "LAB_BATCHING": "true"},
}
MATRIX_CONNECTIONS = (1, 16, 64)
BATCHING_CONNECTIONS = 64
TARGET_BATCHING_RATIO = 10.0
TARGET_BATCHING_P99_MS = 150.0


@dataclass
class BatchingResult:
    """Benchmark 2: /classify at 64 connections on one pinned worker, async without and with batching."""

    unbatched: WrkResult
    batched: WrkResult
    ratio: float

    @property
    def ratio_met(self) -> bool:
        return self.ratio >= TARGET_BATCHING_RATIO

    @property
    def p99_met(self) -> bool:
        return self.batched.p99_ms < TARGET_BATCHING_P99_MS


def label(style: str, connections: int) -> str:
    return f"{style} c={connections}"


def style_of(result: WrkResult) -> str:
    return result.label.split(" c=")[0]


def run(bench: Bench) -> list[WrkResult]:
    """POST /classify on one worker pinned to one core, wrk on the other: each style at 1, 16, 64 connections."""
    results = []
    for style, knobs in STYLES.items():
        progress(f"matrix: starting 1 worker on core {SERVER_CORE}, style {style}")
        with bench.api(1, knobs, core=SERVER_CORE) as api:
            check_endpoint(f"{api.url}/classify", COURSE_APPLICANT)
            for connections in MATRIX_CONNECTIONS:
                results.append(bench.measure(label(style, connections), api, "/classify", connections, CLIENT_CORE))
    return results


def batching_from_matrix(matrix: list[WrkResult]) -> BatchingResult:
    """Benchmark 2 is two points of the matrix: async without and with batching at 64 connections."""

    def point(style: str) -> WrkResult:
        return next(r for r in matrix if r.label == label(style, BATCHING_CONNECTIONS))

    unbatched, batched = point("async"), point("async+batching")
    return BatchingResult(unbatched=unbatched, batched=batched, ratio=batched.rps / unbatched.rps)
