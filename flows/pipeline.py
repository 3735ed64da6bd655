"""Run the LangGraph pipeline: shared by the Prefect flow and plain Python.

`execute(config, ctx, nodes)` compiles the graph with the persistent checkpointer and
thread id = run id. If that thread already has a checkpoint that has not finished (a
crashed run being retried), it resumes from there instead of starting over.
"""

from __future__ import annotations

import uuid
from typing import Any

from langchain_core.runnables import RunnableConfig

from flows.checkpointer import open_checkpointer
from flows.config import PipelineConfig, parse_pipeline_config
from flows.graph import Node, build_graph
from flows.settings import get_settings
from flows.stages.context import ConsoleProgress, ProgressReporter, StageContext
from flows.stages.state import PipelineState


def initial_state(config: PipelineConfig, ctx: StageContext) -> PipelineState:
    return {
        "config": config.model_dump(mode="json"),
        "config_hash": config.config_hash(),
        "run_id": ctx.run_id,
        "job_name": ctx.job_name,
        "completed_stages": [],
    }


def summarize(state: PipelineState) -> dict[str, Any]:
    """The run's outcome in a few JSON-able fields (the flow's return value)."""
    evaluation = state.get("evaluation", {})
    registry = state.get("registry", {})
    return {
        "run_id": state.get("run_id"),
        "job_name": state.get("job_name"),
        "outcome": state.get("outcome") or ("below_threshold" if evaluation else "incomplete"),
        "completed_stages": state.get("completed_stages", []),
        "val_loss": evaluation.get("val_loss"),
        "unigram_loss": evaluation.get("unigram_loss"),
        "metric": evaluation.get("metric"),
        "metric_value": evaluation.get("metric_value"),
        "threshold": evaluation.get("threshold"),
        "model_name": registry.get("model_name"),
        "model_version": registry.get("version"),
        "mlflow_run_id": state.get("mlflow_run_id"),
        "dvc_md5": state.get("data", {}).get("dvc_md5"),
        "tokens_per_s": state.get("training", {}).get("tokens_per_s"),
    }


def _finish_mlflow_run(ctx: StageContext, state: dict[str, Any], status: str) -> None:
    run_id = state.get("mlflow_run_id")
    if run_id:
        from flows.stages import mlflow_utils

        mlflow_utils.client(ctx.settings).set_terminated(run_id, status)


def execute(
    config: PipelineConfig, ctx: StageContext, nodes: dict[str, Node] | None = None
) -> PipelineState:
    """Run (or resume) the seven-stage graph for `ctx.run_id`; returns the final state."""
    ctx.settings.ensure_dirs()
    with open_checkpointer(ctx.settings) as saver:
        graph = build_graph(nodes).compile(checkpointer=saver)
        thread: RunnableConfig = {"configurable": {"thread_id": ctx.run_id}}
        snapshot = graph.get_state(thread)
        resuming = bool(snapshot.next)
        if snapshot.values and not resuming:
            return snapshot.values  # type: ignore[return-value]
        try:
            final = graph.invoke(
                None if resuming else initial_state(config, ctx), thread, context=ctx
            )
        except BaseException:
            _finish_mlflow_run(ctx, graph.get_state(thread).values, "FAILED")
            raise
        _finish_mlflow_run(ctx, final, "FINISHED")
        return final  # type: ignore[return-value]


def run_pipeline(
    pipeline_config: dict[str, Any] | PipelineConfig,
    job_name: str = "adhoc",
    run_id: str | None = None,
    progress: ProgressReporter | None = None,
) -> dict[str, Any]:
    """Plain Python, no Prefect: validate the config, run the pipeline, return a summary."""
    config = parse_pipeline_config(pipeline_config)
    ctx = StageContext(
        settings=get_settings(),
        run_id=run_id or str(uuid.uuid4()),
        job_name=job_name,
        progress=progress or ConsoleProgress(),
    )
    return summarize(execute(config, ctx))
