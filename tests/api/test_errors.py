"""Unit tests (no server): the one error mapping, the SDK's error classes, the schemas."""

from __future__ import annotations

import httpx
import pytest

from api import client_errors
from api.errors import STATUS_CODES, status_for, validation_fields
from api.schemas import STAGE_NAMES
from flows import errors
from flows.stages import STAGE_NAMES as FLOW_STAGE_NAMES


@pytest.mark.parametrize(
    ("exc", "status"),
    [
        (errors.ConfigError("x"), 422),
        (errors.ScheduleError("x"), 422),
        (errors.NotFoundError("x"), 404),
        (errors.ConflictError("x"), 409),
        (errors.AuthError("x"), 401),
        (errors.ForbiddenError("x"), 403),
        (errors.ServiceUnavailableError("x"), 503),
        (errors.StageError("train_model", "x"), 500),
        (errors.DataValidationError("validate_data", "x"), 500),
        (errors.LMCPError("x"), 500),
    ],
)
def test_every_project_error_has_one_status(exc: errors.LMCPError, status: int) -> None:
    assert status_for(exc) == status


def test_mapping_covers_the_hierarchy() -> None:
    direct = {
        c for c in vars(errors).values() if isinstance(c, type) and issubclass(c, errors.LMCPError)
    }
    assert {c for c in direct if any(issubclass(c, k) for k in STATUS_CODES)} == direct - {
        errors.LMCPError
    }


def test_validation_fields_are_dotted_paths() -> None:
    raw = [
        {
            "loc": ("body", "pipeline_config", "model", "config", "learning_rate"),
            "msg": "Input should be greater than 0",
            "type": "greater_than",
        },
        {
            "loc": ("body", "color"),
            "msg": "Extra inputs are not permitted",
            "type": "extra_forbidden",
        },
        {"loc": ("query", "page_size"), "msg": "Value error, too big", "type": "value_error"},
        {"loc": ("body",), "msg": "Field required", "type": "missing"},
    ]
    assert validation_fields(raw) == [
        {
            "field": "pipeline_config.model.config.learning_rate",
            "message": "Input should be greater than 0",
        },
        {"field": "color", "message": "unknown field"},
        {"field": "page_size", "message": "too big"},
        {"field": "body", "message": "Field required"},
    ]


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (401, client_errors.AuthError),
        (403, client_errors.ForbiddenError),
        (404, client_errors.NotFoundError),
        (409, client_errors.ConflictError),
        (422, client_errors.ValidationError),
        (503, client_errors.ServiceUnavailableError),
        (500, client_errors.ServerError),
        (418, client_errors.APIError),
    ],
)
def test_sdk_raises_the_class_of_the_status(status: int, cls: type) -> None:
    body = {
        "error": {
            "code": "c",
            "message": "the server's words",
            "fields": [{"field": "schedule", "message": "bad"}],
        }
    }
    with pytest.raises(cls) as info:
        client_errors.raise_for_error(httpx.Response(status, json=body))
    assert type(info.value) is cls
    assert info.value.message == "the server's words"
    assert info.value.field_names == ["schedule"]


def test_sdk_error_without_the_error_body() -> None:
    with pytest.raises(client_errors.ServerError) as info:
        client_errors.raise_for_error(httpx.Response(502, text="bad gateway"))
    assert info.value.code == "http_error" and "bad gateway" in info.value.message
    client_errors.raise_for_error(httpx.Response(204))  # no error: no raise


def test_stage_names_match_the_pipeline() -> None:
    assert tuple(STAGE_NAMES) == tuple(FLOW_STAGE_NAMES)
