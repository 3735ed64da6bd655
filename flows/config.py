"""A job's `pipeline_config`: the seed's "Example Job Configuration" plus optional fields.

The seed example validates verbatim. Every field states its unit and default, and
every bad value is refused before anything runs, naming the field.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from flows.catalog import load_catalog
from flows.errors import ConfigError
from flows.settings import get_settings

MODEL_TYPES = ("transformer",)
EVAL_METRICS = ("perplexity_skill", "top5_accuracy", "accuracy")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class Preprocessing(_Strict):
    tokenization: bool = Field(
        True,
        description="True: train a byte-level BPE tokenizer on the training split. "
        "False: raw UTF-8 bytes (vocabulary of 256).",
    )
    normalization: bool = Field(
        True,
        description="Unicode NFKC, '\\r\\n' -> '\\n', trailing spaces stripped, runs of "
        "spaces collapsed, 3+ newlines collapsed to a blank line.",
    )
    vocab_size: int = Field(
        512,
        ge=260,
        le=65536,
        description="BPE vocabulary size in tokens (used when tokenization is true).",
    )


class DataConfig(_Strict):
    dataset_name: str = Field(
        ..., min_length=1, description="A name from the dataset catalog (data/catalog.yaml)."
    )
    preprocessing: Preprocessing = Field(default_factory=Preprocessing)

    @field_validator("dataset_name")
    @classmethod
    def _known_dataset(cls, name: str) -> str:
        catalog = load_catalog(get_settings().dataset_catalog)
        if name not in catalog:
            raise ValueError(
                f"unknown dataset '{name}'; known datasets: {', '.join(sorted(catalog))}"
            )
        return name


class ModelHyperparameters(_Strict):
    """Defaults are sized for a CPU: the seed example (10 epochs of Tiny Shakespeare) trains
    in about 80 s on 2 cores and reaches perplexity_skill ~0.9. Scale them up on a GPU."""

    learning_rate: float = Field(
        1e-3, gt=0, le=1.0, description="Peak AdamW learning rate (after warmup)."
    )
    batch_size: int = Field(32, gt=0, le=4096, description="Sequences per optimizer step.")
    n_layer: int = Field(2, ge=1, le=96, description="Transformer blocks.")
    n_head: int = Field(4, ge=1, le=128, description="Attention heads per block.")
    n_embd: int = Field(96, ge=8, le=16384, description="Model width (embedding size).")
    block_size: int = Field(64, ge=8, le=8192, description="Context length in tokens.")
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="Dropout probability.")
    weight_decay: float = Field(0.1, ge=0.0, le=1.0, description="AdamW weight decay.")

    @model_validator(mode="after")
    def _heads_divide_width(self) -> ModelHyperparameters:
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head})")
        return self


class ModelConfig(_Strict):
    type: str = Field("transformer", description=f"Model family; one of {MODEL_TYPES}.")
    name: str = Field(
        ...,
        min_length=1,
        max_length=100,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$",
        description="Registered model name in MLflow (letters, digits, '_', '-', '.').",
    )
    config: ModelHyperparameters = Field(default_factory=ModelHyperparameters)

    @field_validator("type")
    @classmethod
    def _known_type(cls, value: str) -> str:
        if value not in MODEL_TYPES:
            raise ValueError(f"unknown model type '{value}'; known types: {', '.join(MODEL_TYPES)}")
        return value


class TrainingConfig(_Strict):
    epochs: int = Field(
        10,
        ge=1,
        le=10_000,
        description="Passes over the training tokens (one epoch = n_train_tokens / "
        "(batch_size * block_size) steps).",
    )
    validation_split: float = Field(
        0.2, gt=0.0, lt=1.0, description="Fraction of documents held out for validation."
    )
    max_steps: int | None = Field(
        None, ge=1, description="Cap on optimizer steps (default: none, epochs decide)."
    )
    warmup_steps: int | None = Field(
        None,
        ge=0,
        description="Linear LR warmup in steps (default: 5% of the steps, at most 100).",
    )
    min_lr_ratio: float = Field(
        0.1, ge=0.0, le=1.0, description="Cosine decay floor as a fraction of the peak LR."
    )
    grad_clip: float = Field(1.0, gt=0.0, description="Gradient-norm clipping threshold.")
    seed: int = Field(1337, ge=0, description="Random seed for init, batching and splits.")
    zero_stage: int = Field(0, ge=0, le=3, description="DeepSpeed ZeRO stage (0-3).")
    checkpoint_interval: int = Field(
        200, ge=1, description="Save a DeepSpeed checkpoint every N steps (and at the end)."
    )
    log_interval: int = Field(
        10, ge=1, description="Steps between metric records (batched to MLflow)."
    )
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="'auto' uses CUDA when present, else DeepSpeed's CPU accelerator."
    )
    precision: Literal["auto", "fp32", "bf16"] = Field(
        "auto", description="'auto' is bf16 on CUDA and fp32 on CPU."
    )


class EvaluationConfig(_Strict):
    performance_threshold: float = Field(
        0.8,
        ge=0.0,
        le=1.0,
        description="The run registers a model only if `metric` reaches this value (0-1).",
    )
    metric: Literal["perplexity_skill", "top5_accuracy", "accuracy"] = Field(
        "perplexity_skill",
        description="perplexity_skill = 1 - perplexity / unigram-baseline perplexity "
        "(0: no better than token frequencies, 1: perfect); top5_accuracy / accuracy: "
        "next-token top-5 / top-1 accuracy on the validation split.",
    )
    max_batches: int = Field(
        50, ge=1, description="Validation batches to evaluate (batch_size sequences each)."
    )


class PipelineConfig(_Strict):
    data: DataConfig
    model: ModelConfig
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig)

    def config_hash(self) -> str:
        """Stable short hash of the full config (defaults included)."""
        blob = json.dumps(self.model_dump(mode="json"), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


def validation_errors(exc: ValidationError, prefix: str = "") -> list[dict[str, str]]:
    """pydantic errors -> [{"field": "a.b", "message": "..."}]."""
    out = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"] if p not in ("__root__",))
        field = f"{prefix}.{loc}" if prefix and loc else (prefix or loc)
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown field"
        out.append({"field": field, "message": msg})
    return out


def parse_pipeline_config(data: Any, prefix: str = "pipeline_config") -> PipelineConfig:
    """Validate a raw config; raise ConfigError naming every bad field."""
    if isinstance(data, PipelineConfig):
        return data
    try:
        return PipelineConfig.model_validate(data)
    except ValidationError as exc:
        errors = validation_errors(exc, prefix)
        summary = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
        raise ConfigError(f"invalid pipeline config: {summary}", errors=errors) from None


def merge_overrides(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge `overrides` into `base` (used for trigger-time parameter overrides)."""
    out = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge_overrides(out[key], value)
        else:
            out[key] = value
    return out
