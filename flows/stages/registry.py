"""save_model and update_tracking: the MLflow model registry and run lineage.

The model is logged with `serialization_format="pickle"` (MLflow 3.17's default `pt2`
fixes input shapes, which breaks a language model on variable-length input), together
with the tokenizer and the pipeline config, then registered under `model.name`.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from flows.settings import PROJECT_ROOT
from flows.stages import mlflow_utils
from flows.stages.context import StageContext
from flows.stages.state import PipelineState

STAGING_ALIAS = "staging"
EVAL_TAG_KEYS = (
    "val_loss",
    "perplexity",
    "accuracy",
    "top5_accuracy",
    "perplexity_skill",
    "unigram_loss",
    "metric",
    "metric_value",
    "threshold",
)


def _load_trained_model(state: PipelineState) -> Any:
    import torch

    from flows.stages.model import GPT, GPTConfig

    model = GPT(GPTConfig(**state["model"]["arch"]))
    weights = torch.load(state["training"]["weights_path"], map_location="cpu", weights_only=True)
    model.load_state_dict(weights)
    return model.eval()


def _extra_files(state: PipelineState, ctx: StageContext) -> list[str]:
    config_path = ctx.run_dir / "pipeline_config.json"
    config_path.write_text(json.dumps(state["config"], indent=2, sort_keys=True))
    files = [str(config_path)]
    tokenizer = state["data"].get("tokenizer_path")
    if tokenizer:
        files.append(str(tokenizer))
    return files


def save_model(state: PipelineState, ctx: StageContext) -> dict[str, Any]:
    """Log weights + tokenizer + config to MLflow and register a new model version."""
    import mlflow
    import mlflow.pytorch
    import torch

    name = state["config"]["model"]["name"]
    run_id = state["mlflow_run_id"]
    model = _load_trained_model(state)
    mlflow.set_tracking_uri(ctx.settings.tracking_uri)
    mlflow.set_registry_uri(ctx.settings.tracking_uri)
    ctx.progress.update("save_model", 0, 2)
    with mlflow.start_run(run_id=run_id):
        info = mlflow.pytorch.log_model(
            model,
            name="model",
            serialization_format="pickle",
            pip_requirements=[f"torch=={torch.__version__.split('+')[0]}"],
            extra_files=_extra_files(state, ctx),
        )
    ctx.progress.update("save_model", 1, 2)
    version = mlflow.register_model(info.model_uri, name)
    ctx.progress.update("save_model", 2, 2)
    ctx.progress.close("save_model")
    return {
        "registry": {
            "model_name": name,
            "version": str(version.version),
            "model_uri": f"models:/{name}/{version.version}",
            "logged_model_uri": info.model_uri,
        },
        "completed_stages": ["save_model"],
    }


def git_commit(root: Path = PROJECT_ROOT) -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=10,
        )
        return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def lineage_tags(state: PipelineState, ctx: StageContext) -> dict[str, str]:
    data = state["data"]
    return {
        "lmcp.run_id": ctx.run_id,
        "lmcp.job": ctx.job_name,
        "prefect.flow_run_id": ctx.flow_run_id or "",
        "dvc.data_md5": str(data["dvc_md5"]),
        "dvc.processed_md5": str(data.get("processed_md5", "")),
        "data.dataset": str(data["dataset_name"]),
        "git.commit": git_commit(),
        "config.hash": str(state.get("config_hash", "")),
        "mlflow.run_id": str(state["mlflow_run_id"]),
    }


def update_tracking(state: PipelineState, ctx: StageContext) -> dict[str, Any]:
    """Link MLflow run, Prefect flow run, DVC data hash, git commit and config hash."""
    client = mlflow_utils.client(ctx.settings)
    registry = state["registry"]
    tags = lineage_tags(state, ctx)
    run_tags = {
        **tags,
        "lmcp.model_version": registry["version"],
        "lmcp.model_name": registry["model_name"],
    }
    for key, value in run_tags.items():
        client.set_tag(state["mlflow_run_id"], key, value)
    evaluation = state["evaluation"]
    version_tags = {
        **tags,
        **{f"eval.{k}": str(evaluation[k]) for k in EVAL_TAG_KEYS if k in evaluation},
    }
    for key, value in version_tags.items():
        client.set_model_version_tag(registry["model_name"], registry["version"], key, value)
    client.set_registered_model_alias(registry["model_name"], STAGING_ALIAS, registry["version"])
    ctx.progress.record_table(
        "lineage",
        [{"key": k, "value": v} for k, v in sorted(version_tags.items())],
        f"Lineage of {registry['model_name']} v{registry['version']}",
    )
    return {
        "tracking": {"tags": version_tags, "alias": STAGING_ALIAS},
        "outcome": "registered",
        "completed_stages": ["update_tracking"],
    }
