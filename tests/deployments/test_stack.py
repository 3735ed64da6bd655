"""End to end: the real stack of `make up` (honcho: Prefect server + worker + facade).

The module starts one stack on free ports with a temporary state dir, drives it with the
prefect CLI (`prefect deploy --all`, `prefect deployment run`) and the REST facade, and
stops it; the last test checks that no process it started is left. The fixture stops
the stack too, whatever happens.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from deployments.stack import Stack, StackConfig, free_port
from flows.settings import PROJECT_ROOT
from tests.support.services import require_service

pytestmark = pytest.mark.integration

PREFECT = str(Path(sys.executable).parent / "prefect")
JOBS = "/api/v1/automation/jobs"
RUNS = "/api/v1/monitoring/training/jobs"
# A run that finishes in seconds: raw bytes, a one-layer model, five steps.
TINY_CONFIG: dict[str, Any] = {
    "data": {
        "dataset_name": "training_data_v3",
        "preprocessing": {"tokenization": False, "normalization": True},
    },
    "model": {
        "type": "transformer",
        "name": "stack-test-model",
        "config": {
            "learning_rate": 0.003,
            "batch_size": 8,
            "n_layer": 1,
            "n_head": 2,
            "n_embd": 32,
            "block_size": 32,
        },
    },
    "training": {"epochs": 1, "max_steps": 5, "checkpoint_interval": 5, "log_interval": 1},
    "evaluation": {"performance_threshold": 0.0, "max_batches": 2},
}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    state = tmp_path_factory.mktemp("stack") / "state"
    config = StackConfig(state_dir=state, prefect_port=free_port(), api_port=free_port(), ui=False)
    running = Stack(config).start()
    try:
        running.wait_ready(timeout=240)
        yield running
    finally:
        running.stop()
        if running.leftovers:  # visible in the test log: what honcho did not stop
            print(f"reaped leftover processes: {running.leftovers}")


@pytest.fixture(scope="module")
def facade(stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.config.facade_url, timeout=30.0) as client:
        yield client


def _cli(stack: Stack, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run the prefect CLI from the project root against the stack (as a user would)."""
    env = stack.config.env()
    env["PWD"] = str(PROJECT_ROOT)  # prefect.yaml's pull step reads {{ $PWD }}
    return subprocess.run(
        [PREFECT, "--no-prompt", *args],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _all_jobs(facade: httpx.Client) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    page = 1
    while True:
        response = facade.get(JOBS, params={"page": page, "page_size": 200})
        assert response.status_code == 200, response.text
        body = response.json()
        items += body["items"]
        if page >= body["pages"]:
            return items
        page += 1


def test_health_is_200_with_every_component_ok(stack: Stack, facade: httpx.Client) -> None:
    response = facade.get("/api/v1/monitoring/health")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "ok"
    assert body["failing"] == []
    # the Prefect UI is off in tests, but the API of the same server answers
    assert httpx.get(f"{stack.config.prefect_api_url}/ready").status_code == 200


def test_prefect_deploy_all_creates_the_jobs_of_prefect_yaml(
    stack: Stack, facade: httpx.Client
) -> None:
    result = _cli(stack, "deploy", "--all")
    assert result.returncode == 0, result.stdout + result.stderr
    jobs = {job["name"]: job for job in _all_jobs(facade)}
    daily, six_hourly = jobs["daily-model-training"], jobs["six-hourly-training"]
    assert daily["schedule"] == "cron:0 2 * * *"
    assert six_hourly["schedule"] == "interval:hours=6"
    for job in (daily, six_hourly):
        assert job["work_pool"] == "training"
        assert job["paused"] is False
        assert job["next_run_time"] is not None
        assert job["pipeline_config"]["model"]["name"] == "main_model"


def test_prefect_deployment_run_completes(stack: Stack, facade: httpx.Client) -> None:
    params = json.dumps({"pipeline_config": TINY_CONFIG, "reason": "stack test"})
    result = _cli(
        stack,
        "deployment",
        "run",
        "lm-training/six-hourly-training",
        "--params",
        params,
        "--watch",
        "--watch-timeout",
        "300",
        timeout=360,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Flow run finished successfully in 'Completed'" in " ".join(output.split())
    job = next(j for j in _all_jobs(facade) if j["name"] == "six-hourly-training")
    runs = facade.get(RUNS, params={"job_id": job["id"]}).json()["items"]
    (run,) = [r for r in runs if r["parameters"].get("reason") == "stack test"]
    assert run["state"] == "Completed"
    done = [s["name"] for s in run["stages"] if s["state"] == "Completed"]
    assert done[:5] == [
        "prepare_data",
        "validate_data",
        "initialize_model",
        "train_model",
        "evaluate_model",
    ]


def test_the_stack_stops_cleanly_and_leaves_no_process(stack: Stack) -> None:
    tree = stack.process_tree()
    names = " ".join(" ".join(p.cmdline()) for p in tree)
    assert "prefect server start" in names
    assert "prefect worker start" in names
    assert "uvicorn api.app:create_app" in names
    pids = stack.stop()
    assert set(pids) >= {p.pid for p in tree}
    alive = [pid for pid in pids if _alive(pid)]
    assert alive == [], f"processes left running: {alive}"
    assert stack.leftovers == [], "honcho should stop every process group by itself"
    assert not stack.running()


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


PG_ADMIN_URL = os.environ.get("LMCP_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


@pytest.fixture
def pg_database() -> Iterator[str]:
    """A fresh PostgreSQL database for the Prefect server; dropped afterwards."""
    import psycopg

    name = f"lmcp_stack_{uuid.uuid4().hex[:10]}"
    try:
        admin = psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        if require_service():
            raise
        pytest.skip(f"PostgreSQL not available: {exc}")
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.postgres
def test_the_prefect_server_runs_on_postgres_when_configured(
    tmp_path: Path, pg_database: str
) -> None:
    import psycopg

    async_url = pg_database.replace("postgresql://", "postgresql+asyncpg://", 1)
    config = StackConfig(
        state_dir=tmp_path / "state",
        prefect_port=free_port(),
        api_port=free_port(),
        ui=False,
        processes=("prefect",),
        database_url=async_url,
    )
    with Stack(config) as stack:
        stack.wait_ready(timeout=240)
        with psycopg.connect(pg_database) as conn:
            tables = {row[0] for row in conn.execute("SELECT tablename FROM pg_tables")}
    assert {"deployment", "flow_run", "work_pool"} <= tables
    assert not (tmp_path / "state" / "prefect.db").exists()
