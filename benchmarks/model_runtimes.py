"""Benchmark 5: ONNX Runtime beside scikit-learn on POST /classify, one pinned worker, unbatched and batched.

The scikit-learn side is the handler-style matrix's async points (scikit-learn is the API's default runtime); the
ONNX side runs the same knobs plus LAB_MODEL_RUNTIME=onnx, on the same core, at the same connections, in the same
run, so the two differ in the runtime only."""

from __future__ import annotations

from dataclasses import dataclass

from benchmarks.handler_styles import STYLES, label
from benchmarks.harness import CLIENT_CORE, SERVER_CORE, Bench, check_endpoint, progress
from benchmarks.wrk import WrkResult
from model_api.data import COURSE_APPLICANT

ONNX_KNOBS = {"LAB_MODEL_RUNTIME": "onnx"}
RUNTIME_STYLES = ("async", "async+batching")  # unbatched and batched, both on the event loop
# One connection: what one prediction costs, request by request. 64: what the worker sustains, where batching pays.
RUNTIME_CONNECTIONS = (1, 64)


@dataclass
class RuntimeComparison:
    """One style at one number of connections: scikit-learn (from the matrix) and ONNX Runtime."""

    style: str
    connections: int
    sklearn: WrkResult
    onnx: WrkResult

    @property
    def rps_ratio(self) -> float:
        """ONNX Runtime's requests per second over scikit-learn's: above 1, ONNX serves more."""
        return self.onnx.rps / self.sklearn.rps

    @property
    def p50_ratio(self) -> float:
        """ONNX Runtime's median latency over scikit-learn's: below 1, ONNX answers faster."""
        return self.onnx.p50_ms / self.sklearn.p50_ms


def onnx_label(style: str, connections: int) -> str:
    return label(f"{style} onnx", connections)


def compare(matrix: list[WrkResult], style: str, connections: int, onnx: WrkResult) -> RuntimeComparison:
    """Pair an ONNX point with the matrix's scikit-learn point of the same style and connections."""
    sklearn = next(r for r in matrix if r.label == label(style, connections))
    return RuntimeComparison(style=style, connections=connections, sklearn=sklearn, onnx=onnx)


def run(bench: Bench, matrix: list[WrkResult]) -> list[RuntimeComparison]:
    """The ONNX points, one pinned worker per style, each paired with the matrix's scikit-learn point."""
    comparisons = []
    for style in RUNTIME_STYLES:
        progress(f"model runtimes: starting 1 worker on core {SERVER_CORE}, style {style}, ONNX Runtime")
        with bench.api(1, {**STYLES[style], **ONNX_KNOBS}, core=SERVER_CORE) as api:
            check_endpoint(f"{api.url}/classify", COURSE_APPLICANT)
            for connections in RUNTIME_CONNECTIONS:
                onnx = bench.measure(onnx_label(style, connections), api, "/classify", connections, CLIENT_CORE)
                comparisons.append(compare(matrix, style, connections, onnx))
    return comparisons
