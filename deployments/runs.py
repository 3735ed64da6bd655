"""Job runs: flow runs of the training flow's deployments, with per-stage status.

Each run is read from Prefect: the flow run, its task runs (one per stage, named after
the stage) and its progress artifacts (keys "<stage>-progress", e.g.
"train-model-progress"). A page costs four reads, three of them concurrent.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from prefect.client.orchestration import PrefectClient
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    ArtifactFilterType,
    DeploymentFilter,
    DeploymentFilterId,
    DeploymentFilterName,
    FlowRunFilter,
    FlowRunFilterDeploymentId,
    FlowRunFilterExpectedStartTime,
    FlowRunFilterId,
    FlowRunFilterState,
    FlowRunFilterStateType,
)
from prefect.client.schemas.objects import Artifact, FlowRun, StateType, TaskRun
from prefect.client.schemas.sorting import ArtifactSort, FlowRunSort

from api.schemas import STAGE_NAMES, RunList, RunStatus, StageStatus
from deployments.job_views import MAX_PAGE_SIZE, job_flow_filter, parse_job_id
from flows.errors import ConfigError, NotFoundError

FINAL_STATES = {StateType.COMPLETED, StateType.FAILED, StateType.CANCELLED, StateType.CRASHED}
TRAINING_PROGRESS_KEYS = ("train-model-progress", "train-progress")


def parse_states(states: Iterable[str] | None) -> list[StateType]:
    """Parse "running,failed" or ["RUNNING", "failed"]; ConfigError if unknown."""
    out: list[StateType] = []
    for item in states or []:
        for name in str(item).split(","):
            name = name.strip().upper()
            if not name:
                continue
            try:
                out.append(StateType(name))
            except ValueError:
                known = ", ".join(s.value for s in StateType)
                message = f"unknown state '{name}'; use one of {known}"
                raise ConfigError(
                    message, errors=[{"field": "state", "message": message}]
                ) from None
    return out


async def list_runs(
    client: PrefectClient,
    *,
    job_id: str | UUID | None = None,
    job_name: str | None = None,
    states: Iterable[str] | None = None,
    page: int = 1,
    page_size: int = 20,
) -> RunList:
    """Runs of jobs, newest first. Future scheduled runs are left out unless the state
    filter asks for SCHEDULED."""
    state_types = parse_states(states)
    run_filter = FlowRunFilter(
        deployment_id=FlowRunFilterDeploymentId(any_=[parse_job_id(job_id)])
        if job_id
        else FlowRunFilterDeploymentId(is_null_=False),
    )
    if state_types:
        run_filter.state = FlowRunFilterState(type=FlowRunFilterStateType(any_=state_types))
    if StateType.SCHEDULED not in state_types:
        run_filter.expected_start_time = FlowRunFilterExpectedStartTime(
            before_=datetime.now(UTC)  # type: ignore[arg-type]
        )
    deployment_filter = (
        DeploymentFilter(name=DeploymentFilterName(any_=[job_name])) if job_name else None
    )
    page_size = max(1, min(page_size, MAX_PAGE_SIZE))
    body: dict[str, Any] = {
        "flows": job_flow_filter().model_dump(mode="json", exclude_unset=True),
        "flow_runs": run_filter.model_dump(mode="json", exclude_unset=True),
        "deployments": deployment_filter.model_dump(mode="json", exclude_unset=True)
        if deployment_filter
        else None,
        "sort": FlowRunSort.EXPECTED_START_TIME_DESC.value,
        "limit": page_size,
        "page": max(page, 1),
    }
    response = await client.request("POST", "/flow_runs/paginate", json=body)  # type: ignore[arg-type]
    data = response.json()
    runs = FlowRun.model_validate_list(data["results"])
    items = await describe_runs(client, runs)
    return RunList(
        items=items,
        total=data["count"],
        page=data["page"],
        page_size=page_size,
        pages=data["pages"],
    )


async def get_run(client: PrefectClient, run_id: str | UUID) -> RunStatus:
    try:
        uid = run_id if isinstance(run_id, UUID) else UUID(str(run_id))
    except ValueError:
        raise NotFoundError(f"run '{run_id}' not found: not a valid run id") from None
    runs = await client.read_flow_runs(
        flow_filter=job_flow_filter(),
        flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[uid])),
        limit=1,
    )
    if not runs:
        raise NotFoundError(f"run '{run_id}' not found")
    return (await describe_runs(client, runs))[0]


async def describe_runs(client: PrefectClient, runs: list[FlowRun]) -> list[RunStatus]:
    if not runs:
        return []
    run_ids = [r.id for r in runs]
    deployment_ids = list({r.deployment_id for r in runs if r.deployment_id})
    tasks, artifacts, names = await asyncio.gather(
        _task_runs(client, run_ids),
        _progress_artifacts(client, run_ids),
        _deployment_names(client, deployment_ids),
    )
    return [
        _run_status(run, tasks.get(run.id, []), artifacts.get(run.id, []), names) for run in runs
    ]


async def _task_runs(client: PrefectClient, run_ids: list[UUID]) -> dict[UUID, list[TaskRun]]:
    out: dict[UUID, list[TaskRun]] = {}
    run_filter = FlowRunFilter(id=FlowRunFilterId(any_=run_ids))
    offset = 0
    while True:
        batch = await client.read_task_runs(
            flow_run_filter=run_filter, limit=MAX_PAGE_SIZE, offset=offset
        )
        for task_run in batch:
            if task_run.flow_run_id is not None:
                out.setdefault(task_run.flow_run_id, []).append(task_run)
        if len(batch) < MAX_PAGE_SIZE:
            return out
        offset += MAX_PAGE_SIZE


async def _progress_artifacts(
    client: PrefectClient, run_ids: list[UUID]
) -> dict[UUID, list[Artifact]]:
    """Progress artifacts per run, most recently updated first."""
    out: dict[UUID, list[Artifact]] = {}
    artifact_filter = ArtifactFilter(
        flow_run_id=ArtifactFilterFlowRunId(any_=run_ids),
        type=ArtifactFilterType(any_=["progress"]),
    )
    offset = 0
    while True:
        batch = await client.read_artifacts(
            artifact_filter=artifact_filter,
            sort=ArtifactSort.UPDATED_DESC,
            limit=MAX_PAGE_SIZE,
            offset=offset,
        )
        for artifact in batch:
            if artifact.flow_run_id is not None:
                out.setdefault(artifact.flow_run_id, []).append(artifact)
        if len(batch) < MAX_PAGE_SIZE:
            return out
        offset += MAX_PAGE_SIZE


async def _deployment_names(client: PrefectClient, ids: list[UUID]) -> dict[UUID, str]:
    if not ids:
        return {}
    rows = await client.read_deployments(
        deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=ids)), limit=len(ids)
    )
    return {d.id: d.name for d in rows}


def stage_of(task_run_name: str) -> str | None:
    """Stage tasks are named after the stage ("train_model" or "train_model-1a2")."""
    for stage in STAGE_NAMES:
        if task_run_name == stage or task_run_name.startswith(stage + "-"):
            return stage
    return None


def _progress_value(artifact: Artifact) -> float | None:
    try:
        return max(0.0, min(100.0, float(artifact.data)))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def _stage_progress_key(stage: str) -> str:
    return stage.replace("_", "-") + "-progress"


def _stages(tasks: list[TaskRun], artifacts: list[Artifact]) -> list[StageStatus]:
    latest: dict[str, TaskRun] = {}
    for task_run in tasks:
        stage = stage_of(task_run.name)
        if stage is None:
            continue
        seen = latest.get(stage)
        if seen is None or _when(task_run) >= _when(seen):
            latest[stage] = task_run
    by_key: dict[str | None, Artifact] = {}
    for artifact in artifacts:  # most recent first
        by_key.setdefault(artifact.key, artifact)
    return [
        _stage_status(name, latest.get(name), by_key.get(_stage_progress_key(name)))
        for name in STAGE_NAMES
    ]


def _stage_status(name: str, run: TaskRun | None, artifact: Artifact | None) -> StageStatus:
    if run is None:
        return StageStatus(name=name, progress=_progress_value(artifact) if artifact else None)
    return StageStatus(
        name=name,
        state=run.state_name,
        state_type=run.state_type.value if run.state_type else None,
        start_time=run.start_time,
        end_time=run.end_time,
        progress=_progress_value(artifact) if artifact else None,
    )


def _when(task_run: TaskRun) -> datetime:
    return (
        task_run.start_time
        or task_run.expected_start_time
        or task_run.created
        or datetime.min.replace(tzinfo=UTC)
    )


def _current_stage(stages: list[StageStatus]) -> str | None:
    """The running stage; otherwise the stage that started last."""
    started = [s for s in stages if s.state_type is not None]
    running = [s for s in started if s.state_type == StateType.RUNNING.value]
    if running:
        return running[-1].name
    if not started:
        return None
    floor = datetime.min.replace(tzinfo=UTC)
    return max(started, key=lambda s: (s.start_time or floor, STAGE_NAMES.index(s.name))).name


def _run_progress(run: FlowRun, artifacts: list[Artifact]) -> float | None:
    chosen = next(
        (a for key in TRAINING_PROGRESS_KEYS for a in artifacts if a.key == key),
        artifacts[0] if artifacts else None,
    )
    value = _progress_value(chosen) if chosen else None
    if value is None and run.state_type == StateType.COMPLETED:
        return 100.0
    return value


def _run_status(
    run: FlowRun, tasks: list[TaskRun], artifacts: list[Artifact], names: dict[UUID, str]
) -> RunStatus:
    stages = _stages(tasks, artifacts)
    return RunStatus(
        id=run.id,
        name=run.name,
        job_id=run.deployment_id,
        job_name=names.get(run.deployment_id) if run.deployment_id else None,
        state=run.state_name,
        state_type=run.state_type.value if run.state_type else None,
        state_message=run.state.message if run.state else None,
        is_final=run.state_type in FINAL_STATES,
        expected_start_time=run.expected_start_time,
        start_time=run.start_time,
        end_time=run.end_time,
        current_stage=_current_stage(stages),
        stages=stages,
        progress=_run_progress(run, artifacts),
        parameters=dict(run.parameters or {}),
    )
