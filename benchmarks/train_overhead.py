"""How much does train_model cost over a bare PyTorch loop? Measured in one run.

(a) The whole train_model stage (DeepSpeed engine, LR schedule, checkpoints, batched
    MLflow metrics, progress) vs a bare loop (plain AdamW + clip_grad_norm_, same
    model init, batches, schedule and seed), same number of steps, ~60 s each by
    default, in ABBA order so drift on a shared machine cancels out. Reported as the
    ratio of mean wall times, plus the ratio of the median ms/step inside the loops
    (robust to bursts of load from other processes).
(b) One DeepSpeed engine step vs one plain torch step: median ms over interleaved reps.

Data: data/tinyshakespeare.txt as raw bytes, so no data stage is needed. The default
model is the recommended demo size (2 layers, width 96, context 64, batch 32).
Run:  .venv/bin/python benchmarks/train_overhead.py [--seconds 60] [--rounds 2]
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
for _k, _v in {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "1",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
}.items():
    os.environ.setdefault(_k, _v)

from flows.config import PipelineConfig  # noqa: E402
from flows.settings import Settings  # noqa: E402
from flows.stages import mlflow_utils  # noqa: E402
from flows.stages.bare_loop import bare_torch_loop  # noqa: E402
from flows.stages.context import StageContext  # noqa: E402
from flows.stages.model import initialize_model, load_gpt  # noqa: E402
from flows.stages.train import TokenBatches, TrainSpec, spec_from_config, train_model  # noqa: E402
from flows.stages.trainer import Hardware, build_engine, make_optimizer  # noqa: E402

CPU = Hardware("cpu", "fp32")


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seconds", type=float, default=60.0, help="target training time per run")
    p.add_argument("--steps", type=int, default=None, help="fix the steps (skips calibration)")
    p.add_argument("--rounds", type=int, default=2, help="ABBA rounds (1 = bare, stage)")
    p.add_argument("--n-layer", type=int, default=2)
    p.add_argument("--n-head", type=int, default=4)
    p.add_argument("--n-embd", type=int, default=96)
    p.add_argument("--block", type=int, default=64)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--vocab", type=int, default=512, help=">= 256 (bytes); as BPE-512 demo")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--zero-stage", type=int, default=0)
    p.add_argument("--log-interval", type=int, default=10)
    p.add_argument("--checkpoint-interval", type=int, default=200)
    p.add_argument("--reps", type=int, default=40, help="interleaved reps for the step timing")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    return p.parse_args()


def make_state(root: Path, args: argparse.Namespace, steps: int) -> dict[str, Any]:
    tokens = np.frombuffer((ROOT / "data" / "tinyshakespeare.txt").read_bytes(), dtype=np.uint8)
    split = int(0.9 * len(tokens))
    np.save(root / "train.npy", tokens[:split].astype(np.uint16))
    np.save(root / "val.npy", tokens[split:].astype(np.uint16))
    hp = {
        "learning_rate": args.lr,
        "batch_size": args.batch,
        "n_layer": args.n_layer,
        "n_head": args.n_head,
        "n_embd": args.n_embd,
        "block_size": args.block,
    }
    config = PipelineConfig.model_validate(
        {
            "data": {"dataset_name": "training_data_v3"},
            "model": {"name": "bench", "config": hp},
            "training": {
                "epochs": 10_000,
                "max_steps": steps,
                "zero_stage": args.zero_stage,
                "log_interval": args.log_interval,
                "device": "cpu",
                "precision": "fp32",
                "checkpoint_interval": args.checkpoint_interval,
            },
        }
    )
    data = {
        "train_path": str(root / "train.npy"),
        "val_path": str(root / "val.npy"),
        "vocab_size": args.vocab,
        "n_train_tokens": split,
    }
    return {"config": config.model_dump(mode="json"), "data": data}


def _spec_and_batches(state: dict[str, Any], steps: int) -> tuple[TrainSpec, TokenBatches]:
    config = PipelineConfig.model_validate(state["config"])
    spec = spec_from_config(config, steps)
    batches = TokenBatches(
        state["data"]["train_path"],
        spec.batch_size,
        state["model"]["arch"]["block_size"],
        seed=config.training.seed,
    )
    return spec, batches


def step_ms(history: list[dict[str, Any]], tokens_per_step: int) -> list[float]:
    """ms/step of each logged window: the loop alone, without fixed costs."""
    return [1e3 * tokens_per_step / h["tokens_per_s"] for h in history]


def bare_run(state: dict[str, Any], steps: int) -> dict[str, Any]:
    spec, batches = _spec_and_batches(state, steps)
    started = time.perf_counter()
    model = load_gpt(state["model"]["arch"], state["model"]["init_path"])
    history = bare_torch_loop(model, batches, spec)
    wall = time.perf_counter() - started
    tokens = spec.batch_size * batches.block_size
    return {
        "wall_s": wall,
        "final_loss": history[-1]["train_loss"],
        "step_ms": step_ms(history, tokens),
    }


def stage_run(state: dict[str, Any], settings: Settings, run_id: str) -> dict[str, Any]:
    ctx = StageContext(settings=settings, run_id=run_id)
    started = time.perf_counter()
    training = train_model(state, ctx)["training"]
    wall = time.perf_counter() - started
    history = json.loads(Path(training["history_path"]).read_text())
    hp = state["config"]["model"]["config"]
    return {
        "wall_s": wall,
        "final_loss": training["final_train_loss"],
        "step_ms": step_ms(history, hp["batch_size"] * hp["block_size"]),
    }


def calibrate(state: dict[str, Any], seconds: float) -> int:
    """Steps that take about `seconds` in the bare loop (median window of 30 steps)."""
    spec, batches = _spec_and_batches(state, 30)
    spec = TrainSpec(**{**spec.__dict__, "log_interval": 5})
    model = load_gpt(state["model"]["arch"], state["model"]["init_path"])
    history = bare_torch_loop(model, batches, spec)
    ms = statistics.median(step_ms(history, spec.batch_size * batches.block_size)[1:])
    return max(20, int(1e3 * seconds / ms))


def step_timing(state: dict[str, Any], reps: int) -> dict[str, float]:
    """Median ms of one engine step vs one plain step, interleaved to share the noise."""
    spec, batches = _spec_and_batches(state, reps + 10)
    arch, init = state["model"]["arch"], state["model"]["init_path"]
    engine = build_engine(load_gpt(arch, init), spec, CPU)
    plain = load_gpt(arch, init)
    opt = make_optimizer(plain, spec, CPU)

    def ds_step(step: int) -> None:
        x, y = batches(step)
        _, loss = engine(x, y)
        engine.backward(loss)
        engine.step()

    def plain_step(step: int) -> None:
        x, y = batches(step)
        _, loss = plain(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(plain.parameters(), spec.grad_clip)
        opt.step()
        opt.zero_grad(set_to_none=True)

    times: dict[str, list[float]] = {"deepspeed": [], "torch": []}
    order = [("deepspeed", ds_step), ("torch", plain_step)]
    for step in range(reps + 5):
        for name, fn in order if step % 2 == 0 else order[::-1]:
            t0 = time.perf_counter()
            fn(step)
            if step >= 5:  # warm-up
                times[name].append((time.perf_counter() - t0) * 1e3)
    return {k: statistics.median(v) for k, v in times.items()}


def main() -> None:
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    import deepspeed  # noqa: F401  (a one-off per process, not per training: timed apart)

    import_s = time.perf_counter() - t0
    root = Path(tempfile.mkdtemp(prefix="lmcp-bench-"))
    settings = Settings(state_dir=root / "state")
    settings.ensure_dirs()
    ctx = StageContext(settings=settings, run_id="bench-init")
    state = make_state(root, args, steps=args.steps or 1)
    state["mlflow_run_id"] = mlflow_utils.ensure_run(state, ctx)
    state.update(initialize_model(state, ctx))
    step_ms_b = step_timing(state, args.reps)  # also warms the engine before timing (a)
    steps = args.steps or calibrate(state, args.seconds)
    state["config"]["training"]["max_steps"] = steps
    print(
        f"model {state['model']['arch']} params={state['model']['n_params']:,} | "
        f"steps={steps} batch={args.batch}x{args.block} | threads={torch.get_num_threads()}"
        f" | import deepspeed {import_s:.1f}s",
        flush=True,
    )
    runs: dict[str, list[dict[str, Any]]] = {"bare": [], "stage": []}
    order = ["bare", "stage", "stage", "bare"] * args.rounds
    for i, kind in enumerate(order[: 2 * args.rounds]):
        run = bare_run(state, steps) if kind == "bare" else stage_run(state, settings, f"b{i}")
        runs[kind].append(run)
        print(
            f"  {kind:5s} run {i + 1}: {run['wall_s']:7.2f} s  median "
            f"{statistics.median(run['step_ms']):6.2f} ms/step  final loss "
            f"{run['final_loss']:.5f}",
            flush=True,
        )
    report(args, steps, runs, step_ms_b)
    shutil.rmtree(root, ignore_errors=True)


def report(
    args: argparse.Namespace,
    steps: int,
    runs: dict[str, list[dict[str, Any]]],
    step_ms_b: dict[str, float],
) -> None:
    tokens = steps * args.batch * args.block
    wall = {k: statistics.mean(r["wall_s"] for r in v) for k, v in runs.items()}
    best = {k: min(r["wall_s"] for r in v) for k, v in runs.items()}
    loop = {k: statistics.median([ms for r in v for ms in r["step_ms"]]) for k, v in runs.items()}
    print(f"\n(a) {steps} steps, {tokens:,} tokens; {len(runs['bare'])} run(s) of each")
    print(f"{'':20s} {'mean s':>8s} {'best s':>8s} {'tok/s':>9s} {'loop ms/step':>13s}")
    for kind, name in (("bare", "bare torch loop"), ("stage", "train_model stage")):
        print(
            f"{name:20s} {wall[kind]:8.2f} {best[kind]:8.2f} {tokens / wall[kind]:9,.0f} "
            f"{loop[kind]:13.2f}"
        )
    ratio, ratio_best = wall["stage"] / wall["bare"], best["stage"] / best["bare"]
    ratio_loop = loop["stage"] / loop["bare"]
    print(
        f"ratio train_model / bare: wall {ratio:.3f} (best-of {ratio_best:.3f}), "
        f"in-loop {ratio_loop:.3f}; goal <= 1.03: {'met' if ratio <= 1.03 else 'NOT met'}"
    )
    bare_loss, stage_loss = runs["bare"][0]["final_loss"], runs["stage"][0]["final_loss"]
    print(
        f"final train loss: bare {bare_loss:.6f}, stage {stage_loss:.6f} (relative difference "
        f"{abs(stage_loss - bare_loss) / bare_loss:.1e}: DeepSpeed's clip_grad_norm_ rounds "
        "differently in the last bits)"
    )
    step_ratio = step_ms_b["deepspeed"] / step_ms_b["torch"]
    print(
        f"\n(b) one step, median of {args.reps} interleaved reps: DeepSpeed "
        f"{step_ms_b['deepspeed']:.2f} ms vs torch {step_ms_b['torch']:.2f} ms "
        f"-> ratio {step_ratio:.3f}"
    )
    summary = {
        "steps": steps,
        "threads": torch.get_num_threads(),
        "zero_stage": args.zero_stage,
        "bare_s": round(wall["bare"], 2),
        "stage_s": round(wall["stage"], 2),
        "ratio": round(ratio, 4),
        "ratio_best": round(ratio_best, 4),
        "ratio_in_loop": round(ratio_loop, 4),
        "bare_tok_s": round(tokens / wall["bare"]),
        "stage_tok_s": round(tokens / wall["stage"]),
        "ds_step_ms": round(step_ms_b["deepspeed"], 2),
        "torch_step_ms": round(step_ms_b["torch"], 2),
        "step_ratio": round(step_ratio, 4),
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
