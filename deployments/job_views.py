"""Reading jobs: Prefect deployments of the training flow, shown as `Job`s.

A job's last run and next run time come from Prefect too: the last run is read in
batches (one read per page in the usual case), the next run time is computed with the
Prefect scheduler's own schedule code, so it is known as soon as the job exists.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from prefect.client.orchestration import PrefectClient
from prefect.client.schemas.filters import (
    DeploymentFilter,
    DeploymentFilterId,
    FlowFilter,
    FlowFilterName,
    FlowRunFilter,
    FlowRunFilterDeploymentId,
    FlowRunFilterState,
    FlowRunFilterStateType,
)
from prefect.client.schemas.objects import StateType
from prefect.client.schemas.responses import DeploymentResponse
from prefect.client.schemas.sorting import FlowRunSort

from api.schemas import Job, JobList, JobScheduleInfo, LastRun
from deployments.schedules import format_schedule, schedule_timezone
from flows.errors import NotFoundError

FLOW_NAME = "lm-training"
ENTRYPOINT = "flows/training.py:train_pipeline"
JOB_TAG = "lm-training"
MAX_PAGE_SIZE = 200  # Prefect's PREFECT_SERVER_API_DEFAULT_LIMIT
# States of runs that have (or had) actually started: the "last run" of a job.
STARTED_STATES = [
    StateType.PENDING,
    StateType.RUNNING,
    StateType.COMPLETED,
    StateType.FAILED,
    StateType.CANCELLED,
    StateType.CRASHED,
    StateType.PAUSED,
    StateType.CANCELLING,
]


def job_flow_filter() -> FlowFilter:
    """Every deployment of the training flow is a job, whoever created it."""
    return FlowFilter(name=FlowFilterName(any_=[FLOW_NAME]))


def parse_job_id(job_id: str | UUID) -> UUID:
    if isinstance(job_id, UUID):
        return job_id
    try:
        return UUID(str(job_id))
    except ValueError:
        raise NotFoundError(f"job '{job_id}' not found: not a valid job id") from None


async def _read_raw(client: PrefectClient, path: str, body: dict[str, Any]) -> Any:
    response = await client.request("POST", path, json=body)  # type: ignore[arg-type]
    return response.json()


def _flows_body() -> dict[str, Any]:
    return job_flow_filter().model_dump(mode="json", exclude_unset=True)


async def read_job_raw(client: PrefectClient, job_id: str | UUID) -> dict[str, Any]:
    """The deployment (as JSON) behind a job id; NotFoundError unless it deploys the
    training flow."""
    uid = parse_job_id(job_id)
    deployments = DeploymentFilter(id=DeploymentFilterId(any_=[uid]))
    rows = await _read_raw(
        client,
        "/deployments/filter",
        {
            "flows": _flows_body(),
            "deployments": deployments.model_dump(mode="json", exclude_unset=True),
            "limit": 1,
        },
    )
    if not rows:
        raise NotFoundError(f"job '{job_id}' not found")
    row: dict[str, Any] = rows[0]
    return row


async def read_job_deployment(client: PrefectClient, job_id: str | UUID) -> DeploymentResponse:
    """The deployment behind a job id, as Prefect's model."""
    return DeploymentResponse.model_validate(await read_job_raw(client, job_id))


async def get_job(client: PrefectClient, job_id: str | UUID) -> Job:
    raw = await read_job_raw(client, job_id)
    last = await _last_runs(client, [raw["id"]])
    return await to_job(raw, last.get(raw["id"]))


async def list_jobs(client: PrefectClient, page: int = 1, page_size: int = 50) -> JobList:
    """One page of jobs (sorted by name), with last run and next run time.

    Three concurrent reads: the page, the count, and the latest runs of all jobs (jobs
    whose last run is not among those are looked up afterwards). The JSON is used as it
    comes: parsing 200 DeploymentResponse models would cost more than the reads.
    """
    page_size = max(1, min(page_size, MAX_PAGE_SIZE))
    page = max(page, 1)
    rows, total, recent = await asyncio.gather(
        _read_raw(
            client,
            "/deployments/filter",
            {
                "flows": _flows_body(),
                "limit": page_size,
                "offset": (page - 1) * page_size,
                "sort": "NAME_ASC",
            },
        ),
        _read_raw(client, "/deployments/count", {"flows": _flows_body()}),
        _recent_runs(client, None),
    )
    last = await _last_runs(client, [row["id"] for row in rows], recent)
    items = [await to_job(row, last.get(row["id"])) for row in rows]
    return JobList(
        items=items,
        total=int(total),
        page=page,
        page_size=page_size,
        pages=-(-int(total) // page_size),
    )


async def _recent_runs(
    client: PrefectClient, deployment_ids: list[str] | None, limit: int = MAX_PAGE_SIZE
) -> tuple[list[dict[str, Any]], bool]:
    """Started runs (JSON) of the given jobs (None: of all jobs), newest first; and
    whether the answer is complete (fewer rows than the limit)."""
    deployment = (
        FlowRunFilterDeploymentId(any_=[UUID(d) for d in deployment_ids])
        if deployment_ids
        else FlowRunFilterDeploymentId(is_null_=False)
    )
    run_filter = FlowRunFilter(
        deployment_id=deployment,
        state=FlowRunFilterState(type=FlowRunFilterStateType(any_=STARTED_STATES)),
    )
    runs: list[dict[str, Any]] = await _read_raw(
        client,
        "/flow_runs/filter",
        {
            "flows": _flows_body(),
            "flow_runs": run_filter.model_dump(mode="json", exclude_unset=True),
            "sort": FlowRunSort.EXPECTED_START_TIME_DESC.value,
            "limit": limit,
        },
    )
    return runs, len(runs) < limit


async def _last_runs(
    client: PrefectClient,
    deployment_ids: list[str],
    recent: tuple[list[dict[str, Any]], bool] | None = None,
) -> dict[str, dict[str, Any]]:
    """The newest started run of each deployment: the runs already read (`recent`),
    then one batched read, then one read per deployment only for those that a
    truncated batch could not answer."""
    wanted = set(deployment_ids)
    found: dict[str, dict[str, Any]] = {}

    def absorb(runs: list[dict[str, Any]]) -> None:
        for run in runs:
            if run.get("deployment_id") in wanted:
                found.setdefault(run["deployment_id"], run)

    if recent is not None:
        absorb(recent[0])
        if recent[1]:
            return found
    missing = list(wanted - found.keys())
    if missing:
        runs, complete = await _recent_runs(client, missing)
        absorb(runs)
        missing = [] if complete else list(wanted - found.keys())
    singles = await asyncio.gather(*(_recent_runs(client, [d], 1) for d in missing))
    for runs, _ in singles:
        absorb(runs)
    return found


# Next start per schedule (JSON). A cached date stays right while it is in the future:
# it was the first date after an earlier "now", so no date lies between now and it.
_NEXT_RUN_CACHE: dict[str, datetime] = {}
_NEXT_RUN_CACHE_SIZE = 10_000


async def _next_date(schedule: dict[str, Any], now: datetime) -> datetime | None:
    from prefect.server.schemas import schedules as server_schedules

    key = json.dumps(schedule, sort_keys=True)
    cached = _NEXT_RUN_CACHE.get(key)
    if cached is not None and cached > now:
        return cached
    kind = next((k for k in ("cron", "interval", "rrule") if schedule.get(k) is not None), None)
    if kind is None:
        return None
    server_cls: Any = {
        "cron": server_schedules.CronSchedule,
        "interval": server_schedules.IntervalSchedule,
        "rrule": server_schedules.RRuleSchedule,
    }[kind]
    dates = await server_cls.model_validate(schedule).get_dates(n=1, start=now)
    if not dates:
        return None
    if len(_NEXT_RUN_CACHE) >= _NEXT_RUN_CACHE_SIZE:
        _NEXT_RUN_CACHE.clear()
    _NEXT_RUN_CACHE[key] = dates[0]
    return dates[0]


async def next_run_time(deployment: dict[str, Any]) -> datetime | None:
    """The next start the Prefect scheduler will create, computed with its own schedule
    code (so it is known right after creation); None while paused or unscheduled."""
    if deployment.get("paused"):
        return None
    now = datetime.now(UTC)
    dates = [
        await _next_date(entry["schedule"], now)
        for entry in deployment.get("schedules") or []
        if entry.get("active", True) and isinstance(entry.get("schedule"), dict)
    ]
    return min((d for d in dates if d is not None), default=None)


async def to_job(deployment: dict[str, Any], last: dict[str, Any] | None) -> Job:
    """A job from a deployment's JSON (as the Prefect API returns it)."""
    schedules = [
        JobScheduleInfo(
            schedule=format_schedule(s), timezone=schedule_timezone(s), active=s.get("active", True)
        )
        for s in deployment.get("schedules") or []
    ]
    config = (deployment.get("parameters") or {}).get("pipeline_config")
    return Job(
        id=deployment["id"],
        name=deployment["name"],
        description=deployment.get("description") or None,
        schedule=schedules[0].schedule if schedules else None,
        timezone=schedules[0].timezone if schedules else None,
        schedules=schedules,
        paused=bool(deployment.get("paused")),
        status=deployment.get("status"),
        work_pool=deployment.get("work_pool_name"),
        tags=list(deployment.get("tags") or []),
        pipeline_config=config if isinstance(config, dict) else None,
        created=deployment.get("created"),
        updated=deployment.get("updated"),
        next_run_time=await next_run_time(deployment),
        last_run=_last_run(last),
    )


def _last_run(run: dict[str, Any] | None) -> LastRun | None:
    if run is None:
        return None
    state = run.get("state") or {}
    return LastRun(
        id=run["id"],
        name=run["name"],
        state=state.get("name"),
        state_type=state.get("type"),
        time=run.get("start_time") or run.get("expected_start_time"),
    )
