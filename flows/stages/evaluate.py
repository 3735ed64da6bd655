"""The `evaluate_model` stage: validation loss, perplexity, accuracy and the loss curve.

The threshold metric defaults to `perplexity_skill = 1 - perplexity / unigram perplexity`,
clipped to [0, 1]: 0 means no better than predicting token frequencies, 1 a perfect
model. It is comparable across tokenizers (each is measured against its own unigram
baseline), which top-1/top-5 accuracy are not.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch.nn import functional as F

from flows.errors import StageError
from flows.stages.model import GPT, load_gpt

if TYPE_CHECKING:
    from flows.stages.context import StageContext
    from flows.stages.state import PipelineState

STAGE = "evaluate_model"


def validation_batches(
    tokens: np.ndarray, block_size: int, batch_size: int, max_batches: int
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Non-overlapping windows spread evenly over `tokens`, at most max_batches batches."""
    n_windows = (len(tokens) - 1) // block_size
    if n_windows < 1:
        raise StageError(
            STAGE,
            f"the validation split has {len(tokens)} tokens, fewer than "
            f"block_size + 1 ({block_size + 1}).",
            suggestion="Raise training.validation_split or lower block_size.",
        )
    wanted = min(n_windows, max_batches * batch_size)
    starts = np.unique(np.linspace(0, n_windows - 1, wanted).round().astype(np.int64)) * block_size
    offsets = np.arange(block_size + 1)
    for i in range(0, len(starts), batch_size):
        window = torch.from_numpy(
            tokens[starts[i : i + batch_size, None] + offsets].astype(np.int64)
        )
        yield window[:, :-1], window[:, 1:]


@torch.inference_mode()
def evaluate_lm(
    model: GPT, tokens: np.ndarray, batch_size: int, max_batches: int, device: str = "cpu"
) -> dict[str, float]:
    """Mean next-token loss (nats/token), perplexity, top-1 and top-5 accuracy."""
    model.eval().to(device)
    k = min(5, model.config.vocab_size)
    loss_sum, top1, top5, count = 0.0, 0, 0, 0
    for x, y in validation_batches(tokens, model.config.block_size, batch_size, max_batches):
        x, y = x.to(device), y.to(device)
        logits, _ = model(x)
        logits = logits.float().view(-1, logits.size(-1))
        target = y.reshape(-1)
        loss_sum += F.cross_entropy(logits, target, reduction="sum").item()
        best = logits.topk(k, dim=-1).indices
        top1 += int((best[:, 0] == target).sum())
        top5 += int((best == target[:, None]).any(dim=-1).sum())
        count += target.numel()
    val_loss = loss_sum / count
    return {
        "val_loss": val_loss,
        "perplexity": math.exp(val_loss),
        "accuracy": top1 / count,
        "top5_accuracy": top5 / count,
        "n_tokens": float(count),
    }


def perplexity_skill(perplexity: float, unigram_loss: float) -> float:
    """1 - perplexity / exp(unigram_loss), clipped to [0, 1]."""
    return min(1.0, max(0.0, 1.0 - perplexity / math.exp(unigram_loss)))


def plot_loss_curve(
    history: list[dict[str, Any]], val_loss: float, unigram_loss: float, path: Path
) -> Path:
    """Train loss per logged step, the final validation loss and the unigram baseline."""
    from matplotlib.figure import Figure  # the OO API: no pyplot state, Agg canvas

    fig = Figure(figsize=(7, 4.2), dpi=110)
    ax = fig.subplots()
    steps = [h["step"] for h in history]
    ax.plot(steps, [h["train_loss"] for h in history], label="train loss", color="tab:blue")
    last = steps[-1] if steps else 0
    ax.scatter(
        [last], [val_loss], color="tab:red", zorder=3, label=f"validation loss {val_loss:.3f}"
    )
    ax.axhline(
        unigram_loss, color="gray", linestyle="--", label=f"unigram baseline {unigram_loss:.3f}"
    )
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("cross-entropy (nats/token)")
    ax.set_title("Training loss")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    return path


SCORES = ("val_loss", "perplexity", "accuracy", "top5_accuracy", "perplexity_skill")


def _eval_device(training: dict[str, Any]) -> str:
    return "cuda" if training.get("device") == "cuda" and torch.cuda.is_available() else "cpu"


def _inputs(state: PipelineState) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any], float]:
    """data, model, training sections and the unigram loss, or a StageError saying what's missing."""
    data: dict[str, Any] = dict(state.get("data") or {})
    model_info: dict[str, Any] = dict(state.get("model") or {})
    training: dict[str, Any] = dict(state.get("training") or {})
    if not training.get("weights_path") or not model_info.get("arch"):
        raise StageError(
            STAGE, "state has no trained weights.", suggestion="Run train_model first."
        )
    if data.get("val_path") is None or data.get("unigram_loss") is None:
        raise StageError(
            STAGE,
            "state.data lacks val_path or unigram_loss.",
            suggestion="Run prepare_data first.",
        )
    unigram_loss = float(data["unigram_loss"])
    if not math.isfinite(unigram_loss) or unigram_loss <= 0:
        raise StageError(
            STAGE,
            f"data.unigram_loss must be a positive number, got {unigram_loss}.",
            suggestion="Check prepare_data's unigram baseline.",
        )
    return data, model_info, training, unigram_loss


def evaluate_model(state: PipelineState, ctx: StageContext) -> dict[str, Any]:
    """Score the trained model on the validation split and compare it with the threshold."""
    from flows.config import PipelineConfig

    config = PipelineConfig.model_validate(state["config"])
    ev = config.evaluation
    data, model_info, training, unigram_loss = _inputs(state)
    model = load_gpt(model_info["arch"], training["weights_path"])
    tokens = np.load(data["val_path"], mmap_mode="r")
    scores = evaluate_lm(
        model, tokens, config.model.config.batch_size, ev.max_batches, _eval_device(training)
    )
    scores["perplexity_skill"] = perplexity_skill(scores["perplexity"], unigram_loss)
    result: dict[str, Any] = {k: scores[k] for k in SCORES}
    result.update(
        {
            "unigram_loss": unigram_loss,
            "metric": ev.metric,
            "metric_value": scores[ev.metric],
            "threshold": ev.performance_threshold,
            "passed": scores[ev.metric] >= ev.performance_threshold,
        }
    )
    history_path = training.get("history_path")
    history = json.loads(Path(history_path).read_text()) if history_path else []
    plot = plot_loss_curve(
        history, scores["val_loss"], unigram_loss, ctx.run_dir / "loss_curve.png"
    )
    result["loss_curve_path"] = str(plot)
    _track(state, ctx, result, int(training.get("steps", 0)), plot)
    _record_table(ctx, result, int(scores["n_tokens"]))
    return {"evaluation": result, "completed_stages": [STAGE]}


def _track(
    state: PipelineState, ctx: StageContext, result: dict[str, Any], step: int, plot: Path
) -> None:
    """Eval metrics in one batch call, and the plot as an artifact under plots/."""
    from flows.stages import mlflow_utils

    run_id = state.get("mlflow_run_id")
    if not run_id:
        return
    mlflow_utils.log_metrics(ctx.settings, run_id, [(k, float(result[k]), step) for k in SCORES])
    mlflow_utils.client(ctx.settings).log_artifact(run_id, str(plot), "plots")


def _record_table(ctx: StageContext, result: dict[str, Any], n_tokens: int) -> None:
    rows: list[dict[str, Any]] = [
        {"metric": k, "value": round(float(result[k]), 4)} for k in (*SCORES, "unigram_loss")
    ]
    verdict = "passed" if result["passed"] else "below threshold"
    rows.append({"metric": f"{result['metric']} >= {result['threshold']}", "value": verdict})
    ctx.progress.record_table(
        "evaluation",
        rows,
        f"Validation on {n_tokens} tokens; threshold metric: {result['metric']}.",
    )
