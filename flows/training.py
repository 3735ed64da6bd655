"""The training flow: one Prefect flow run per job run, one Prefect task run per stage.

Deployments of `train_pipeline` are the jobs (see deployments/). Calling it directly
runs it as a flow; `flows.pipeline.run_pipeline` runs the same graph without Prefect.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from langgraph.runtime import Runtime
from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run
from prefect.states import Completed, State

from flows.config import PipelineConfig
from flows.graph import Node
from flows.pipeline import execute, summarize
from flows.progress import PrefectProgress
from flows.settings import get_settings
from flows.stages import STAGE_NAMES, Stage, stage_functions
from flows.stages.context import StageContext
from flows.stages.state import PipelineState

FLOW_NAME = "lm-training"


def stage_task(stage: Stage) -> Any:
    """Wrap a stage as a Prefect task named after it (no caching: stages have effects)."""
    return task(
        name=stage.__name__,
        task_run_name=stage.__name__,
        cache_policy=NO_CACHE,
        persist_result=False,
        log_prints=True,
    )(stage)


@cache
def prefect_nodes() -> dict[str, Node]:
    tasks = {name: stage_task(fn) for name, fn in stage_functions().items()}

    def make_node(name: str) -> Node:
        def node(state: PipelineState, runtime: Runtime[StageContext]) -> dict[str, Any]:
            result: dict[str, Any] = tasks[name](state, runtime.context)
            return result

        node.__name__ = name
        return node

    return {name: make_node(name) for name in STAGE_NAMES}


def _summary_markdown(summary: dict[str, Any]) -> str:
    rows = "\n".join(f"| {k} | {v} |" for k, v in summary.items() if k != "completed_stages")
    stages = " → ".join(summary["completed_stages"])
    return f"## Training run `{summary['run_id']}`\n\nStages: {stages}\n\n| field | value |\n|---|---|\n{rows}\n"


def _final_state(summary: dict[str, Any]) -> State:
    if summary["outcome"] == "registered":
        message = (
            f"registered {summary['model_name']} v{summary['model_version']} "
            f"({summary['metric']}={summary['metric_value']:.3f} >= {summary['threshold']})"
        )
    else:
        message = (
            f"below threshold: {summary['metric']}={summary['metric_value']:.3f} < "
            f"{summary['threshold']}; no model registered"
        )
    return Completed(message=message, data=summary)


@flow(
    name=FLOW_NAME,
    log_prints=True,
    persist_result=True,
    description="Train, evaluate and register a causal LM: seven LangGraph stages.",
)
def train_pipeline(
    pipeline_config: PipelineConfig, job_name: str = "adhoc", reason: str = "manual"
) -> State:
    """Run the seven-stage pipeline for one job run (thread id = flow run id)."""
    from flows.progress import artifact_key

    run_id = str(flow_run.get_id())
    ctx = StageContext(
        settings=get_settings(),
        run_id=run_id,
        job_name=job_name,
        flow_run_id=run_id,
        progress=PrefectProgress(),
    )
    print(f"job={job_name} reason={reason} run={run_id}")
    summary = summarize(execute(pipeline_config, ctx, prefect_nodes()))
    ctx.progress.record_markdown(
        artifact_key("run-summary"), _summary_markdown(summary), "Outcome of the training run"
    )
    return _final_state(summary)
