"""Job <-> deployment mapping on Prefect's async client.

A job IS a Prefect deployment of the training flow ("lm-training"): its id is the
deployment id, its schedule the deployment's schedule, its pipeline config the
deployment's `pipeline_config` parameter, its paused flag the deployment's. Nothing is
copied into another store, so jobs created with `prefect deploy` (prefect.yaml) or in
the Prefect UI are jobs too.

Prefect errors become the project's errors: ObjectNotFound and malformed ids ->
NotFoundError, a duplicate name -> ConflictError, bad input -> ConfigError/ScheduleError
(raised before anything is written).
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import weakref
from typing import Any
from uuid import UUID

from prefect.client.orchestration import PrefectClient
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.client.schemas.responses import DeploymentResponse
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound
from prefect.utilities.callables import parameter_schema

from api.schemas import Job, JobCreate, TriggerResponse
from deployments.job_views import (
    ENTRYPOINT,
    FLOW_NAME,
    JOB_TAG,
    MAX_PAGE_SIZE,
    get_job,
    job_flow_filter,
    list_jobs,
    parse_job_id,
    read_job_deployment,
)
from deployments.schedules import JobSchedule, parse_schedule
from flows.config import PipelineConfig, merge_overrides, parse_pipeline_config
from flows.errors import ConfigError, ConflictError, NotFoundError, ScheduleError
from flows.settings import PROJECT_ROOT, Settings

TRIGGER_TAG = "lmcp-api"


def pull_steps() -> list[dict[str, Any]]:
    return [{"prefect.deployments.steps.set_working_directory": {"directory": str(PROJECT_ROOT)}}]


def _train_pipeline_signature(
    pipeline_config: PipelineConfig, job_name: str = "adhoc", reason: str = "manual"
) -> None:
    """Run the seven-stage pipeline for one job run (thread id = flow run id)."""


def job_parameter_schema() -> dict[str, Any]:
    """The flow's parameter schema, used by Prefect to validate run parameters.

    Taken from `flows.training.train_pipeline` when that module is already loaded;
    otherwise from a signature mirror (the facade avoids importing the training stack;
    tests/deployments/test_jobs.py checks that both give the same schema).
    """
    module = sys.modules.get("flows.training")
    fn = getattr(module, "train_pipeline", None)
    target = getattr(fn, "fn", None) or _train_pipeline_signature
    return parameter_schema(target).model_dump()


# ------------------------------------------------------------------------------ create


def validate_job(body: JobCreate) -> tuple[JobSchedule | None, PipelineConfig]:
    """Check schedule, timezone and config together; raise one error naming every field."""
    errors: list[dict[str, str]] = []
    schedule: JobSchedule | None = None
    config: PipelineConfig | None = None
    schedule_only = True
    if body.schedule is not None:
        try:
            schedule = parse_schedule(body.schedule, body.timezone)
        except ScheduleError as exc:
            errors += exc.errors
    try:
        config = parse_pipeline_config(body.pipeline_config, "pipeline_config")
    except ConfigError as exc:
        errors += exc.errors
        schedule_only = False
    if errors or config is None:
        summary = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
        cls = ScheduleError if schedule_only else ConfigError
        raise cls(f"invalid job: {summary}", errors=errors)
    return schedule, config


async def ensure_work_pool(client: PrefectClient, name: str) -> None:
    """Create the training pool (type "process") if it does not exist yet."""
    try:
        await client.read_work_pool(name)
        return
    except ObjectNotFound:
        pass
    from prefect.workers.process import ProcessWorker

    template = ProcessWorker.get_default_base_job_template()
    with contextlib.suppress(ObjectAlreadyExists):  # created concurrently
        await client.create_work_pool(
            WorkPoolCreate(name=name, type="process", base_job_template=template)
        )


# Prefect upserts deployments by name, so "409 on a duplicate" is a check before the
# create; the lock makes check + create atomic within one facade process.
_create_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
    weakref.WeakKeyDictionary()
)


def _create_lock() -> asyncio.Lock:
    loop = asyncio.get_running_loop()
    lock = _create_locks.get(loop)
    if lock is None:
        lock = _create_locks[loop] = asyncio.Lock()
    return lock


async def create_job(client: PrefectClient, body: JobCreate, settings: Settings) -> Job:
    """Create the deployment of a job; ConflictError (409) if the name is taken."""
    schedule, config = validate_job(body)
    async with _create_lock():
        if await _find_by_name(client, body.name) is not None:
            raise ConflictError(
                f"a job named '{body.name}' already exists",
                details=[{"field": "name", "message": "already exists"}],
            )
        deployment_id = await _create_deployment(client, body, schedule, config, settings)
    return await get_job(client, deployment_id)


async def _create_deployment(
    client: PrefectClient,
    body: JobCreate,
    schedule: JobSchedule | None,
    config: PipelineConfig,
    settings: Settings,
) -> UUID:
    await ensure_work_pool(client, settings.training_pool)
    flow_id = await client.create_flow_from_name(FLOW_NAME)
    tags = [JOB_TAG, *(t for t in body.tags if t != JOB_TAG)]
    return await client.create_deployment(
        flow_id=flow_id,
        name=body.name,
        work_pool_name=settings.training_pool,
        entrypoint=ENTRYPOINT,
        pull_steps=pull_steps(),
        parameters={"pipeline_config": config.model_dump(mode="json"), "job_name": body.name},
        parameter_openapi_schema=job_parameter_schema(),
        enforce_parameter_schema=True,
        schedules=[schedule.to_deployment_schedule()] if schedule else [],
        tags=tags,
        description=body.description or "",
        paused=body.paused,
    )


async def _find_by_name(client: PrefectClient, name: str) -> DeploymentResponse | None:
    try:
        return await client.read_deployment_by_name(f"{FLOW_NAME}/{name}")
    except ObjectNotFound:
        return None


# ------------------------------------------------------------------------------ actions


async def delete_job(client: PrefectClient, job_id: str | UUID) -> None:
    deployment = await read_job_deployment(client, job_id)
    try:
        await client.delete_deployment(deployment.id)
    except ObjectNotFound:
        raise NotFoundError(f"job '{job_id}' not found") from None


async def pause_job(client: PrefectClient, job_id: str | UUID) -> Job:
    """Pause: no new scheduled runs, and the job's scheduled runs that have not started
    are deleted, late ones included. (`client.pause_deployment` PATCHes `paused`, which
    keeps past-due runs, so a worker would still start them; Prefect's
    `/pause_deployment` route deletes them. Both set the same `paused` flag.)"""
    deployment = await read_job_deployment(client, job_id)
    await client.request(
        "POST",
        "/deployments/{id}/pause_deployment",  # type: ignore[arg-type]
        path_params={"id": deployment.id},
    )
    return await get_job(client, deployment.id)


async def resume_job(client: PrefectClient, job_id: str | UUID) -> Job:
    deployment = await read_job_deployment(client, job_id)
    await client.resume_deployment(deployment.id)
    return await get_job(client, deployment.id)


def run_parameters(
    deployment: DeploymentResponse, overrides: dict[str, Any] | None, reason: str | None
) -> dict[str, Any]:
    """The job's config with `overrides` deep-merged, validated like a new config."""
    base = (deployment.parameters or {}).get("pipeline_config") or {}
    merged = merge_overrides(base, overrides or {})
    try:
        config = parse_pipeline_config(merged, "pipeline_config")
    except ConfigError as exc:
        errors = [_blame_overrides(e, overrides or {}) for e in exc.errors]
        summary = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
        raise ConfigError(f"invalid run parameters: {summary}", errors=errors) from None
    return {
        "pipeline_config": config.model_dump(mode="json"),
        "job_name": deployment.name,
        "reason": reason or "manual",
    }


def _blame_overrides(error: dict[str, str], overrides: dict[str, Any]) -> dict[str, str]:
    """Report a bad field under "overrides." when the caller sent it."""
    parts = error["field"].split(".")[1:]
    node: Any = overrides
    for part in parts:
        if not isinstance(node, dict) or part not in node:
            return error
        node = node[part]
    return {"field": ".".join(["overrides", *parts]), "message": error["message"]}


async def trigger_job(
    client: PrefectClient,
    job_id: str | UUID,
    *,
    overrides: dict[str, Any] | None = None,
    reason: str | None = None,
    idempotency_key: str | None = None,
) -> TriggerResponse:
    """Start a run now. The same idempotency key (per job) always gives the same run."""
    deployment = await read_job_deployment(client, job_id)
    parameters = run_parameters(deployment, overrides, reason)
    key = f"lmcp:{deployment.id}:{idempotency_key}" if idempotency_key else None
    run = await client.create_flow_run_from_deployment(
        deployment.id, parameters=parameters, idempotency_key=key, tags=[TRIGGER_TAG]
    )
    return TriggerResponse(
        job_id=deployment.id,
        flow_run_id=run.id,
        flow_run_name=run.name,
        state=run.state_name,
        idempotency_key=idempotency_key,
    )


__all__ = [
    "ENTRYPOINT",
    "FLOW_NAME",
    "JOB_TAG",
    "MAX_PAGE_SIZE",
    "create_job",
    "delete_job",
    "ensure_work_pool",
    "get_job",
    "job_flow_filter",
    "job_parameter_schema",
    "list_jobs",
    "parse_job_id",
    "pause_job",
    "read_job_deployment",
    "resume_job",
    "run_parameters",
    "trigger_job",
    "validate_job",
]
