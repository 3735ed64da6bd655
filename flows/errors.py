"""The one exception hierarchy. `api/errors.py` maps it onto HTTP status codes."""

from __future__ import annotations

from typing import Any


class LMCPError(Exception):
    """Base of every error the panel raises on purpose."""

    code = "error"

    def __init__(self, message: str, *, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class ConfigError(LMCPError):
    """A pipeline config, schedule or request field is invalid.

    `errors` is a list of {"field": "a.b.c", "message": "..."} so callers can show
    exactly which field is wrong.
    """

    code = "invalid_config"

    def __init__(self, message: str, *, errors: list[dict[str, str]] | None = None) -> None:
        super().__init__(message, details=errors or [])
        self.errors = errors or []


class ScheduleError(ConfigError):
    code = "invalid_schedule"


class NotFoundError(LMCPError):
    code = "not_found"


class ConflictError(LMCPError):
    code = "conflict"


class AuthError(LMCPError):
    code = "unauthorized"


class ForbiddenError(LMCPError):
    code = "forbidden"


class ServiceUnavailableError(LMCPError):
    code = "service_unavailable"


class StageError(LMCPError):
    """A pipeline stage failed for a reason the user can act on."""

    code = "stage_failed"

    def __init__(
        self, stage: str, message: str, *, suggestion: str | None = None, details: Any = None
    ) -> None:
        text = f"{stage}: {message}" + (f" Suggestion: {suggestion}" if suggestion else "")
        super().__init__(text, details=details)
        self.stage = stage
        self.suggestion = suggestion


class DataValidationError(StageError):
    """validate_data found problems in the data; `details` holds every check's result."""

    code = "data_validation_failed"
