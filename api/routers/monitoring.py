"""Monitoring: health of the stack and the status of training runs.

(The monitoring issue adds metrics and drift endpoints to this router.)
"""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from api.deps import PrefectClientDep, SettingsDep, prefect_api_url
from api.schemas import ErrorBody, Health, RunList, RunStatus
from deployments import runs
from deployments.health import check_health

router = APIRouter(tags=["monitoring"])

_AUTH_HEADERS = ("authorization",)


@router.get(
    "/health",
    responses={
        503: {"model": Health, "description": "A component is unavailable; `failing` names it"}
    },
)
async def health(client: PrefectClientDep, settings: SettingsDep) -> Any:
    """The facade, Prefect API readiness, and a worker polling the training pool.

    200 when all are ok, else 503 with `failing` naming the components."""
    headers = {k: v for k, v in client._client.headers.items() if k.lower() in _AUTH_HEADERS}
    report = await check_health(
        prefect_api_url(settings), client, settings.training_pool, headers=headers
    )
    if report.failing:
        return JSONResponse(status_code=503, content=report.model_dump(mode="json"))
    return report


@router.get("/training/jobs", responses={422: {"model": ErrorBody}, 503: {"model": ErrorBody}})
async def list_training_runs(
    client: PrefectClientDep,
    job_id: Annotated[UUID | None, Query(description="Only runs of this job")] = None,
    job_name: Annotated[
        str | None, Query(description="Only runs of the job with this name")
    ] = None,
    state: Annotated[
        list[str] | None,
        Query(
            description="State types, repeated or comma-separated: RUNNING, COMPLETED, "
            "FAILED, CRASHED, CANCELLED, PENDING, PAUSED, SCHEDULED, CANCELLING"
        ),
    ] = None,
    page: Annotated[int, Query(ge=1)] = 1,
    page_size: Annotated[int, Query(ge=1, le=200)] = 20,
) -> RunList:
    """Runs of jobs, newest first: state, current stage, per-stage states and progress.
    Future scheduled runs are listed only when `state` includes SCHEDULED."""
    return await runs.list_runs(
        client, job_id=job_id, job_name=job_name, states=state, page=page, page_size=page_size
    )


@router.get(
    "/training/jobs/{run_id}", responses={404: {"model": ErrorBody}, 503: {"model": ErrorBody}}
)
async def get_training_run(run_id: str, client: PrefectClientDep) -> RunStatus:
    """One run (a flow run of a job) with its stages and progress."""
    return await runs.get_run(client, run_id)
