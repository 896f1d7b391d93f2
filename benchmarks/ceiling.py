"""The framework's ceiling: the lab's own server stack (gunicorn with the same uvicorn worker class) serving a bare
Starlette route that reads the JSON body and answers a constant. No validation, no model, no metrics: what one
worker can do at all, against which the API's figures are read as shares.

    gunicorn -c benchmarks/ceiling_gunicorn.py benchmarks.ceiling:app      (the benchmark starts it)
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

# What the API's /classify answers, in size and shape, so that the response costs the same to send.
ANSWER = b'{"default_probability":0.123456789,"decision":"APPROVED"}'


async def classify(request: Request) -> Response:
    await request.json()  # read and parse the body, as any JSON API must
    return Response(ANSWER, media_type="application/json")


app = Starlette(routes=[Route("/classify", classify, methods=["POST"])])
