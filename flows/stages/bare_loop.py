"""The reference the benchmark times `Trainer` against: a bare PyTorch training loop.

Same model, batches, seed, AdamW groups, clipping threshold, LR schedule and sync
cadence (`loss.item()` once per log interval) as `Trainer`, but no DeepSpeed,
checkpoints, tracking or progress. With ZeRO-0 in fp32 both give the same losses.
"""

from __future__ import annotations

import time

import torch

from flows.stages.model import GPT
from flows.stages.trainer import Hardware, TokenBatches, TrainSpec, make_optimizer


def bare_torch_loop(
    model: GPT, batches: TokenBatches, spec: TrainSpec, device: str = "cpu"
) -> list[dict[str, float]]:
    """Train for spec.total_steps; return [{"step", "train_loss", "tokens_per_s"}] per window."""
    model.to(device).train()
    optimizer = make_optimizer(model, spec, Hardware(device, "fp32"))
    schedule, history = spec.schedule(), []
    loss_sum, window, window_start = torch.zeros((), device=device), 0, time.perf_counter()
    for step in range(spec.total_steps):
        lr = schedule(step)
        for group in optimizer.param_groups:
            group["lr"] = lr
        x, y = batches(step)
        _, loss = model(x.to(device), y.to(device))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), spec.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)  # where DeepSpeed drops them too
        loss_sum += loss.detach()
        window += 1
        if (step + 1) % spec.log_interval == 0 or step + 1 == spec.total_steps:
            mean_loss = (loss_sum / window).item()
            elapsed = time.perf_counter() - window_start
            tokens = window * spec.batch_size * batches.block_size
            history.append(
                {"step": step + 1, "train_loss": mean_loss, "tokens_per_s": tokens / elapsed}
            )
            loss_sum.zero_()
            window, window_start = 0, time.perf_counter()
    return history
