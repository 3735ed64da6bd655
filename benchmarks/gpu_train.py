"""GPU check: train a GPT-2-small-sized model with the train_model core on CUDA + bf16.

Prints tokens/s and MFU (against the H200 dense bf16 peak, 989 TFLOP/s; set
--peak-flops or LMCP_PEAK_FLOPS for another chip) and a one-line JSON summary.
Finishes in a few minutes: a few hundred steps of 32 x 1024 tokens.

Needs only torch, numpy, tokenizers and DeepSpeed: it imports `flows.stages.model` and
`flows.stages.trainer` (no MLflow, pydantic-settings, LangGraph or Prefect).

    python benchmarks/gpu_train.py                 # GPT-2 small, BPE 8192, 300 steps
    python benchmarks/gpu_train.py --smoke         # tiny model on CPU, checks the script
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from flows.stages.model import GPT, GPTConfig  # noqa: E402
from flows.stages.trainer import (  # noqa: E402
    PEAK_FLOPS,
    TokenBatches,
    Trainer,
    TrainSpec,
    build_engine,
)


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--batch", type=int, default=32, help="sequences per step")
    p.add_argument("--block", type=int, default=1024)
    p.add_argument("--n-layer", type=int, default=12)
    p.add_argument("--n-head", type=int, default=12)
    p.add_argument("--n-embd", type=int, default=768)
    p.add_argument("--vocab", type=int, default=8192, help="BPE vocabulary; 256 = raw bytes")
    p.add_argument("--lr", type=float, default=6e-4)
    p.add_argument("--zero-stage", type=int, default=1)
    p.add_argument("--log-interval", type=int, default=10)
    p.add_argument("--compile", action="store_true", help="engine.compile() (torch.compile)")
    p.add_argument("--peak-flops", type=float, default=PEAK_FLOPS)
    p.add_argument("--data", type=Path, default=ROOT / "data" / "tinyshakespeare.txt")
    p.add_argument(
        "--smoke",
        action="store_true",
        help="tiny model, 20 steps on the CPU in bf16: checks the script, not speed",
    )
    args = p.parse_args()
    if args.smoke:
        args.steps, args.batch, args.block, args.vocab = 20, 4, 64, 256
        args.n_layer, args.n_head, args.n_embd, args.log_interval = 2, 2, 64, 5
    return args


def tokenize(path: Path, vocab: int, out: Path) -> Path:
    """Raw bytes (vocab 256) or a byte-level BPE trained on the file; saved as uint16."""
    text = path.read_text(encoding="utf-8")
    if vocab <= 256:
        ids = np.frombuffer(text.encode("utf-8"), dtype=np.uint8).astype(np.uint16)
    else:
        from tokenizers import Tokenizer, models, pre_tokenizers, trainers

        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        trainer = trainers.BpeTrainer(
            vocab_size=vocab,
            show_progress=False,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        )
        tok.train_from_iterator([text], trainer)
        ids = np.asarray(tok.encode(text).ids, dtype=np.uint16)
    np.save(out, ids)
    return out


def steady(history: list[dict[str, Any]], key: str) -> float | None:
    """Median over the log windows after the first two (cuBLAS/allocator warm-up)."""
    values = [h[key] for h in history[2:] if h.get(key) is not None] or [
        h[key] for h in history if h.get(key) is not None
    ]
    return statistics.median(values) if values else None


def make_trainer(args: argparse.Namespace, tokens: Path, vocab: int, work: Path) -> Trainer:
    """The train_model core on this config, its DeepSpeed engine built (and compiled)."""
    device = "cpu" if args.smoke else "cuda"
    torch.manual_seed(1337)
    cfg = GPTConfig(
        vocab_size=vocab,
        n_layer=args.n_layer,
        n_head=args.n_head,
        n_embd=args.n_embd,
        block_size=args.block,
    )
    model = GPT(cfg)
    spec = TrainSpec(
        total_steps=args.steps,
        batch_size=args.batch,
        learning_rate=args.lr,
        zero_stage=args.zero_stage,
        checkpoint_interval=args.steps,
        log_interval=args.log_interval,
        device=device,
        precision="bf16",
    )

    def show(r: dict[str, Any]) -> None:
        print(
            f"  step {r['step']:5d}  loss {r['train_loss']:.4f}  {r['tokens_per_s']:,.0f} tok/s",
            flush=True,
        )

    batches = TokenBatches(tokens, args.batch, args.block, seed=1337)
    trainer = Trainer(model, batches, spec, work / "checkpoints", on_log=show)
    t0 = time.perf_counter()
    trainer.engine = build_engine(model, spec, trainer.hw)
    if args.compile:
        trainer.engine.compile()
    print(
        f"model {cfg.to_dict()} params {model.num_params(False):,} flops/token "
        f"{model.flops_per_token():.3e} | engine {type(trainer.engine.optimizer).__name__} "
        f"ZeRO-{args.zero_stage} bf16 on {trainer.engine.device} "
        f"({time.perf_counter() - t0:.1f} s)",
        flush=True,
    )
    return trainer


def main() -> int:
    args = parse_args()
    if not args.smoke and not torch.cuda.is_available():
        print(
            "gpu_train: no CUDA GPU is visible; nothing to measure (use --smoke to check "
            "the script on the CPU)."
        )
        print(json.dumps({"status": "skipped", "reason": "no CUDA"}))
        return 0
    if not args.smoke:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    work = Path(tempfile.mkdtemp(prefix="lmcp-gpu-"))
    t0 = time.perf_counter()
    tokens = tokenize(args.data, args.vocab, work / "train.npy")
    vocab = max(args.vocab, 256)
    print(
        f"tokenized {args.data.name}: {len(np.load(tokens)):,} tokens, vocab {vocab} "
        f"({time.perf_counter() - t0:.1f} s)",
        flush=True,
    )
    trainer = make_trainer(args, tokens, vocab, work)
    result = trainer.train()
    status = report(args, trainer, result, "bf16")
    shutil.rmtree(work, ignore_errors=True)  # the checkpoint of GPT-2 small is ~1.5 GB
    return status


def report(args: argparse.Namespace, trainer: Trainer, result: Any, precision: str) -> int:
    tok_s = steady(result.history, "tokens_per_s") or result.tokens_per_s
    mfu = trainer.flops_per_token * tok_s / args.peak_flops
    hw = trainer.hw
    name = torch.cuda.get_device_name() if hw.device == "cuda" else "cpu"
    mem = torch.cuda.max_memory_allocated() / 2**30 if hw.device == "cuda" else None
    first, last = result.history[0]["train_loss"], result.history[-1]["train_loss"]
    print(
        f"\n{name}: {result.steps} steps x {args.batch * args.block:,} tokens, "
        f"{result.wall_s:.1f} s (incl. final checkpoint)"
    )
    print(f"tokens/s steady {tok_s:,.0f} (whole loop {result.tokens_per_s:,.0f})")
    print(
        f"MFU {100 * mfu:.1f}% of {args.peak_flops / 1e12:.0f} TFLOP/s "
        f"({trainer.flops_per_token * tok_s / 1e12:.1f} TFLOP/s achieved)"
    )
    print(f"loss {first:.3f} -> {last:.3f}" + (f" | peak memory {mem:.1f} GiB" if mem else ""))
    summary = {
        "status": "ok",
        "device": name,
        "torch": torch.__version__,
        "precision": precision,
        "zero_stage": args.zero_stage,
        "compile": args.compile,
        "steps": result.steps,
        "batch": args.batch,
        "block": args.block,
        "n_params": trainer.model.num_params(False),
        "tokens_per_s": round(tok_s),
        "mfu": round(mfu, 4),
        "wall_s": round(result.wall_s, 1),
        "loss_first": round(first, 4),
        "loss_last": round(last, 4),
        "peak_mem_gib": None if mem is None else round(mem, 2),
    }
    print(json.dumps(summary))
    return 0 if last < first else 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
