"""What the request metrics cost per request, measured in-process: `python -m benchmarks.metric_cost`.

Drives the API's real InstrumentationMiddleware around an app that does nothing, plus the stage histograms a
default (sync) request records, in prometheus-client's multiprocess mode as under gunicorn. Steadier than
comparing RPS with metrics on and off on a shared VM, where runs of one configuration vary by 15-30%.
benchmarks/instrumentation.py runs this in a child process: the multiprocess mode must be chosen before
prometheus_client is imported, so the variable is set here first.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time

from lab.errors import LabError

REQUESTS = 20_000


def measure(requests: int = REQUESTS) -> float:
    """Microseconds of metric work per request: the middleware's records plus one request's stages."""
    from starlette.routing import Route

    from model_api.metrics import ApiMetrics
    from model_api.middleware import InstrumentationMiddleware, RouteLabels
    from model_api.runtime import Runtime
    from model_api.settings import Settings
    from model_api.workload import Stages

    settings = Settings(multiproc_dir=os.environ["PROMETHEUS_MULTIPROC_DIR"])
    runtime = Runtime(settings)
    stage_names = runtime.workload.stages(batched=False)

    async def nothing(scope: dict, receive: object, send: object) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    metrics = runtime.metrics
    assert isinstance(metrics, ApiMetrics)
    routes = RouteLabels([Route("/predict", lambda request: None, methods=["POST"])])
    instrumented = InstrumentationMiddleware(nothing, metrics, routes)
    stages = Stages(dict.fromkeys(stage_names, 0.001))

    async def send(message: dict) -> None:
        return None

    async def drive(app: object, with_stages: bool) -> float:
        started = time.perf_counter()
        for _ in range(requests):
            scope = {"type": "http", "path": "/predict", "method": "POST", "headers": [], "root_path": ""}
            await app(scope, None, send)
            if with_stages:
                runtime.observe_stages("/predict", stages)
        return time.perf_counter() - started

    async def both() -> float:
        await drive(instrumented, True)  # warm up: first use creates the children and their file entries
        return (await drive(instrumented, True) - await drive(nothing, False)) / requests * 1e6

    return asyncio.run(both())


def run_isolated() -> float:
    """Run the measurement in a child process with its own multiprocess folder; return its figure (LabError with
    the child's output if it fails)."""
    with tempfile.TemporaryDirectory() as folder:
        done = subprocess.run(
            [sys.executable, "-m", "benchmarks.metric_cost"],
            env={**os.environ, "PROMETHEUS_MULTIPROC_DIR": folder},
            capture_output=True,
            text=True,
            check=False,
        )
    if done.returncode != 0:
        raise LabError(f"python -m benchmarks.metric_cost exited with {done.returncode}:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout)["metric_us_per_request"]


def main() -> None:
    if "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
        print(json.dumps({"metric_us_per_request": run_isolated()}))
        return
    print(json.dumps({"metric_us_per_request": round(measure(), 2)}))


if __name__ == "__main__":
    main()
