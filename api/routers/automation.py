"""Automation: jobs (Prefect deployments of the training flow) and their runs."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Header, Query, Response, status

from api.deps import PrefectClientDep, SettingsDep
from api.schemas import (
    SEED_JOB_EXAMPLE,
    ErrorBody,
    Job,
    JobCreate,
    JobList,
    TriggerRequest,
    TriggerResponse,
)
from deployments import jobs

router = APIRouter(prefix="/jobs", tags=["automation"])


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    text = {
        404: "No job with this id",
        409: "A job with this name exists",
        422: "Invalid input; `fields` names each bad field",
        503: "The Prefect API is unreachable",
    }
    return {code: {"model": ErrorBody, "description": text[code]} for code in codes}


_TINY_INTERVAL_JOB = {
    "name": "tiny-every-6h",
    "schedule": "interval:hours=6",
    "timezone": "UTC",
    "description": "A small model retrained every six hours.",
    "tags": ["demo"],
    "pipeline_config": {
        "data": {"dataset_name": "tinyshakespeare"},
        "model": {
            "type": "transformer",
            "name": "tiny_model",
            "config": {"n_layer": 1, "n_embd": 32, "block_size": 32, "batch_size": 4},
        },
        "training": {"epochs": 1, "max_steps": 20},
        "evaluation": {"performance_threshold": 0.0},
    },
}
_CREATE_EXAMPLES = {
    "seed": {"summary": "The seed's example job (daily at 02:00 UTC)", "value": SEED_JOB_EXAMPLE},
    "interval": {"summary": "A tiny model on an interval schedule", "value": _TINY_INTERVAL_JOB},
}
_TRIGGER_EXAMPLES = {
    "plain": {"summary": "Run now with the job's config", "value": {}},
    "override": {
        "summary": "Run now with a shorter training",
        "value": {"overrides": {"training": {"epochs": 1}}, "reason": "hotfix"},
    },
}


@router.post("", status_code=status.HTTP_201_CREATED, responses=_errors(409, 422, 503))
async def create_job(
    body: Annotated[JobCreate, Body(openapi_examples=_CREATE_EXAMPLES)],  # type: ignore[arg-type]
    client: PrefectClientDep,
    settings: SettingsDep,
) -> Job:
    """Create a job: a deployment of the training flow on the training work pool, with
    the schedule and the validated pipeline config as its parameters."""
    return await jobs.create_job(client, body, settings)


@router.get("", responses=_errors(503))
async def list_jobs(
    client: PrefectClientDep,
    page: Annotated[int, Query(ge=1, description="1-based page number")] = 1,
    page_size: Annotated[int, Query(ge=1, le=jobs.MAX_PAGE_SIZE)] = 50,
) -> JobList:
    """Jobs sorted by name, with schedule, paused, last run and next scheduled time."""
    return await jobs.list_jobs(client, page=page, page_size=page_size)


@router.get("/{job_id}", responses=_errors(404, 503))
async def get_job(job_id: str, client: PrefectClientDep) -> Job:
    return await jobs.get_job(client, job_id)


@router.delete("/{job_id}", status_code=status.HTTP_204_NO_CONTENT, responses=_errors(404, 503))
async def delete_job(job_id: str, client: PrefectClientDep) -> Response:
    """Delete the job (its deployment and scheduled runs; past runs stay in Prefect)."""
    await jobs.delete_job(client, job_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/{job_id}/trigger", status_code=status.HTTP_202_ACCEPTED, responses=_errors(404, 422, 503)
)
async def trigger_job(
    job_id: str,
    client: PrefectClientDep,
    body: Annotated[TriggerRequest | None, Body(openapi_examples=_TRIGGER_EXAMPLES)] = None,  # type: ignore[arg-type]
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            max_length=200,
            description="At most one run per key and job: a repeat returns the same run.",
        ),
    ] = None,
) -> TriggerResponse:
    """Start a run now; returns the flow run id. Overrides are validated like a new config."""
    request = body or TriggerRequest()
    return await jobs.trigger_job(
        client,
        job_id,
        overrides=request.overrides,
        reason=request.reason,
        idempotency_key=idempotency_key,
    )


@router.post("/{job_id}/pause", responses=_errors(404, 503))
async def pause_job(job_id: str, client: PrefectClientDep) -> Job:
    """Pause: no scheduled runs until resumed (same state as in the Prefect UI/CLI)."""
    return await jobs.pause_job(client, job_id)


@router.post("/{job_id}/resume", responses=_errors(404, 503))
async def resume_job(job_id: str, client: PrefectClientDep) -> Job:
    return await jobs.resume_job(client, job_id)
