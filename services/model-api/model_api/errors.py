"""How client mistakes are answered: a 4xx whose body names each offending field and the reason."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from model_api.schemas import ErrorBody, ValidationProblem


def _problem(error: dict[str, Any]) -> ValidationProblem:
    location = [str(part) for part in error.get("loc", ()) if part != "body"]
    if error.get("type") == "json_invalid":
        # FastAPI puts the character offset where the field name would be
        reason = f"malformed JSON at character {location[0] if location else '?'}: {error['ctx']['error']}"
        return ValidationProblem(field="body", reason=reason, type="json_invalid")
    reason = str(error.get("msg", "invalid value"))
    if error.get("type") == "model_attributes_type":
        reason = "the body must be a JSON object with the fields listed in the API docs"
    return ValidationProblem(field=".".join(location) or "body", reason=reason, type=str(error.get("type")))


def _invalid(problems: list[ValidationProblem]) -> JSONResponse:
    message = "invalid request: " + "; ".join(f"{p.field}: {p.reason}" for p in problems)
    return JSONResponse(ErrorBody(message=message, detail=problems).model_dump(), status_code=422)


async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    return _invalid([_problem(error) for error in exc.errors()])


async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
    if exc.status_code == 400 and isinstance(exc.__cause__, UnicodeDecodeError):
        # FastAPI answers a body it cannot decode with a bare 400; it is malformed JSON like any other.
        reason = f"malformed JSON: the body is not UTF-8 text ({exc.__cause__.reason} at byte {exc.__cause__.start})"
        return _invalid([ValidationProblem(field="body", reason=reason, type="json_invalid")])
    detail = str(exc.detail)
    return JSONResponse(
        ErrorBody(message=detail, detail=detail).model_dump(), status_code=exc.status_code, headers=exc.headers
    )
