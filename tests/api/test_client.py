"""The SDK against the facade served by uvicorn (as `make up` runs it) on the real stack."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from api.client import (
    AsyncLMCPClient,
    ConflictError,
    LMCPClient,
    NotFoundError,
    ServiceUnavailableError,
    ValidationError,
)
from api.schemas import STAGE_NAMES, JobCreate, RunStatus
from tests.support.facade import uvicorn_facade
from tests.support.jobs import TINY_CONFIG, cancel_unfinished_runs, job_body, unique, wait_until
from tests.support.prefect_stack import PrefectStack, free_port

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def base_url(prefect_stack: PrefectStack) -> Iterator[str]:
    with uvicorn_facade(prefect_stack) as url:
        yield url


@pytest.fixture
def sdk(base_url: str) -> Iterator[LMCPClient]:
    with LMCPClient(base_url, timeout=60) as client:
        yield client


def test_typed_errors_carry_the_server_message(sdk: LMCPClient) -> None:
    with pytest.raises(NotFoundError) as missing:
        sdk.get_job("00000000-0000-0000-0000-000000000000")
    assert missing.value.status_code == 404 and "not found" in missing.value.message
    bad = job_body(schedule="interval:minutes=-5")
    bad["pipeline_config"]["model"]["config"]["learning_rate"] = -1
    with pytest.raises(ValidationError) as invalid:
        sdk.create_job(bad)
    assert invalid.value.field_names == ["schedule", "pipeline_config.model.config.learning_rate"]
    job = sdk.create_job(JobCreate(**job_body(paused=True)))
    with pytest.raises(ConflictError, match="already exists"):
        sdk.create_job(job_body(name=job.name))
    sdk.delete_job(job.id)
    with pytest.raises(NotFoundError):
        sdk.delete_job(job.id)


def test_unreachable_facade_is_service_unavailable() -> None:
    with (
        LMCPClient(f"http://127.0.0.1:{free_port()}", timeout=5) as client,
        pytest.raises(ServiceUnavailableError),
    ):
        client.list_jobs()


@pytest.mark.slow
def test_sdk_drives_a_job_end_to_end(sdk: LMCPClient, prefect_stack: PrefectStack) -> None:
    assert sdk.wait_until_healthy(timeout=60).status == "ok"
    job = sdk.create_job(job_body(name=unique("sdk"), schedule="interval:seconds=20", paused=True))
    try:
        assert (job.paused, job.schedule, job.next_run_time) == (True, "interval:seconds=20", None)
        assert job.id in {j.id for j in sdk.iter_jobs(page_size=2)}

        first = sdk.trigger_job(job.id, idempotency_key="sdk-run", reason="sdk test")
        again = sdk.trigger_job(job.id, idempotency_key="sdk-run")
        assert first.flow_run_id == again.flow_run_id
        seen: list[RunStatus] = []
        final = sdk.wait_for_run(first.flow_run_id, timeout=420, poll=2, on_update=seen.append)
        assert final.state == "Completed", final.state_message
        assert [s.name for s in final.stages] == list(STAGE_NAMES)
        assert {s.state for s in final.stages} == {"Completed"}
        assert final.progress == 100.0 and final.parameters["reason"] == "sdk test"
        assert len(seen) >= 1 and seen[-1].is_final
        assert sdk.get_job(job.id).last_run.id == first.flow_run_id  # type: ignore[union-attr]

        resumed = sdk.resume_job(job.id)
        assert resumed.paused is False and resumed.next_run_time is not None
        scheduled = wait_until(
            lambda: [
                r
                for r in sdk.list_runs(job_id=job.id, state="RUNNING,COMPLETED").items
                if r.id != first.flow_run_id
            ],
            240,
            3,
            "a scheduled run after resume",
        )
        assert scheduled[0].job_name == job.name
        paused = sdk.pause_job(job.id)
        assert paused.paused is True
        assert sdk.list_runs(job_id=job.id, state="SCHEDULED").items == []
    finally:
        sdk.pause_job(job.id)
        cancel_unfinished_runs(prefect_stack.api_url, str(job.id))
        sdk.delete_job(job.id)


def test_async_client(base_url: str, prefect_stack: PrefectStack) -> None:
    async def scenario() -> None:
        async with AsyncLMCPClient(base_url) as client:
            health = await client.health()
            assert health.status == "ok", health
            job = await client.create_job(job_body(paused=True, pipeline_config=TINY_CONFIG))
            assert (await client.get_job(job.id)).name == job.name
            assert any(j.id == job.id for j in (await client.list_jobs(page_size=200)).items)
            run = await client.trigger_job(job.id, idempotency_key="a")
            assert (await client.trigger_job(job.id, idempotency_key="a")).flow_run_id == (
                run.flow_run_id
            )
            runs = await client.list_runs(job_id=job.id)
            assert [r.id for r in runs.items] == [run.flow_run_id]
            assert (await client.pause_job(job.id)).paused is True
            assert (await client.resume_job(job.id)).paused is False
            await client.pause_job(job.id)
            cancel_unfinished_runs(prefect_stack.api_url, str(job.id))
            await client.delete_job(job.id)
            with pytest.raises(NotFoundError):
                await client.get_run("00000000-0000-0000-0000-000000000000")

    asyncio.run(scenario())
