"""The training flow on a real Prefect server: task runs, the gate, MLflow lineage."""

from __future__ import annotations

import asyncio
import copy
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from mlflow import MlflowClient
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from prefect.settings import PREFECT_API_URL, temporary_settings

from flows.settings import Settings
from flows.stages import STAGE_NAMES
from flows.training import train_pipeline
from tests.support.prefect_stack import PrefectStack, prefect_stack  # noqa: F401

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SEED = json.loads((Path(__file__).parents[2] / "docs/examples/seed_job.json").read_text())


def small_config(name: str, **evaluation: Any) -> dict[str, Any]:
    """The seed example, shrunk to train in seconds on bytes (it still really learns)."""
    cfg = copy.deepcopy(SEED["pipeline_config"])
    cfg["data"]["preprocessing"]["tokenization"] = False
    cfg["model"]["name"] = name
    cfg["model"]["config"].update(
        n_layer=1, n_head=2, n_embd=64, block_size=64, batch_size=16, learning_rate=0.01
    )
    cfg["training"].update(max_steps=150, checkpoint_interval=100)
    cfg["evaluation"].update(max_batches=10, **evaluation)
    return cfg


def task_runs(flow_run_id: Any) -> list[Any]:
    async def read() -> list[Any]:
        async with get_client() as client:
            return await client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
            )

    return asyncio.run(read())


@pytest.fixture
def api_url(prefect_stack: PrefectStack) -> Any:  # noqa: F811
    with temporary_settings({PREFECT_API_URL: prefect_stack.api_url}):
        yield prefect_stack.api_url


def test_flow_runs_seven_stages_and_registers_with_lineage(
    settings: Settings, api_url: str
) -> None:
    name = f"flow-test-{uuid.uuid4().hex[:6]}"
    state = train_pipeline(
        small_config(name, performance_threshold=0.05), job_name="t", return_state=True
    )
    assert state.is_completed(), state.message
    summary = state.result()
    flow_run_id = state.state_details.flow_run_id

    runs = task_runs(flow_run_id)
    assert sorted(r.name for r in runs) == sorted(STAGE_NAMES)
    assert all(r.state.is_completed() for r in runs)

    assert summary["outcome"] == "registered"
    assert summary["val_loss"] < summary["unigram_loss"] - 0.1
    client = MlflowClient(settings.tracking_uri, registry_uri=settings.tracking_uri)
    version = client.get_model_version(name, summary["model_version"])
    assert version.tags["prefect.flow_run_id"] == str(flow_run_id)
    assert version.tags["dvc.data_md5"] == summary["dvc_md5"]
    assert len(version.tags["dvc.data_md5"]) == 32
    assert float(version.tags["eval.val_loss"]) == pytest.approx(summary["val_loss"])
    assert str(client.get_registered_model(name).aliases["staging"]) == summary["model_version"]
    run = client.get_run(summary["mlflow_run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.tags["prefect.flow_run_id"] == str(flow_run_id)
    assert len(client.get_metric_history(run.info.run_id, "train_loss")) >= 10


def test_unreachable_threshold_stops_after_evaluation(settings: Settings, api_url: str) -> None:
    name = f"flow-test-{uuid.uuid4().hex[:6]}"
    cfg = small_config(name, performance_threshold=1.0, metric="accuracy")
    cfg["training"]["max_steps"] = 20
    state = train_pipeline(cfg, job_name="t", return_state=True)
    assert state.is_completed()
    assert "below threshold" in (state.message or "")
    summary = state.result()
    assert summary["outcome"] == "below_threshold"

    runs = task_runs(state.state_details.flow_run_id)
    assert sorted(r.name for r in runs) == sorted(STAGE_NAMES[:5])
    client = MlflowClient(settings.tracking_uri, registry_uri=settings.tracking_uri)
    assert client.search_model_versions(f"name='{name}'") == []
