"""A learnable synthetic corpus and the pipeline state prepare_data would leave for it.

A repeating random pattern: a tiny model learns it in a few hundred steps, so training
tests can require a loss far below ln(VOCAB) without touching the real corpus.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from flows.config import PipelineConfig

VOCAB, BLOCK, BATCH = 32, 32, 8
N_TRAIN = 16_000


def pattern_tokens(n: int = 20_000, period: int = 50, seed: int = 0) -> np.ndarray:
    pattern = np.random.default_rng(seed).integers(0, VOCAB, size=period)
    return np.tile(pattern, n // period + 1)[:n].astype(np.uint16)


def unigram_entropy(tokens: np.ndarray) -> float:
    freq = np.bincount(tokens, minlength=VOCAB) / len(tokens)
    freq = freq[freq > 0]
    return float(-(freq * np.log(freq)).sum())


def synthetic_state(
    root: Path, *, training: dict[str, Any], evaluation: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Write train/val token arrays under `root`; return a state with a tiny 1-layer model."""
    tokens = pattern_tokens()
    train, val = tokens[:N_TRAIN], tokens[N_TRAIN:]
    np.save(root / "train.npy", train)
    np.save(root / "val.npy", val)
    config = PipelineConfig.model_validate(
        {
            "data": {"dataset_name": "training_data_v3"},
            "model": {
                "name": "tiny",
                "config": {
                    "learning_rate": 3e-3,
                    "batch_size": BATCH,
                    "n_layer": 1,
                    "n_head": 2,
                    "n_embd": 32,
                    "block_size": BLOCK,
                },
            },
            "training": {"log_interval": 10, **training},
            "evaluation": evaluation or {},
        }
    )
    return {
        "config": config.model_dump(mode="json"),
        "data": {
            "train_path": str(root / "train.npy"),
            "val_path": str(root / "val.npy"),
            "vocab_size": VOCAB,
            "n_train_tokens": len(train),
            "n_val_tokens": len(val),
            "unigram_loss": unigram_entropy(tokens),
            "tokenizer_path": None,
        },
    }
