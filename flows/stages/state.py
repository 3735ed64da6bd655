"""The LangGraph state of one pipeline run.

Only JSON-able values live here: paths, ids, hashes, metrics and config. Models,
optimizers, tensors and DataFrames never do (checkpointers cannot serialize them).
Each stage returns a partial update with the keys it owns.
"""

from __future__ import annotations

import operator
from typing import Annotated, Any, TypedDict


class PipelineState(TypedDict, total=False):
    config: dict[str, Any]  # PipelineConfig.model_dump(mode="json")
    config_hash: str
    run_id: str  # thread id == Prefect flow run id (or a uuid)
    job_name: str
    mlflow_run_id: str
    data: dict[str, Any]  # prepare_data: paths, token counts, dvc hashes, baseline
    validation: dict[str, Any]  # validate_data: {"passed": bool, "checks": [...]}
    model: dict[str, Any]  # initialize_model: init weights path, n_params, arch
    training: dict[str, Any]  # train_model: final weights path, steps, losses, tok/s
    evaluation: dict[str, Any]  # evaluate_model: val_loss, perplexity, metric, passed
    registry: dict[str, Any]  # save_model: model name, version, model uri
    tracking: dict[str, Any]  # update_tracking: tags written
    outcome: str  # "registered" | "below_threshold"
    completed_stages: Annotated[list[str], operator.add]
