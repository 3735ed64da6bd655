"""Health and training-run status endpoints, against the real stack (and a dead one)."""

from __future__ import annotations

import uuid

import pytest
from fastapi.testclient import TestClient

from tests.support.facade import IDLE_POOL, facade
from tests.support.jobs import job_body
from tests.support.prefect_stack import PrefectStack, free_port

# Every test here talks to a real Prefect server (the session's stack).
pytestmark = pytest.mark.integration

HEALTH = "/api/v1/monitoring/health"
RUNS = "/api/v1/monitoring/training/jobs"
JOBS = "/api/v1/automation/jobs"


def test_health_is_200_with_a_polling_worker(api: TestClient) -> None:
    response = api.get(HEALTH)
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["status"] == "ok" and report["failing"] == []
    assert set(report["components"]) == {"facade", "prefect", "worker"}
    assert "training" in report["components"]["worker"]["detail"]


def test_health_is_503_naming_the_worker_when_none_polls(idle_api: TestClient) -> None:
    response = idle_api.get(HEALTH)
    assert response.status_code == 503
    report = response.json()
    assert report["failing"] == ["worker"]
    assert report["components"]["prefect"]["status"] == "ok"
    assert IDLE_POOL in report["components"]["worker"]["detail"]


def test_health_is_503_naming_prefect_when_it_is_down() -> None:
    dead = f"http://127.0.0.1:{free_port()}/api"
    with facade(dead, "training") as client:
        response = client.get(HEALTH)
        assert response.status_code == 503
        report = response.json()
        assert report["failing"] == ["prefect", "worker"]
        assert "unreachable" in report["components"]["prefect"]["detail"]
        assert report["components"]["facade"]["status"] == "ok"
        jobs = client.get(JOBS)
        assert jobs.status_code == 503
        assert jobs.json()["error"]["code"] == "service_unavailable"


def test_run_filters_are_validated(idle_api: TestClient) -> None:
    bad_state = idle_api.get(RUNS, params={"state": "RUNNING,SLEEPING"})
    assert bad_state.status_code == 422
    assert [f["field"] for f in bad_state.json()["error"]["fields"]] == ["state"]
    assert "SLEEPING" in bad_state.json()["error"]["message"]
    bad_id = idle_api.get(RUNS, params={"job_id": "not-a-uuid"})
    assert bad_id.status_code == 422
    assert [f["field"] for f in bad_id.json()["error"]["fields"]] == ["job_id"]
    assert idle_api.get(RUNS, params={"page_size": 0}).status_code == 422
    missing = idle_api.get(f"{RUNS}/{uuid.uuid4()}")
    assert missing.status_code == 404
    assert idle_api.get(f"{RUNS}/not-a-run").status_code == 404


def test_runs_list_filters_by_job_and_state(idle_api: TestClient) -> None:
    job = idle_api.post(JOBS, json=job_body(schedule="interval:hours=1", paused=True)).json()
    run_id = idle_api.post(f"{JOBS}/{job['id']}/trigger").json()["flow_run_id"]
    by_id = idle_api.get(RUNS, params={"job_id": job["id"]}).json()
    assert [r["id"] for r in by_id["items"]] == [run_id] and by_id["total"] == 1
    run = by_id["items"][0]
    assert (run["job_id"], run["job_name"], run["state_type"]) == (
        job["id"],
        job["name"],
        "SCHEDULED",
    )
    assert [s["name"] for s in run["stages"]] == [
        "prepare_data",
        "validate_data",
        "initialize_model",
        "train_model",
        "evaluate_model",
        "save_model",
        "update_tracking",
    ]
    assert all(s["state"] is None for s in run["stages"])
    assert run["current_stage"] is None and run["is_final"] is False
    by_name = idle_api.get(RUNS, params={"job_name": job["name"], "state": "scheduled"}).json()
    assert [r["id"] for r in by_name["items"]] == [run_id]
    none = idle_api.get(RUNS, params={"job_id": job["id"], "state": ["COMPLETED", "FAILED"]})
    assert none.json()["items"] == []
    assert idle_api.get(f"{RUNS}/{run_id}").json()["id"] == run_id
    idle_api.delete(f"{JOBS}/{job['id']}")


def test_runs_are_newest_first_and_paginated(idle_api: TestClient) -> None:
    job = idle_api.post(JOBS, json=job_body(paused=True)).json()
    ids = [idle_api.post(f"{JOBS}/{job['id']}/trigger").json()["flow_run_id"] for _ in range(3)]
    first = idle_api.get(RUNS, params={"job_id": job["id"], "page_size": 2}).json()
    second = idle_api.get(RUNS, params={"job_id": job["id"], "page_size": 2, "page": 2}).json()
    assert (first["total"], first["pages"], len(first["items"]), len(second["items"])) == (
        3,
        2,
        2,
        1,
    )
    listed = [r["id"] for r in first["items"] + second["items"]]
    assert listed == list(reversed(ids))
    idle_api.delete(f"{JOBS}/{job['id']}")


def test_stack_fixture_exposes_the_worker(prefect_stack: PrefectStack) -> None:
    assert prefect_stack.online_workers(), prefect_stack.log("worker")
