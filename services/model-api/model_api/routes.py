"""The endpoints. A prediction request goes: validated body -> workload (cache, wait, CPU, model) -> decision -> JSON.

Every handler here is `async def`, so it runs on the event loop; the workload decides what, if anything,
runs in the threadpool (see workload.py). /metrics, /healthz and /readyz never touch the threadpool,
so they answer even when every thread is busy.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from fastapi.routing import APIRoute
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, ValidationError

from model_api.runtime import Runtime
from model_api.schemas import CreditApplicant, CreditDecision, ErrorBody, House, HousePrice
from model_api.workload import Stages


class JsonBodyRoute(APIRoute):
    """A model route whose JSON body pydantic parses and validates in one step, from the bytes.

    FastAPI decodes the body with `json.loads`, then validates the Python objects: two passes, and a third of a
    request's CPU on the unbatched ONNX path. Here a body sent as JSON goes through the model's own
    `model_validate_json` (pydantic-core's parser) and straight to the handler; anything it refuses (malformed,
    invalid, another content type) takes FastAPI's own path unchanged, so every error is answered exactly as
    before, and the route, its docs and its OpenAPI schema are FastAPI's.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        checked = super().get_route_handler()
        [body] = self.dependant.body_params
        model: type[BaseModel] = body.field_info.annotation
        name, endpoint = body.name, self.endpoint

        async def handler(request: Request) -> Response:
            if request.headers.get("content-type", "").startswith("application/json"):
                try:
                    value = model.model_validate_json(await request.body())
                except ValidationError:
                    pass  # FastAPI's path reads the cached body and answers the error as it always has
                else:
                    return await endpoint(**{name: value, "request": request})
            return await checked(request)

        return handler


router = APIRouter()
models_router = APIRouter(route_class=JsonBodyRoute)  # the model routes: their bodies are the hot path
WORKER_HEADER = "X-Worker-Pid"  # which gunicorn worker answered: shows how load spreads over workers
_ERRORS: dict[int | str, dict[str, Any]] = {
    413: {"model": ErrorBody, "description": "Body larger than the limit"},
    422: {"model": ErrorBody, "description": "A field is missing, of the wrong type, or out of range"},
    503: {"model": ErrorBody, "description": "The models are still loading (only with LAB_READINESS_GATE=false)"},
}


async def get_runtime(request: Request) -> Runtime:
    return request.app.state.runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]  # async, so resolving it never uses the threadpool
NOT_LOADED = "the models are still loading in this worker (the readiness gate is off: LAB_READINESS_GATE=false)"


def loaded_runtime(request: Request) -> Runtime:
    """The runtime, once its models can answer. Only a worker started without the readiness gate takes requests
    before that; it answers 503 with Retry-After, the cold-start failures the gate prevents.

    Called by the model routes themselves rather than as a FastAPI dependency: resolving one costs a few percent
    of a request's CPU on the hot path, for nothing the API's docs would show."""
    runtime: Runtime = request.app.state.runtime
    if not runtime.loaded:
        raise HTTPException(503, runtime.failed or NOT_LOADED, headers={"Retry-After": "1"})
    return runtime


def _start_stages(request: Request) -> Stages:
    stages = Stages()
    received_at = request.scope.get("state", {}).get("received_at")
    if received_at is not None:  # set by the instrumentation middleware: body read, parsed and validated since
        stages.since("validation", received_at)
    return stages


def _answer(runtime: Runtime, route: str, stages: Stages, body: Any) -> Response:
    started = time.perf_counter()
    content = body.model_dump_json()
    stages.since("serialization", started)
    runtime.observe_stages(route, stages)
    return Response(content, media_type="application/json", headers={WORKER_HEADER: str(os.getpid())})


@models_router.post("/classify", response_model=CreditDecision, responses=_ERRORS, tags=["models"])
async def classify(applicant: CreditApplicant, request: Request) -> Response:
    """Credit risk: the probability that this applicant defaults, and the decision it leads to."""
    runtime, stages = loaded_runtime(request), _start_stages(request)
    probability = await runtime.workload.run("/classify", applicant.model_dump(), runtime.credit, stages)
    return _answer(runtime, "/classify", stages, runtime.decide(probability))


@models_router.post("/predict", response_model=HousePrice, responses=_ERRORS, tags=["models"])
async def predict(house: House, request: Request) -> Response:
    """House price: the estimated price of this house."""
    runtime, stages = loaded_runtime(request), _start_stages(request)
    price = await runtime.workload.run("/predict", house.model_dump(), runtime.house, stages)
    return _answer(runtime, "/predict", stages, HousePrice(price=round(price, 2)))


@router.get("/healthz", tags=["operations"])
async def healthz() -> dict[str, str]:
    """Alive: the worker's event loop answers."""
    return {"status": "alive"}


@router.get("/readyz", tags=["operations"], responses={503: {"description": "Still loading or warming up, or failed"}})
async def readyz(runtime: RuntimeDep) -> dict[str, Any]:
    """Ready: the models are loaded and a warm-up prediction has run in this worker. Without the readiness gate
    (LAB_READINESS_GATE=false) it says ready as soon as the worker answers, as a service without a readiness check
    does: that is what lets the load in early."""
    if runtime.failed or (not runtime.ready and runtime.settings.readiness_gate):
        raise HTTPException(503, runtime.failed or "models not loaded and warmed up yet")
    return {
        "status": "ready" if runtime.ready else "loading",
        "pid": os.getpid(),
        # Seconds each phase of this worker's start took: fetch, load, warm_up, and ready (since the process began).
        "cold_start": runtime.cold_start,
        "handler_style": runtime.settings.handler_style,
        "model_runtime": runtime.settings.model_runtime,  # what runs the forests: sklearn or onnx
        "cache": runtime.settings.cache,  # the answer cache: off, local or redis
        # Threads per native pool (BLAS, OpenMP) where sync handlers predict: workers x threads should stay
        # within the CPUs.
        "native_threads": runtime.native_threads,
        # One warm prediction per model, timed at start in this worker: this machine's cost of the model.
        "model_ms": runtime.model_ms,
    }


@router.get("/metrics", tags=["operations"], response_class=Response)
async def metrics(runtime: RuntimeDep) -> Response:
    """Prometheus metrics of all workers together (and the container), in the text exposition format."""
    registry = runtime.scrape_registry()
    if registry is None:
        raise HTTPException(404, "metrics are switched off (LAB_METRICS=false)")
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
