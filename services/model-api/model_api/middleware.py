"""Pure ASGI middlewares at the edge of the app: request metrics, the body size limit, and recycling's last answers.

Pure ASGI (not BaseHTTPMiddleware) because they sit on the hot path of every request.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence

from starlette.exceptions import HTTPException
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from model_api.metrics import ApiMetrics
from model_api.vocabulary import MODEL_ROUTES

UNMATCHED = "unmatched"  # the route label of any path the app has no route for: labels stay bounded


class RouteLabels:
    """Maps a request to its route template, the only path form ever used as a label."""

    def __init__(self, routes: Sequence[BaseRoute]) -> None:
        self._routes = routes
        self._known: dict[str, str] = {}  # only paths that matched a route: bounded by the routes

    def __call__(self, scope: Scope) -> str:
        path = scope["path"]
        known = self._known.get(path)
        if known is not None:
            return known
        for route in self._routes:
            match, _ = route.matches(scope)
            if match != Match.NONE:
                template = getattr(route, "path", UNMATCHED)
                if "{" not in template:
                    self._known[path] = template
                return template
        return UNMATCHED


class InstrumentationMiddleware:
    """Counts and times every HTTP request by route, and tracks the requests in flight.

    The count and latency are recorded as the response starts, before the client can read it, so a
    client that has its answer always finds its request already counted.
    """

    def __init__(self, app: ASGIApp, metrics: ApiMetrics, routes: RouteLabels) -> None:
        self.app = app
        self.metrics = metrics
        self.routes = routes
        self.first_unanswered = set(MODEL_ROUTES)  # per worker: each builds its own app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        received_at = time.perf_counter()
        scope.setdefault("state", {})["received_at"] = received_at
        route = self.routes(scope)
        method = scope["method"]
        recorded = False

        metrics = self.metrics

        def record(status: int) -> None:
            nonlocal recorded
            recorded = True
            seconds = time.perf_counter() - received_at
            metrics.child(metrics.requests, route, method, str(status)).inc()
            metrics.child(metrics.latency, route).observe(seconds)
            if status == 200 and route in self.first_unanswered:  # this worker's first answer on a model route
                self.first_unanswered.discard(route)
                metrics.child(metrics.first_request, route).set(seconds)

        async def send_recording(message: Message) -> None:
            if message["type"] == "http.response.start" and not recorded:
                record(message["status"])
            await send(message)

        in_flight = metrics.child(metrics.in_flight, route)
        in_flight.inc()
        try:
            await self.app(scope, receive, send_recording)
        except BaseException:
            if not recorded:
                record(500)  # the server error middleware outside us answers 500
            raise
        finally:
            in_flight.dec()


class BodyTooLarge(HTTPException):
    """Raised from `receive` when a streamed body passes the limit; the app's HTTP error handler answers it."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(413, f"request body too large: the limit is {max_bytes} bytes")


class BodySizeLimitMiddleware:
    """Answers 413 to a body larger than `max_bytes`, whether it announces its length or streams it."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def _reject(self, send: Send) -> None:
        detail = BodyTooLarge(self.max_bytes).detail
        body = json.dumps({"message": detail, "detail": detail}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit():
                if int(value) > self.max_bytes:
                    await self._reject(send)
                    return
                # The HTTP parser delivers no more than the announced length: nothing left to count or watch.
                await self.app(scope, receive, send)
                return

        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except BodyTooLarge:
            if started:
                raise
            await self._reject(send)


class ClosingWhenRecycled:
    """Answers `Connection: close` from the response that uses up the worker's `max_requests` on, so that its
    clients reconnect to a live worker (why: model_api/worker.py). Responses are counted as they start, as uvicorn
    counts them as they end: for small answers, the same order.
    """

    def __init__(self, app: ASGIApp, max_requests: int) -> None:
        self.app = app
        self.max_requests = max_requests
        self.responses = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def closing_when_last(message: Message) -> None:
            if message["type"] == "http.response.start":
                self.responses += 1
                if self.responses >= self.max_requests:
                    message = {**message, "headers": [*message.get("headers", []), (b"connection", b"close")]}
            await send(message)

        await self.app(scope, receive, closing_when_last)
