"""The automation endpoints, in-process, against a real Prefect server and worker."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prefect.client.orchestration import SyncPrefectClient
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

from api.schemas import STAGE_NAMES
from tests.support.jobs import (
    SEED_JOB,
    cancel_unfinished_runs,
    job_body,
    unique,
    wait_until,
)
from tests.support.prefect_stack import PrefectStack

# Every test here talks to a real Prefect server (the session's stack).
pytestmark = pytest.mark.integration

JOBS = "/api/v1/automation/jobs"
RUNS = "/api/v1/monitoring/training/jobs"
INTERVAL_S = 20


def fields(response: Any) -> list[str]:
    return [f["field"] for f in response.json()["error"]["fields"]]


def total_jobs(client: TestClient) -> int:
    return int(client.get(JOBS, params={"page_size": 1}).json()["total"])


def runs_of(client: TestClient, job_id: str, state: str | None = None) -> list[dict[str, Any]]:
    params: dict[str, Any] = {"job_id": job_id, "page_size": 200}
    if state:
        params["state"] = state
    response = client.get(RUNS, params=params)
    assert response.status_code == 200, response.text
    return list(response.json()["items"])


# ------------------------------------------------------------------------------ 4xx


def test_seed_example_job_is_accepted_verbatim(idle_api: TestClient) -> None:
    body = {**SEED_JOB, "name": unique("Daily Model Training")}
    created = idle_api.post(JOBS, json=body)
    assert created.status_code == 201, created.text
    job = created.json()
    assert (job["schedule"], job["paused"], job["timezone"]) == ("cron:0 2 * * *", False, "UTC")
    assert job["next_run_time"].endswith("T02:00:00Z")
    assert job["pipeline_config"]["model"]["config"]["learning_rate"] == 0.001
    assert idle_api.get(f"{JOBS}/{job['id']}").json()["name"] == body["name"]
    assert idle_api.delete(f"{JOBS}/{job['id']}").status_code == 204


@pytest.mark.parametrize(
    ("change", "expected_fields"),
    [
        ({"schedule": "cron:0 2 * 13 *"}, ["schedule"]),
        ({"schedule": "cron:99 * * * *"}, ["schedule"]),
        ({"schedule": "interval:hours=-6"}, ["schedule"]),
        ({"schedule": "interval:hours=0"}, ["schedule"]),
        ({"schedule": "interval:weeks=1"}, ["schedule"]),
        ({"schedule": "0 2 * * *"}, ["schedule"]),
        ({"schedule": ""}, ["schedule"]),
        ({"timezone": "Atlantis/Capital"}, ["timezone"]),
        (
            {"pipeline_config.data.dataset_name": "no_such_dataset"},
            ["pipeline_config.data.dataset_name"],
        ),
        (
            {"pipeline_config.model.config.learning_rate": -0.001},
            ["pipeline_config.model.config.learning_rate"],
        ),
        ({"pipeline_config.training.epochs": 0}, ["pipeline_config.training.epochs"]),
        ({"pipeline_config.model.extra": 1}, ["pipeline_config.model.extra"]),
        ({"name": "a/b"}, ["name"]),
        ({"name": ""}, ["name"]),
        ({"color": "red"}, ["color"]),
        ({"pipeline_config": None}, ["pipeline_config"]),
    ],
)
def test_bad_job_is_422_naming_the_field_and_writes_nothing(
    idle_api: TestClient, change: dict[str, Any], expected_fields: list[str]
) -> None:
    body = job_body(schedule="cron:0 2 * * *")
    for path, value in change.items():
        node = body
        *parents, leaf = path.split(".")
        for part in parents:
            node = node[part]
        node[leaf] = value
    before = total_jobs(idle_api)
    response = idle_api.post(JOBS, json=body)
    assert response.status_code == 422, response.text
    assert fields(response) == expected_fields
    error = response.json()["error"]
    assert error["code"] in ("invalid_schedule", "invalid_config", "invalid_request")
    assert all(f in error["message"] for f in expected_fields)
    assert total_jobs(idle_api) == before


def test_duplicate_name_is_409(idle_api: TestClient) -> None:
    body = job_body(schedule="interval:hours=6", paused=True)
    first = idle_api.post(JOBS, json=body)
    assert first.status_code == 201, first.text
    again = idle_api.post(JOBS, json={**body, "schedule": "cron:0 1 * * *"})
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "conflict"
    assert body["name"] in again.json()["error"]["message"]
    assert idle_api.get(f"{JOBS}/{first.json()['id']}").json()["schedule"] == "interval:hours=6"
    idle_api.delete(f"{JOBS}/{first.json()['id']}")


@pytest.mark.parametrize("job_id", ["00000000-0000-0000-0000-000000000000", "no-such-job"])
@pytest.mark.parametrize(
    ("method", "suffix"),
    [("GET", ""), ("DELETE", ""), ("POST", "/trigger"), ("POST", "/pause"), ("POST", "/resume")],
)
def test_unknown_job_is_404(idle_api: TestClient, job_id: str, method: str, suffix: str) -> None:
    response = idle_api.request(method, f"{JOBS}/{job_id}{suffix}")
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["code"] == "not_found" and job_id in error["message"]


def test_unknown_route_uses_the_error_body(idle_api: TestClient) -> None:
    response = idle_api.get("/api/v1/automation/nothing-here")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_openapi_documents_the_seed_example(idle_api: TestClient) -> None:
    spec = idle_api.get("/openapi.json").json()
    create = spec["paths"][JOBS]["post"]
    examples = create["requestBody"]["content"]["application/json"]["examples"]
    assert examples["seed"]["value"] == SEED_JOB
    assert {"201", "409", "422"} <= set(create["responses"])
    assert idle_api.get("/docs").status_code == 200


# ------------------------------------------------------------------------------ actions


def test_trigger_with_same_idempotency_key_gives_one_run(idle_api: TestClient) -> None:
    job = idle_api.post(JOBS, json=job_body(paused=True)).json()
    url = f"{JOBS}/{job['id']}/trigger"
    first = idle_api.post(url, headers={"Idempotency-Key": "nightly-1"})
    again = idle_api.post(url, json={"reason": "retry"}, headers={"Idempotency-Key": "nightly-1"})
    other = idle_api.post(url, headers={"Idempotency-Key": "nightly-2"})
    assert first.status_code == again.status_code == other.status_code == 202
    assert first.json()["flow_run_id"] == again.json()["flow_run_id"]
    assert other.json()["flow_run_id"] != first.json()["flow_run_id"]
    run_ids = {r["id"] for r in runs_of(idle_api, job["id"])}
    assert run_ids == {first.json()["flow_run_id"], other.json()["flow_run_id"]}
    idle_api.delete(f"{JOBS}/{job['id']}")


def test_trigger_overrides_are_validated(idle_api: TestClient) -> None:
    job = idle_api.post(JOBS, json=job_body(paused=True)).json()
    url = f"{JOBS}/{job['id']}/trigger"
    bad = idle_api.post(url, json={"overrides": {"model": {"config": {"learning_rate": -1}}}})
    assert bad.status_code == 422
    assert fields(bad) == ["overrides.model.config.learning_rate"]
    assert runs_of(idle_api, job["id"]) == []
    good = idle_api.post(url, json={"overrides": {"training": {"max_steps": 3}}, "reason": "x"})
    assert good.status_code == 202
    run = idle_api.get(f"{RUNS}/{good.json()['flow_run_id']}").json()
    assert run["parameters"]["pipeline_config"]["training"]["max_steps"] == 3
    assert run["parameters"]["reason"] == "x" and run["job_name"] == job["name"]
    idle_api.delete(f"{JOBS}/{job['id']}")


def test_pause_resume_show_in_prefect(idle_api: TestClient, prefect_stack: PrefectStack) -> None:
    job = idle_api.post(JOBS, json=job_body(schedule="interval:hours=6")).json()
    assert job["next_run_time"] is not None
    paused = idle_api.post(f"{JOBS}/{job['id']}/pause").json()
    assert paused["paused"] is True and paused["next_run_time"] is None
    with SyncPrefectClient(prefect_stack.api_url) as client:
        assert client.read_deployment(job["id"]).paused is True  # what the UI/CLI show
    resumed = idle_api.post(f"{JOBS}/{job['id']}/resume").json()
    assert resumed["paused"] is False and resumed["next_run_time"] is not None
    listed = {j["id"]: j for j in idle_api.get(JOBS, params={"page_size": 200}).json()["items"]}
    assert listed[job["id"]]["schedule"] == "interval:hours=6"
    assert idle_api.delete(f"{JOBS}/{job['id']}").status_code == 204
    assert idle_api.get(f"{JOBS}/{job['id']}").status_code == 404


# ------------------------------------------------------------------------------ end to end


def _task_runs(api_url: str, run_id: str) -> list[str]:
    with SyncPrefectClient(api_url) as client:
        tasks = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run_id]))
        )
    return sorted(t.name for t in tasks if t.state_type and t.state_type.value == "COMPLETED")


@pytest.mark.slow
def test_interval_job_runs_by_itself_pauses_and_resumes(
    api: TestClient, prefect_stack: PrefectStack
) -> None:
    body = job_body(schedule=f"interval:seconds={INTERVAL_S}")
    job = api.post(JOBS, json=body).json()
    try:
        # 1. A run starts by itself and completes with the seven stage task runs.
        done = wait_until(
            lambda: runs_of(api, job["id"], "COMPLETED"), 420, 3, "a scheduled run completed"
        )[0]
        assert [s["state"] for s in done["stages"]] == ["Completed"] * 7
        assert done["progress"] == 100.0 and done["current_stage"] == "update_tracking"
        names = wait_until(lambda: _task_runs(prefect_stack.api_url, done["id"]) or None, 30)
        assert names == sorted(STAGE_NAMES)
        assert api.get(f"{JOBS}/{job['id']}").json()["last_run"] is not None

        # 2. Paused: its scheduled runs are gone and no new run appears for 2+ intervals.
        assert api.post(f"{JOBS}/{job['id']}/pause").json()["paused"] is True
        before = {
            r["id"]
            for r in runs_of(
                api,
                job["id"],
                "SCHEDULED,PENDING,RUNNING,COMPLETED,FAILED,CRASHED,CANCELLED,CANCELLING",
            )
        }
        assert runs_of(api, job["id"], "SCHEDULED") == []
        time.sleep(2.5 * INTERVAL_S)
        after = {
            r["id"]
            for r in runs_of(
                api,
                job["id"],
                "SCHEDULED,PENDING,RUNNING,COMPLETED,FAILED,CRASHED,CANCELLED,CANCELLING",
            )
        }
        assert after - before == set(), "a paused job created runs"

        # 3. Resumed: runs start again.
        resumed_at = datetime.now(UTC)
        assert api.post(f"{JOBS}/{job['id']}/resume").json()["paused"] is False
        started = wait_until(
            lambda: [
                r for r in runs_of(api, job["id"], "RUNNING,COMPLETED") if r["id"] not in before
            ],
            240,
            3,
            "a run after resume",
        )
        assert datetime.fromisoformat(started[0]["start_time"]) >= resumed_at
    finally:
        api.post(f"{JOBS}/{job['id']}/pause")
        cancel_unfinished_runs(prefect_stack.api_url, job["id"])
        api.delete(f"{JOBS}/{job['id']}")


def test_list_shows_last_run_of_each_job(api: TestClient) -> None:
    listing = api.get(JOBS, params={"page_size": 200}).json()
    assert listing["page"] == 1 and listing["total"] >= len(listing["items"])
    for job in listing["items"]:
        assert set(job) >= {"id", "name", "schedule", "paused", "last_run", "next_run_time"}
