"""Request and response bodies of the facade; the SDK (api/client.py) reuses them.

Pure pydantic: importing this module does not import Prefect, so SDK users stay light.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, field_validator

from flows.stages import STAGE_NAMES as STAGE_NAMES  # re-exported; loads no stage module

# Characters Prefect refuses in deployment names.
_BANNED_NAME_CHARS = "/%&<>"


def _seed_example() -> dict[str, Any]:
    path = Path(__file__).resolve().parents[1] / "docs" / "examples" / "seed_job.json"
    try:
        example: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return example


SEED_JOB_EXAMPLE = _seed_example()


# ------------------------------------------------------------------------------ errors


class FieldError(BaseModel):
    field: str = Field(
        description="Dotted path of the offending field, e.g. "
        "'pipeline_config.model.config.learning_rate'."
    )
    message: str


class ErrorDetail(BaseModel):
    code: str = Field(description="Machine-readable code, e.g. 'not_found', 'invalid_config'.")
    message: str
    fields: list[FieldError] = Field(default_factory=list)


class ErrorBody(BaseModel):
    """The one error body of every 4xx/5xx answer."""

    error: ErrorDetail


# ------------------------------------------------------------------------------ jobs


class JobCreate(BaseModel):
    """The seed's job format: a name, a schedule and a pipeline config."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [SEED_JOB_EXAMPLE]} if SEED_JOB_EXAMPLE else None,
    )

    name: str = Field(
        min_length=1,
        max_length=100,
        description="Unique job name (the Prefect deployment name). Not allowed: / % & < >",
    )
    schedule: str | None = Field(
        default=None,
        description="'cron:<5-field cron>' or 'interval:<unit>=<n>[,<unit>=<n>...]' with units "
        "days, hours, minutes, seconds. Null: run only when triggered.",
        examples=["cron:0 2 * * *", "interval:hours=6", "interval:hours=1,minutes=30"],
    )
    timezone: str = Field(default="UTC", description="IANA timezone of the schedule.")
    pipeline_config: dict[str, Any] = Field(
        description="The pipeline config (data, model, training, evaluation)."
    )
    description: str | None = Field(default=None, max_length=2000)
    tags: list[str] = Field(default_factory=list, description="Extra Prefect tags.")
    paused: bool = Field(default=False, description="Create the job paused (no scheduled runs).")

    @field_validator("name")
    @classmethod
    def _valid_name(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("must not be blank")
        bad = sorted({c for c in value if c in _BANNED_NAME_CHARS})
        if bad:
            raise ValueError(f"must not contain {' '.join(bad)}")
        return value


class JobScheduleInfo(BaseModel):
    schedule: str = Field(description="The schedule in the job grammar, e.g. 'cron:0 2 * * *'.")
    timezone: str | None = None
    active: bool = True


class LastRun(BaseModel):
    id: UUID
    name: str
    state: str | None = Field(default=None, description="State name, e.g. 'Completed', 'Running'.")
    state_type: str | None = Field(default=None, description="COMPLETED, FAILED, RUNNING, ...")
    time: datetime | None = Field(default=None, description="Start time (or expected start time).")


class Job(BaseModel):
    """A job: a Prefect deployment of the training flow. `id` is the deployment id."""

    id: UUID
    name: str
    description: str | None = None
    schedule: str | None = Field(
        default=None, description="The first schedule, in the job grammar."
    )
    timezone: str | None = None
    schedules: list[JobScheduleInfo] = Field(default_factory=list)
    paused: bool
    status: str | None = Field(
        default=None, description="Prefect deployment status: READY/NOT_READY."
    )
    work_pool: str | None = None
    tags: list[str] = Field(default_factory=list)
    pipeline_config: dict[str, Any] | None = None
    created: datetime | None = None
    updated: datetime | None = None
    next_run_time: datetime | None = Field(
        default=None, description="Next scheduled start (none while paused or unscheduled)."
    )
    last_run: LastRun | None = None


class Page(BaseModel):
    total: int = Field(description="Number of items over all pages.")
    page: int = Field(description="1-based page number.")
    page_size: int
    pages: int


class JobList(Page):
    items: list[Job]


class TriggerRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"overrides": {"training": {"epochs": 1}}, "reason": "manual retrain"}]
        },
    )

    overrides: dict[str, Any] = Field(
        default_factory=dict,
        description="Deep-merged onto the job's pipeline_config for this run only; "
        "validated like a new config.",
    )
    reason: str | None = Field(default=None, max_length=500, description="Recorded with the run.")


class TriggerResponse(BaseModel):
    job_id: UUID
    flow_run_id: UUID
    flow_run_name: str
    state: str | None = None
    idempotency_key: str | None = None


# ------------------------------------------------------------------------------ monitoring


class StageStatus(BaseModel):
    name: str
    state: str | None = Field(default=None, description="Task-run state name; null if not started.")
    state_type: str | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None
    progress: float | None = Field(
        default=None, description="0-100, from the stage's progress artifact."
    )


class RunStatus(BaseModel):
    id: UUID
    name: str
    job_id: UUID | None = None
    job_name: str | None = None
    state: str | None = None
    state_type: str | None = None
    state_message: str | None = None
    is_final: bool = False
    expected_start_time: datetime | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None
    current_stage: str | None = Field(
        default=None, description="The running stage, else the last stage that ran."
    )
    stages: list[StageStatus] = Field(default_factory=list)
    progress: float | None = Field(default=None, description="Training progress 0-100.")
    parameters: dict[str, Any] = Field(default_factory=dict)


class RunList(Page):
    items: list[RunStatus]


class ComponentHealth(BaseModel):
    status: Literal["ok", "unavailable"]
    detail: str = ""


class Health(BaseModel):
    status: Literal["ok", "unavailable"]
    components: dict[str, ComponentHealth]
    failing: list[str] = Field(default_factory=list, description="Names of failing components.")
