"""MLflow helpers shared by the stages: one MLflow run per pipeline run.

Uses `MlflowClient` with explicit run ids (no fluent global state), so a stage that
runs again after a crash appends to the same MLflow run.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING

from mlflow import MlflowClient
from mlflow.entities import Metric

if TYPE_CHECKING:
    from flows.settings import Settings
    from flows.stages.context import StageContext
    from flows.stages.state import PipelineState

EXPERIMENT_NAME = "lm-training"
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


def client(settings: Settings) -> MlflowClient:
    settings.ensure_dirs()
    return MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.tracking_uri)


def experiment_id(settings: Settings, name: str = EXPERIMENT_NAME) -> str:
    c = client(settings)
    exp = c.get_experiment_by_name(name)
    if exp is not None:
        return str(exp.experiment_id)
    try:
        return str(c.create_experiment(name, artifact_location=settings.artifact_root.as_uri()))
    except Exception:  # created concurrently by another run
        exp = c.get_experiment_by_name(name)
        if exp is None:
            raise
        return str(exp.experiment_id)


def ensure_run(state: PipelineState, ctx: StageContext) -> str:
    """The MLflow run of this pipeline run: reuse the one in state or create it."""
    if state.get("mlflow_run_id"):
        return str(state["mlflow_run_id"])
    c = client(ctx.settings)
    run = c.create_run(
        experiment_id(ctx.settings),
        run_name=f"{ctx.job_name}-{ctx.run_id[:8]}",
        tags={
            "lmcp.run_id": ctx.run_id,
            "lmcp.job": ctx.job_name,
            **({"prefect.flow_run_id": ctx.flow_run_id} if ctx.flow_run_id else {}),
        },
    )
    return str(run.info.run_id)


def log_metrics(settings: Settings, run_id: str, records: Iterable[tuple[str, float, int]]) -> None:
    """Log (key, value, step) records in one batch call (MLflow allows 1000 per call)."""
    now = int(time.time() * 1000)
    metrics = [Metric(key=k, value=float(v), timestamp=now, step=int(s)) for k, v, s in records]
    c = client(settings)
    for i in range(0, len(metrics), 1000):
        c.log_batch(run_id, metrics=metrics[i : i + 1000])


def log_params(settings: Settings, run_id: str, params: dict[str, object]) -> None:
    from mlflow.entities import Param

    c = client(settings)
    items = [Param(k, str(v)[:6000]) for k, v in params.items()]
    for i in range(0, len(items), 100):
        c.log_batch(run_id, params=items[i : i + 100])
