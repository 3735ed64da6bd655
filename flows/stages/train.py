"""The `train_model` stage: wires the training core to the config, MLflow and progress.

The core (`TokenBatches`, `LRSchedule`, `Trainer`, ...) lives in `flows.stages.trainer`
and is re-exported here. MLflow and the pipeline config are imported inside the stage
function, so `import flows.stages.train` works on a machine that has only torch,
numpy and DeepSpeed (the GPU check).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from flows.errors import StageError
from flows.stages.model import load_gpt
from flows.stages.trainer import (
    PEAK_FLOPS,
    STAGE,
    Hardware,
    LRSchedule,
    MetricBuffer,
    MetricRecord,
    TokenBatches,
    Trainer,
    TrainResult,
    TrainSpec,
    build_engine,
    deepspeed_config,
    ensure_dist_env,
)

if TYPE_CHECKING:
    from flows.config import PipelineConfig
    from flows.stages.context import StageContext
    from flows.stages.state import PipelineState

__all__ = [
    "PEAK_FLOPS",
    "Hardware",
    "LRSchedule",
    "MetricBuffer",
    "TokenBatches",
    "TrainResult",
    "TrainSpec",
    "Trainer",
    "build_engine",
    "deepspeed_config",
    "ensure_dist_env",
    "make_trainer",
    "plan_steps",
    "spec_from_config",
    "train_model",
]


def plan_steps(
    n_train_tokens: int, batch_size: int, block_size: int, epochs: int, max_steps: int | None = None
) -> int:
    """epochs x ceil(tokens / tokens-per-step), capped by max_steps (at least 1)."""
    per_epoch = math.ceil(n_train_tokens / (batch_size * block_size))
    steps = max(1, epochs * per_epoch)
    return min(steps, max_steps) if max_steps else steps


def spec_from_config(config: PipelineConfig, total_steps: int) -> TrainSpec:
    hp, tr = config.model.config, config.training
    return TrainSpec(
        total_steps=total_steps,
        batch_size=hp.batch_size,
        learning_rate=hp.learning_rate,
        weight_decay=hp.weight_decay,
        warmup_steps=tr.warmup_steps,
        min_lr_ratio=tr.min_lr_ratio,
        grad_clip=tr.grad_clip,
        zero_stage=tr.zero_stage,
        checkpoint_interval=tr.checkpoint_interval,
        log_interval=tr.log_interval,
        device=tr.device,
        precision=tr.precision,
    )


def _require(
    state: PipelineState, section: str, keys: tuple[str, ...], producer: str
) -> dict[str, Any]:
    found: dict[str, Any] = dict(cast("dict[str, Any]", state).get(section) or {})
    missing = [k for k in keys if found.get(k) is None]
    if missing:
        raise StageError(
            STAGE,
            f"state.{section} lacks {', '.join(missing)}.",
            suggestion=f"Run {producer} first.",
        )
    return found


def train_model(state: PipelineState, ctx: StageContext) -> dict[str, Any]:
    """Train the initialized model with DeepSpeed; resume from the run's latest checkpoint."""
    from flows.config import PipelineConfig

    started = time.perf_counter()
    config = PipelineConfig.model_validate(state["config"])
    data = _require(state, "data", ("train_path", "n_train_tokens"), "prepare_data")
    model_info = _require(state, "model", ("arch", "init_path"), "initialize_model")
    trainer = make_trainer(config, data, model_info, ctx, state.get("mlflow_run_id"))
    try:
        result = trainer.train()
    finally:
        ctx.progress.close(STAGE)
    weights_path, history_path = ctx.run_dir / "model.pt", ctx.run_dir / "train_history.json"
    trainer.write_outputs(weights_path, history_path)
    summary = _summary(result, trainer, weights_path, history_path)
    summary["wall_s"] = time.perf_counter() - started
    return {"training": summary, "completed_stages": [STAGE]}


def make_trainer(
    config: PipelineConfig,
    data: dict[str, Any],
    model_info: dict[str, Any],
    ctx: StageContext,
    mlflow_run_id: str | None,
) -> Trainer:
    """The Trainer for this run: metrics batched to MLflow, progress to ctx.progress."""
    from flows.stages import mlflow_utils

    arch = model_info["arch"]
    hp, seed = config.model.config, config.training.seed
    total = plan_steps(
        int(data["n_train_tokens"]),
        hp.batch_size,
        arch["block_size"],
        config.training.epochs,
        config.training.max_steps,
    )
    spec = spec_from_config(config, total)
    batches = TokenBatches(data["train_path"], spec.batch_size, arch["block_size"], seed=seed)

    def sink(records: Sequence[MetricRecord]) -> None:
        if mlflow_run_id:
            mlflow_utils.log_metrics(ctx.settings, mlflow_run_id, records)

    def on_log(record: dict[str, Any]) -> None:
        shown = {"loss": record["train_loss"], "tok/s": record["tokens_per_s"]}
        ctx.progress.update(STAGE, record["step"], total, shown)

    meta = {"total_steps": total, "arch": arch, "batch_size": spec.batch_size, "seed": seed}
    trainer = Trainer(
        load_gpt(arch, model_info["init_path"]),
        batches,
        spec,
        ctx.checkpoint_dir,
        metrics_sink=sink,
        on_log=on_log,
        client_meta=meta,
    )
    if mlflow_run_id:
        params = {
            "total_steps": total,
            "batch_size": spec.batch_size,
            "learning_rate": spec.learning_rate,
            "zero_stage": spec.zero_stage,
            "device": trainer.hw.device,
            "precision": trainer.hw.precision,
            "warmup_steps": trainer.schedule.warmup,
            "grad_clip": spec.grad_clip,
        }
        mlflow_utils.log_params(
            ctx.settings, mlflow_run_id, {f"train.{k}": v for k, v in params.items()}
        )
    return trainer


def _summary(
    result: TrainResult, trainer: Trainer, weights_path: Path, history_path: Path
) -> dict[str, Any]:
    return {
        "weights_path": str(weights_path),
        "checkpoint_dir": str(trainer.checkpoint_dir),
        "steps": result.steps,
        "resumed_from_step": result.resumed_from_step,
        "final_train_loss": result.final_train_loss,
        "tokens_per_s": result.tokens_per_s,
        "wall_s": result.wall_s,
        "mfu": result.mfu,
        "device": trainer.hw.device,
        "precision": trainer.hw.precision,
        "zero_stage": trainer.spec.zero_stage,
        "history_path": str(history_path),
    }
