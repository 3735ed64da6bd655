"""Typed errors of the SDK (api/client.py): one class per error status of the facade,
carrying the server's code, message and field list."""

from __future__ import annotations

import httpx

from api.schemas import FieldError


class APIError(Exception):
    """An error answer of the facade (or no answer at all: status_code 0)."""

    def __init__(
        self, status_code: int, code: str, message: str, fields: list[FieldError] | None = None
    ) -> None:
        super().__init__(f"{status_code} {code}: {message}")
        self.status_code = status_code
        self.code = code
        self.message = message
        self.fields = fields or []

    @property
    def field_names(self) -> list[str]:
        return [f.field for f in self.fields]


class AuthError(APIError):
    """401"""


class ForbiddenError(APIError):
    """403"""


class NotFoundError(APIError):
    """404: unknown job or run id."""


class ConflictError(APIError):
    """409: e.g. a job with that name exists."""


class ValidationError(APIError):
    """422: bad input; `fields` names each bad field."""


class ServiceUnavailableError(APIError):
    """503: Prefect (or another backend) is unavailable."""


class ServerError(APIError):
    """Any other 5xx."""


_ERRORS: dict[int, type[APIError]] = {
    401: AuthError,
    403: ForbiddenError,
    404: NotFoundError,
    409: ConflictError,
    422: ValidationError,
    503: ServiceUnavailableError,
}


def raise_for_error(response: httpx.Response) -> None:
    if response.status_code < 400:
        return
    try:
        detail = response.json()["error"]
        code, message = str(detail["code"]), str(detail["message"])
        fields = [FieldError.model_validate(f) for f in detail.get("fields") or []]
    except (ValueError, KeyError, TypeError):
        code, message, fields = "http_error", response.text[:500] or response.reason_phrase, []
    default = ServerError if response.status_code >= 500 else APIError
    cls = _ERRORS.get(response.status_code, default)
    raise cls(response.status_code, code, message, fields)
