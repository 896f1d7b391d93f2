"""The application factory. `create_app()` builds the app; nothing happens at import time.

Under gunicorn (see gunicorn.conf.py) each worker calls `create_gunicorn_app()` after the fork, so every
worker loads its own models: BLAS/OpenMP thread pools do not survive a fork.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi_offline import FastAPIOffline
from starlette.exceptions import HTTPException

from model_api import __version__, errors
from model_api.artifacts import ModelArtifactError
from model_api.collectors import gunicorn_master_pid, gunicorn_worker_pids, this_pid, this_process
from model_api.middleware import BodySizeLimitMiddleware, InstrumentationMiddleware, RouteLabels
from model_api.routes import models_router, router
from model_api.runtime import Runtime
from model_api.settings import Settings, load_settings

log = logging.getLogger("model_api")

DESCRIPTION = """
The model API of the Model Serving Load Lab: a credit-risk classifier (`/classify`) and a house-price
regressor (`/predict`), instrumented for Prometheus (`/metrics`). Load-test it and watch where the time goes.
"""


def create_app(
    settings: Settings | None = None,
    worker_pids: Callable[[], list[int]] = this_process,
    api_root_pid: Callable[[], int] = this_pid,
) -> FastAPI:
    """Build the API. `worker_pids` lists the processes whose CPU and memory /metrics reports per worker;
    `api_root_pid` is the process at the top of the API (the gunicorn master), whose tree counts as the API's
    own usage where no container limits it."""
    settings = settings or load_settings()
    runtime = Runtime(settings, worker_pids, api_root_pid)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.readiness_gate:  # no request reaches this worker before its start is over
            try:
                await runtime.start()
            except ModelArtifactError as error:
                log.error("cannot start: %s", error)
                raise
        else:  # the anti-pattern of the cold-start scenario: requests arrive while the models load
            runtime.start_in_background()
        yield
        await runtime.stop()

    # FastAPIOffline serves Swagger UI and ReDoc from the package, not a CDN: the lab needs no internet.
    app = FastAPIOffline(
        title="Model Serving Load Lab: model API",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.runtime = runtime
    app.include_router(models_router)
    app.include_router(router)
    # Our own limit rather than FastAPI's max_body_size: that one sits outside all middleware, so its 413s
    # would escape the request metrics and answer in plain text instead of the API's error format.
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_exception_handler(RequestValidationError, errors.validation_error)
    app.add_exception_handler(HTTPException, errors.http_error)
    if runtime.metrics is not None:
        # Our router's own routes first: FastAPI wraps included routers in an object that has no path template.
        labels = RouteLabels([*models_router.routes, *router.routes, *app.routes])
        app.add_middleware(InstrumentationMiddleware, metrics=runtime.metrics, routes=labels)
    return app


def create_gunicorn_app() -> FastAPI:
    """The app as each gunicorn worker builds it: reporting on itself and its sibling workers, and logging where
    gunicorn logs (with its format and level), so that a worker's own lines (ready, cannot start) show."""
    gunicorn_log = logging.getLogger("gunicorn.error")
    log.handlers, log.propagate = gunicorn_log.handlers, False
    log.setLevel(gunicorn_log.level)
    return create_app(worker_pids=gunicorn_worker_pids, api_root_pid=gunicorn_master_pid)
