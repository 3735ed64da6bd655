"""The data stages, prepare_data and validate_data. Plain functions, no Prefect import.

prepare_data builds (or reuses) the processed dataset (see flows/stages/dataset.py),
records its lineage (the raw file's DVC hash and the processed directory's DVC hash) in
state and MLflow, and returns paths, token counts and the unigram baseline.
validate_data runs the quality checks of flows/stages/quality.py, records them (progress
table + MLflow) and raises DataValidationError with reasons and a suggestion on failure.

The DVC stage `prepare_data` (dvc.yaml) runs the same processing code:
    python -m flows.stages.data --dataset training_data_v3 --out data/processed ...
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from flows.catalog import resolve_dataset
from flows.config import ModelHyperparameters
from flows.errors import DataValidationError
from flows.stages.dataset import (
    FILES,
    PrepParams,
    dvc_dir_md5,
    main,
    prepare_cached,
    read_documents,
)
from flows.stages.quality import failure_summary, run_checks
from flows.stages.tokenizer import load_tokenizer

if TYPE_CHECKING:
    from flows.stages.context import StageContext
    from flows.stages.state import PipelineState

__all__ = ["load_tokenizer", "main", "prepare_data", "validate_data"]


def _data_state(name: str, source: Path, out_dir: Path, meta: dict[str, Any]) -> dict[str, Any]:
    bpe = meta["tokenizer_kind"] == "bpe"
    return {
        "dataset_name": name,
        "source_path": str(source),
        "dvc_md5": meta["raw_md5"],
        "processed_md5": dvc_dir_md5(out_dir),
        "cache_dir": str(out_dir),
        "train_path": str(out_dir / FILES["train"]),
        "val_path": str(out_dir / FILES["val"]),
        "train_docs_path": str(out_dir / FILES["train_docs"]),
        "val_docs_path": str(out_dir / FILES["val_docs"]),
        "tokenizer_path": str(out_dir / FILES["tokenizer"]) if bpe else None,
        "tokenizer_kind": meta["tokenizer_kind"],
        "vocab_size": meta["vocab_size"],
        "n_train_tokens": meta["n_train_tokens"],
        "n_val_tokens": meta["n_val_tokens"],
        "n_train_docs": meta["n_train_docs"],
        "n_val_docs": meta["n_val_docs"],
        "unigram_loss": meta["unigram_loss"],
    }


def prepare_data(state: PipelineState, ctx: StageContext) -> dict[str, Any]:
    """Stage 1: resolve the dataset, build (or reuse) the processed data, log lineage."""
    from flows.stages import mlflow_utils

    total = 5
    config = state["config"]
    name = config["data"]["dataset_name"]
    params = PrepParams.from_config(config)
    ctx.progress.update("prepare_data", 0, total)
    dataset = resolve_dataset(name, ctx.settings.dataset_catalog)
    ctx.progress.update("prepare_data", 1, total)
    steps = {"tokenizer": 2, "encode": 3}

    def progress(step: str) -> None:
        ctx.progress.update("prepare_data", steps[step], total)

    out_dir, meta, hit = prepare_cached(dataset.path, params, ctx.settings.data_cache_dir, progress)
    data = _data_state(name, dataset.path, out_dir, meta)
    data["cache_hit"] = hit
    ctx.progress.update("prepare_data", 4, total)
    run_id = mlflow_utils.ensure_run(state, ctx)
    mlflow_utils.log_params(
        ctx.settings,
        run_id,
        {
            "data.dataset": name,
            "data.dvc_md5": data["dvc_md5"],
            "data.processed_md5": data["processed_md5"],
            "data.tokenizer": data["tokenizer_kind"],
            "data.vocab_size": data["vocab_size"],
            "data.normalization": params.normalization,
            "data.validation_split": params.validation_split,
            "data.seed": params.seed,
            "data.n_train_tokens": data["n_train_tokens"],
            "data.n_val_tokens": data["n_val_tokens"],
            "data.n_train_docs": data["n_train_docs"],
            "data.n_val_docs": data["n_val_docs"],
        },
    )
    if data["unigram_loss"] is not None:
        mlflow_utils.log_metrics(ctx.settings, run_id, [("unigram_loss", data["unigram_loss"], 0)])
    ctx.progress.update("prepare_data", total, total)
    ctx.progress.close("prepare_data")
    return {"mlflow_run_id": run_id, "data": data, "completed_stages": ["prepare_data"]}


def _record_checks(checks: list[dict[str, Any]], state: PipelineState, ctx: StageContext) -> str:
    from flows.stages import mlflow_utils

    ctx.progress.record_table(
        "data-validation", checks, "validate_data: data quality checks (level fail stops the run)"
    )
    run_id = mlflow_utils.ensure_run(state, ctx)
    mlflow_utils.client(ctx.settings).log_dict(run_id, {"checks": checks}, "validation/checks.json")
    numeric = [
        (f"data_check.{c['name']}", float(c["value"]), 0)
        for c in checks
        if isinstance(c["value"], int | float) and math.isfinite(c["value"])
    ]
    mlflow_utils.log_metrics(ctx.settings, run_id, numeric)
    return run_id


def validate_data(state: PipelineState, ctx: StageContext) -> dict[str, Any]:
    """Stage 2: quality checks on prepare_data's output; fail with reasons + suggestion."""
    data = state["data"]
    hyper = ModelHyperparameters.model_validate(state["config"]["model"].get("config", {}))
    ctx.progress.update("validate_data", 0, 2)
    checks = run_checks(
        train_docs=read_documents(data["train_docs_path"]),
        val_docs=read_documents(data["val_docs_path"]),
        train_ids=np.load(data["train_path"], mmap_mode="r"),
        n_val_tokens=len(np.load(data["val_path"], mmap_mode="r")),
        tokenizer_kind=data["tokenizer_kind"],
        vocab_size=int(data["vocab_size"]),
        block_size=hyper.block_size,
        batch_size=hyper.batch_size,
    )
    ctx.progress.update("validate_data", 1, 2)
    run_id = _record_checks(checks, state, ctx)
    ctx.progress.update("validate_data", 2, 2)
    ctx.progress.close("validate_data")
    if not all(c["passed"] for c in checks):
        message, suggestion = failure_summary(checks)
        raise DataValidationError("validate_data", message, suggestion=suggestion, details=checks)
    update: dict[str, Any] = {
        "validation": {"passed": True, "checks": checks},
        "completed_stages": ["validate_data"],
    }
    if not state.get("mlflow_run_id"):
        update["mlflow_run_id"] = run_id
    return update


if __name__ == "__main__":
    sys.exit(main())
