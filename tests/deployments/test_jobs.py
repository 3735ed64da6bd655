"""The job <-> deployment mapping against a real Prefect server (no facade)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import pytest
from prefect.client.orchestration import PrefectClient
from prefect.client.schemas.filters import (
    DeploymentFilter,
    DeploymentFilterId,
    FlowRunFilter,
    FlowRunFilterState,
    FlowRunFilterStateType,
)
from prefect.client.schemas.objects import StateType
from prefect.client.schemas.schedules import IntervalSchedule
from prefect.utilities.callables import parameter_schema

from api.schemas import Job, JobCreate
from deployments import jobs
from flows.config import parse_pipeline_config
from flows.errors import ConfigError, ConflictError, NotFoundError, ScheduleError
from flows.settings import PROJECT_ROOT, Settings
from tests.support.jobs import TINY_CONFIG, job_body, unique, wait_until
from tests.support.prefect_stack import PrefectStack

T = TypeVar("T")
IDLE_POOL = "idle-jobs"  # a pool no worker polls: runs created here never start

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("prefect_stack")]


@pytest.fixture
def call(prefect_stack: PrefectStack) -> Callable[[Callable[[PrefectClient], Awaitable[T]]], T]:
    """Run `fn(client)` on a fresh event loop with a client for the test server."""

    def _call(fn: Callable[[PrefectClient], Awaitable[T]]) -> T:
        async def main() -> T:
            async with PrefectClient(prefect_stack.api_url) as client:
                return await fn(client)

        return asyncio.run(main())

    return _call


@pytest.fixture
def idle_settings(prefect_stack: PrefectStack) -> Settings:
    return Settings(prefect_api_url=prefect_stack.api_url, training_pool=IDLE_POOL)


def create(call: Any, settings: Settings, **body: Any) -> Job:
    return call(lambda c: jobs.create_job(c, JobCreate(**job_body(**body)), settings))


def count_deployments(call: Any) -> int:
    return len(call(lambda c: c.read_deployments(limit=200)))


def test_mirror_signature_matches_the_training_flow() -> None:
    from flows.training import train_pipeline

    real = parameter_schema(train_pipeline.fn).model_dump()
    mirror = parameter_schema(jobs._train_pipeline_signature).model_dump()
    assert mirror == real


def test_create_job_writes_one_deployment(call: Any, idle_settings: Settings) -> None:
    job = create(
        call,
        idle_settings,
        schedule="cron:0 2 * * *",
        timezone="Europe/Berlin",
        tags=["nightly"],
        description="tiny nightly",
        paused=True,
    )
    deployment = call(lambda c: c.read_deployment(job.id))
    assert deployment.entrypoint == jobs.ENTRYPOINT
    assert deployment.work_pool_name == IDLE_POOL
    assert deployment.pull_steps == [
        {"prefect.deployments.steps.set_working_directory": {"directory": str(PROJECT_ROOT)}}
    ]
    expected = parse_pipeline_config(TINY_CONFIG).model_dump(mode="json")
    assert deployment.parameters == {"pipeline_config": expected, "job_name": job.name}
    assert deployment.tags == ["lm-training", "nightly"]
    assert deployment.paused is True
    assert "pipeline_config" in deployment.parameter_openapi_schema["properties"]
    assert deployment.schedules[0].schedule.cron == "0 2 * * *"
    assert (job.schedule, job.timezone, job.paused) == ("cron:0 2 * * *", "Europe/Berlin", True)
    assert job.description == "tiny nightly" and job.next_run_time is None  # paused
    resumed = call(lambda c: jobs.resume_job(c, job.id))
    local = resumed.next_run_time.astimezone(ZoneInfo("Europe/Berlin"))
    assert (local.hour, local.minute) == (2, 0)
    assert timedelta(0) < resumed.next_run_time - datetime.now(UTC) <= timedelta(hours=25)
    call(lambda c: jobs.delete_job(c, job.id))


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({"schedule": "cron:0 25 * * *"}, ["schedule"]),
        ({"schedule": "interval:minutes=-5"}, ["schedule"]),
        ({"schedule": "cron:0 2 * * *", "timezone": "Nowhere/Land"}, ["timezone"]),
        (
            {"pipeline_config": {**TINY_CONFIG, "data": {"dataset_name": "no_such_data"}}},
            ["pipeline_config.data.dataset_name"],
        ),
        (
            {
                "schedule": "weekly",
                "pipeline_config": {
                    **TINY_CONFIG,
                    "model": {**TINY_CONFIG["model"], "config": {"learning_rate": -1}},
                },
            },
            ["schedule", "pipeline_config.model.config.learning_rate"],
        ),
    ],
)
def test_bad_input_names_fields_and_writes_nothing(
    call: Any, idle_settings: Settings, body: dict[str, Any], fields: list[str]
) -> None:
    before = count_deployments(call)
    with pytest.raises(ConfigError) as info:
        create(call, idle_settings, **body)
    assert [e["field"] for e in info.value.errors] == fields
    assert isinstance(info.value, ScheduleError) == all(
        f in ("schedule", "timezone") for f in fields
    )
    assert count_deployments(call) == before


def test_duplicate_name_is_a_conflict_and_keeps_the_original(
    call: Any, idle_settings: Settings
) -> None:
    name = unique("dup")
    job = create(call, idle_settings, name=name, schedule="interval:hours=6", paused=True)
    with pytest.raises(ConflictError, match="already exists"):
        create(call, idle_settings, name=name, schedule="cron:0 3 * * *")
    again = call(lambda c: jobs.get_job(c, job.id))
    assert again.schedule == "interval:hours=6"
    call(lambda c: jobs.delete_job(c, job.id))


def test_next_run_time_is_the_schedulers_next_run(call: Any, idle_settings: Settings) -> None:
    job = create(call, idle_settings, schedule="cron:*/5 * * * *")

    async def earliest_scheduled(c: PrefectClient) -> datetime | None:
        runs = await c.read_flow_runs(
            deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[job.id])),
            flow_run_filter=FlowRunFilter(
                state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.SCHEDULED]))
            ),
            limit=50,
        )
        return min((r.expected_start_time for r in runs), default=None)

    first = wait_until(lambda: call(earliest_scheduled), 90, 2, "scheduler created runs")
    now_job = call(lambda c: jobs.get_job(c, job.id))
    if first > datetime.now(UTC):  # not yet due
        assert now_job.next_run_time == first
    assert now_job.next_run_time.minute % 5 == 0
    call(lambda c: jobs.pause_job(c, job.id))
    assert call(earliest_scheduled) is None, "pause deletes the scheduled runs"
    call(lambda c: jobs.delete_job(c, job.id))


def test_deployments_made_elsewhere_are_jobs_other_flows_are_not(
    call: Any, idle_settings: Settings
) -> None:
    from prefect.client.schemas.actions import DeploymentScheduleCreate

    name = unique("yaml-like")

    async def make(c: PrefectClient) -> tuple[Any, Any]:
        await jobs.ensure_work_pool(c, IDLE_POOL)
        flow_id = await c.create_flow_from_name(jobs.FLOW_NAME)
        dep = await c.create_deployment(
            flow_id=flow_id,
            name=name,
            work_pool_name=IDLE_POOL,
            entrypoint=jobs.ENTRYPOINT,
            paused=True,
            schedules=[
                DeploymentScheduleCreate(schedule=IntervalSchedule(interval=timedelta(minutes=90)))
            ],
        )
        other_flow = await c.create_flow_from_name("not-lm-training")
        other = await c.create_deployment(flow_id=other_flow, name=name, paused=True)
        return dep, other

    dep_id, other_id = call(make)
    job = call(lambda c: jobs.get_job(c, dep_id))
    assert (job.name, job.schedule, job.pipeline_config) == (
        name,
        "interval:hours=1,minutes=30",
        None,
    )
    with pytest.raises(NotFoundError):
        call(lambda c: jobs.get_job(c, other_id))
    with pytest.raises(NotFoundError):
        call(lambda c: jobs.delete_job(c, other_id))
    names = {j.name for j in _all_jobs(call)}
    assert name in names
    call(lambda c: c.delete_deployment(other_id))
    call(lambda c: jobs.delete_job(c, dep_id))


def _all_jobs(call: Any) -> list[Job]:
    out, page = [], 1
    while True:
        listing = call(lambda c, p=page: jobs.list_jobs(c, page=p, page_size=2))
        out += listing.items
        if page >= listing.pages:
            return out
        page += 1


def test_pagination_is_sorted_and_complete(call: Any, idle_settings: Settings) -> None:
    made = [create(call, idle_settings, name=unique(f"page-{i}"), paused=True) for i in range(3)]
    listing = call(lambda c: jobs.list_jobs(c, page=1, page_size=2))
    assert len(listing.items) == 2 and listing.total >= 3
    assert listing.pages == -(-listing.total // 2)
    every = _all_jobs(call)
    assert len(every) == listing.total
    assert [j.name for j in every] == sorted(j.name for j in every)
    assert {j.name for j in made} <= {j.name for j in every}
    for job in made:
        call(lambda c, job=job: jobs.delete_job(c, job.id))


def test_unknown_and_malformed_ids(call: Any) -> None:
    for job_id in ("not-a-uuid", "00000000-0000-0000-0000-000000000000"):
        for action in (
            jobs.get_job,
            jobs.delete_job,
            jobs.pause_job,
            jobs.resume_job,
            jobs.trigger_job,
        ):
            with pytest.raises(NotFoundError, match="not found"):
                call(lambda c, a=action, j=job_id: a(c, j))


def test_trigger_is_idempotent_and_validates_overrides(call: Any, idle_settings: Settings) -> None:
    job = create(call, idle_settings, paused=True)
    first = call(lambda c: jobs.trigger_job(c, job.id, idempotency_key="k-1"))
    again = call(lambda c: jobs.trigger_job(c, job.id, idempotency_key="k-1"))
    other = call(
        lambda c: jobs.trigger_job(
            c,
            job.id,
            idempotency_key="k-2",
            overrides={"training": {"max_steps": 2}},
            reason="test",
        )
    )
    assert first.flow_run_id == again.flow_run_id != other.flow_run_id
    run = call(lambda c: c.read_flow_run(other.flow_run_id))
    assert run.parameters["pipeline_config"]["training"]["max_steps"] == 2
    assert (run.parameters["job_name"], run.parameters["reason"]) == (job.name, "test")
    with pytest.raises(ConfigError) as info:
        call(
            lambda c: jobs.trigger_job(
                c,
                job.id,
                overrides={"model": {"config": {"learning_rate": -0.1}}, "training": {"bogus": 1}},
            )
        )
    assert sorted(e["field"] for e in info.value.errors) == [
        "overrides.model.config.learning_rate",
        "overrides.training.bogus",
    ]
    call(lambda c: jobs.delete_job(c, job.id))


def test_concurrent_creates_of_one_name_make_one_job(call: Any, idle_settings: Settings) -> None:
    body = JobCreate(**job_body(name=unique("race"), paused=True))

    async def race(c: PrefectClient) -> list[Any]:
        attempts = [jobs.create_job(c, body, idle_settings) for _ in range(3)]
        return list(await asyncio.gather(*attempts, return_exceptions=True))

    results = call(race)
    created = [r for r in results if isinstance(r, Job)]
    assert len(created) == 1
    assert all(isinstance(r, ConflictError) for r in results if not isinstance(r, Job))
    call(lambda c: jobs.delete_job(c, created[0].id))
