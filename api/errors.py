"""THE one place that maps errors to HTTP answers.

Every error answer has the same body:

    {"error": {"code": "invalid_config", "message": "...",
               "fields": [{"field": "pipeline_config.model.config.learning_rate",
                           "message": "Input should be greater than 0"}]}}
"""

from __future__ import annotations

import logging
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from flows.errors import (
    AuthError,
    ConfigError,
    ConflictError,
    ForbiddenError,
    LMCPError,
    NotFoundError,
    ServiceUnavailableError,
    StageError,
)

logger = logging.getLogger("lmcp.api")

STATUS_CODES: dict[type[LMCPError], int] = {
    ConfigError: 422,  # ScheduleError is a ConfigError
    NotFoundError: 404,
    ConflictError: 409,
    AuthError: 401,
    ForbiddenError: 403,
    ServiceUnavailableError: 503,
    StageError: 500,
}
_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    422: "invalid_request",
}
_REQUEST_PARTS = ("body", "query", "path", "header", "cookie")


def status_for(exc: LMCPError) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS_CODES:
            return STATUS_CODES[cls]  # type: ignore[index]
    return 500


def error_response(
    status: int, code: str, message: str, fields: list[dict[str, str]] | None = None
) -> JSONResponse:
    body = {"error": {"code": code, "message": message, "fields": fields or []}}
    return JSONResponse(status_code=status, content=body)


def _field_list(value: Any) -> list[dict[str, str]]:
    if not isinstance(value, list):
        return []
    return [
        {"field": str(e["field"]), "message": str(e.get("message", ""))}
        for e in value
        if isinstance(e, dict) and "field" in e
    ]


async def _lmcp_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, LMCPError)
    status = status_for(exc)
    fields = exc.errors if isinstance(exc, ConfigError) else _field_list(exc.details)
    if status >= 500:
        logger.error("%s %s -> %s: %s", request.method, request.url.path, status, exc.message)
    return error_response(status, exc.code, exc.message, fields)


def validation_fields(errors: Any) -> list[dict[str, str]]:
    """FastAPI/pydantic errors -> [{"field": "pipeline_config.model.name", ...}]."""
    out = []
    for err in errors:
        loc = [str(p) for p in err.get("loc", ())]
        if len(loc) > 1 and loc[0] in _REQUEST_PARTS:
            loc = loc[1:]
        message = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
        if err.get("type") == "extra_forbidden":
            message = "unknown field"
        out.append({"field": ".".join(loc) or "body", "message": message})
    return out


async def _request_validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    fields = validation_fields(exc.errors())
    summary = "; ".join(f"{f['field']}: {f['message']}" for f in fields)
    return error_response(422, "invalid_request", f"invalid request: {summary}", fields)


async def _http_exception(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_CODES.get(exc.status_code, "error")
    return error_response(exc.status_code, code, str(exc.detail))


async def _transport_error(request: Request, exc: Exception) -> JSONResponse:
    logger.warning("Prefect API unreachable: %s", type(exc).__name__)
    return error_response(
        503,
        ServiceUnavailableError.code,
        "the Prefect API is unreachable; is the Prefect server running?",
    )


async def _upstream_status_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, httpx.HTTPStatusError)
    status = exc.response.status_code
    logger.error("Prefect API answered %s to %s %s", status, request.method, request.url.path)
    if status >= 500:
        return error_response(
            503, ServiceUnavailableError.code, f"the Prefect API failed (HTTP {status}); try again"
        )
    return error_response(
        502, "upstream_error", f"the Prefect API refused the request (HTTP {status})"
    )


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    logger.exception("unhandled error in %s %s", request.method, request.url.path)
    return error_response(500, "internal_error", "internal error; see the facade's log")


def register_exception_handlers(app: FastAPI) -> None:
    app.add_exception_handler(LMCPError, _lmcp_error)
    app.add_exception_handler(RequestValidationError, _request_validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_exception)
    app.add_exception_handler(httpx.TransportError, _transport_error)
    app.add_exception_handler(httpx.HTTPStatusError, _upstream_status_error)
    app.add_exception_handler(Exception, _unexpected)
