"""The training core: batches, LR schedule, the DeepSpeed engine and the step loop.

Readable top to bottom: `TokenBatches` -> `LRSchedule` -> `TrainSpec` / `Hardware`
-> `build_engine` -> `MetricBuffer` -> `Trainer`. It imports only torch, numpy and
DeepSpeed (lazily), never MLflow, pydantic-settings or Prefect, so the GPU check can
run it on a bare machine. `flows.stages.train` wires it into the pipeline.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from flows.errors import StageError
from flows.stages.model import GPT

STAGE = "train_model"
#: Dense bf16 peak of one H200 (FLOP/s); override with LMCP_PEAK_FLOPS for other chips.
PEAK_FLOPS = float(os.environ.get("LMCP_PEAK_FLOPS", "989e12"))

MetricRecord = tuple[str, float, int]  # (key, value, step)
MetricSink = Callable[[Sequence[MetricRecord]], None]
LogHook = Callable[[dict[str, Any]], None]


class TokenBatches:
    """Random (x, y) windows from a 1-D token array, a pure function of the step number.

    Batch `step` is drawn with a generator seeded from (seed, step), so a run that
    resumes at step n sees exactly the batches an uninterrupted run would have.
    """

    def __init__(
        self, tokens: np.ndarray | str | Path, batch_size: int, block_size: int, seed: int = 0
    ) -> None:
        self.tokens = tokens if isinstance(tokens, np.ndarray) else np.load(tokens, mmap_mode="r")
        if self.tokens.ndim != 1 or len(self.tokens) < block_size + 2:
            raise StageError(
                STAGE,
                f"need a 1-D token array longer than block_size + 1 ({block_size + 1}); "
                f"got shape {self.tokens.shape}.",
                suggestion="Use more training text or a smaller block_size.",
            )
        self.batch_size, self.block_size, self.seed = batch_size, block_size, seed
        self._offsets = np.arange(block_size + 1)

    def __call__(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + step)
        starts = torch.randint(
            len(self.tokens) - self.block_size - 1, (self.batch_size,), generator=g
        ).numpy()
        window = torch.from_numpy(self.tokens[starts[:, None] + self._offsets].astype(np.int64))
        return window[:, :-1], window[:, 1:]


@dataclass(frozen=True)
class LRSchedule:
    """Linear warmup to `peak_lr`, then cosine decay to `peak_lr * min_lr_ratio`."""

    peak_lr: float
    total_steps: int
    warmup_steps: int | None = None  # None: min(100, 5% of total_steps)
    min_lr_ratio: float = 0.1

    @property
    def warmup(self) -> int:
        if self.warmup_steps is not None:
            return min(self.warmup_steps, self.total_steps)
        return min(100, int(0.05 * self.total_steps))

    def __call__(self, step: int) -> float:
        """Learning rate for optimizer step `step` (0-based)."""
        if step < self.warmup:
            return self.peak_lr * (step + 1) / self.warmup
        span = max(1, self.total_steps - self.warmup)
        progress = min(1.0, (step - self.warmup) / span)
        floor = self.peak_lr * self.min_lr_ratio
        return floor + 0.5 * (self.peak_lr - floor) * (1.0 + math.cos(math.pi * progress))


@dataclass(frozen=True)
class TrainSpec:
    """Everything the loop needs besides model and data (mirrors `training` + `model.config`)."""

    total_steps: int
    batch_size: int
    learning_rate: float
    weight_decay: float = 0.1
    warmup_steps: int | None = None
    min_lr_ratio: float = 0.1
    grad_clip: float = 1.0
    zero_stage: int = 0
    checkpoint_interval: int = 200
    log_interval: int = 10
    device: str = "auto"  # auto | cpu | cuda
    precision: str = "auto"  # auto | fp32 | bf16
    keep_checkpoints: int = 2

    def schedule(self) -> LRSchedule:
        return LRSchedule(
            self.learning_rate, self.total_steps, self.warmup_steps, self.min_lr_ratio
        )


@dataclass(frozen=True)
class Hardware:
    device: str  # "cpu" | "cuda"
    precision: str  # "fp32" | "bf16"

    @classmethod
    def resolve(cls, device: str = "auto", precision: str = "auto") -> Hardware:
        has_cuda = torch.cuda.is_available()
        if device == "cuda" and not has_cuda:
            raise StageError(
                STAGE,
                "training.device is 'cuda' but no CUDA GPU is visible.",
                suggestion="Set training.device to 'auto' or 'cpu'.",
            )
        dev = ("cuda" if has_cuda else "cpu") if device == "auto" else device
        prec = ("bf16" if dev == "cuda" else "fp32") if precision == "auto" else precision
        return cls(dev, prec)


def ensure_dist_env() -> None:
    """The five variables DeepSpeed needs for a single-process run (else it tries MPI)."""
    if "MASTER_PORT" not in os.environ:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            os.environ["MASTER_PORT"] = str(s.getsockname()[1])
    for key, value in {
        "RANK": "0",
        "WORLD_SIZE": "1",
        "LOCAL_RANK": "0",
        "MASTER_ADDR": "127.0.0.1",
    }.items():
        os.environ.setdefault(key, value)


def deepspeed_config(spec: TrainSpec, hw: Hardware) -> dict[str, Any]:
    return {
        "train_micro_batch_size_per_gpu": spec.batch_size,
        "gradient_accumulation_steps": 1,
        "steps_per_print": 10**9,
        "wall_clock_breakdown": False,
        "gradient_clipping": spec.grad_clip,
        "bf16": {"enabled": hw.precision == "bf16"},
        "fp16": {"enabled": False},
        "zero_optimization": {"stage": spec.zero_stage},
    }


def make_optimizer(model: GPT, spec: TrainSpec, hw: Hardware) -> torch.optim.AdamW:
    """The client optimizer (a torch AdamW, so DeepSpeed builds no FusedAdam on CPU)."""
    fused = hw.device == "cuda" and hw.precision == "fp32"
    return torch.optim.AdamW(
        model.optimizer_groups(spec.weight_decay),
        lr=spec.learning_rate,
        betas=(0.9, 0.95),
        fused=fused or None,
        foreach=None if fused else True,  # on the CPU torch defaults to a per-tensor loop
    )


def build_engine(model: GPT, spec: TrainSpec, hw: Hardware) -> Any:
    """Wrap `model` in a DeepSpeed engine with the client AdamW (model moves to the device)."""
    ensure_dist_env()
    if hw.device == "cpu":
        os.environ.setdefault("DS_ACCELERATOR", "cpu")
    import deepspeed
    from deepspeed.utils import logger as ds_logger

    ds_logger.setLevel(logging.WARNING)
    if hw.device == "cpu" and os.environ["WORLD_SIZE"] == "1" and not os.environ.get("LMCP_DS_SHM"):
        # The shared-memory all-reduce speeds up several CPU ranks on one host; one rank
        # never uses it, yet its first use JIT-compiles it (~45 s on a clean machine).
        deepspeed.ops.__compatible_ops__["deepspeed_shm_comm"] = False
    engine, _, _, _ = deepspeed.initialize(
        model=model, optimizer=make_optimizer(model, spec, hw), config=deepspeed_config(spec, hw)
    )
    if spec.zero_stage == 0 and engine.dp_world_size == 1:
        # One process has no peers to average gradients with; DeepSpeed would still flatten
        # every gradient and all-reduce it through gloo/NCCL each step (ZeRO-1+ needs that
        # path to fill its partitions, so it stays on there).
        engine.enable_backward_allreduce = False
    return engine


class MetricBuffer:
    """Collects metric records and hands them to `sink` in batches, never one per step."""

    def __init__(
        self, sink: MetricSink | None, flush_seconds: float = 15.0, max_records: int = 900
    ) -> None:
        self.sink, self.flush_seconds, self.max_records = sink, flush_seconds, max_records
        self.records: list[MetricRecord] = []
        self._last_flush = time.perf_counter()
        self.flushes = 0

    def add(self, step: int, metrics: dict[str, float | None]) -> None:
        self.records.extend((k, float(v), step) for k, v in metrics.items() if v is not None)
        if (
            len(self.records) >= self.max_records
            or time.perf_counter() - self._last_flush >= self.flush_seconds
        ):
            self.flush()

    def flush(self) -> None:
        self._last_flush = time.perf_counter()
        if self.sink is None or not self.records:
            return
        batch, self.records = self.records, []
        self.sink(batch)
        self.flushes += 1


@dataclass
class TrainResult:
    steps: int
    resumed_from_step: int
    final_train_loss: float | None
    tokens_per_s: float
    wall_s: float
    mfu: float | None
    history: list[dict[str, Any]] = field(default_factory=list)


class Trainer:
    """Steps a DeepSpeed engine over `batches`, logs, checkpoints and resumes."""

    def __init__(
        self,
        model: GPT,
        batches: TokenBatches,
        spec: TrainSpec,
        checkpoint_dir: str | Path,
        *,
        metrics_sink: MetricSink | None = None,
        on_log: LogHook | None = None,
        client_meta: dict[str, Any] | None = None,
        flush_seconds: float = 15.0,
    ) -> None:
        self.model, self.batches, self.spec = model, batches, spec
        self.checkpoint_dir = Path(checkpoint_dir)
        self.hw = Hardware.resolve(spec.device, spec.precision)
        self.metrics = MetricBuffer(metrics_sink, flush_seconds=flush_seconds)
        self.on_log = on_log
        self.client_meta = client_meta or {}  # saved with each checkpoint, checked on resume
        self.schedule = spec.schedule()
        self.history: list[dict[str, Any]] = []
        self.engine: Any = None
        self.flops_per_token = model.flops_per_token()

    # -- checkpoints ------------------------------------------------------------------
    def latest_step(self) -> int | None:
        latest = self.checkpoint_dir / "latest"
        if not latest.exists():
            return None
        return int(latest.read_text().strip().removeprefix("step"))

    def resume(self) -> int:
        """Load the latest checkpoint if there is one; return the step to continue from."""
        if self.latest_step() is None:
            return 0
        path, client = self.engine.load_checkpoint(str(self.checkpoint_dir))
        if path is None or client is None:
            raise StageError(
                STAGE,
                f"could not load the checkpoint in {self.checkpoint_dir}.",
                suggestion="Delete the run's checkpoint directory to start over.",
            )
        for key, value in self.client_meta.items():
            if client.get(key) != value:
                raise StageError(
                    STAGE,
                    f"checkpoint {path} was made with {key}={client.get(key)!r}, this run "
                    f"has {value!r}.",
                    suggestion="Delete the checkpoint directory to start over.",
                )
        self.history = list(client.get("history", []))
        return int(client["step"])

    def save(self, step: int) -> None:
        self.metrics.flush()  # what the checkpoint covers is in the tracking store too
        client = {"step": step, "history": self.history, **self.client_meta}
        self.engine.save_checkpoint(
            str(self.checkpoint_dir), tag=f"step{step}", client_state=client
        )
        old = sorted(
            (p for p in self.checkpoint_dir.glob("step*") if p.is_dir()),
            key=lambda p: int(p.name.removeprefix("step")),
        )
        for stale in old[: -self.spec.keep_checkpoints]:
            shutil.rmtree(stale, ignore_errors=True)

    # -- the loop ---------------------------------------------------------------------
    def train(self) -> TrainResult:
        started = time.perf_counter()
        if self.engine is None:
            self.engine = build_engine(self.model, self.spec, self.hw)
        start = self.resume()
        loop_started = time.perf_counter()
        self.run_steps(start, self.spec.total_steps)
        self.metrics.flush()
        loop_s = time.perf_counter() - loop_started
        done = self.spec.total_steps - start
        tok_s = done * self.spec.batch_size * self.batches.block_size / max(loop_s, 1e-9)
        return TrainResult(
            steps=self.spec.total_steps,
            resumed_from_step=start,
            final_train_loss=self.history[-1]["train_loss"] if self.history else None,
            tokens_per_s=tok_s,
            wall_s=time.perf_counter() - started,
            mfu=self.mfu(tok_s),
            history=self.history,
        )

    def run_steps(self, start: int, stop: int) -> None:
        """Steps [start, stop). Syncs (loss.item()) only every log_interval steps."""
        engine, spec, device = self.engine, self.spec, self.engine.device
        loss_sum = torch.zeros((), device=device)
        window_steps, window_start = 0, time.perf_counter()
        for step in range(start, stop):
            lr = self.schedule(step)
            for group in engine.optimizer.param_groups:
                group["lr"] = lr
            x, y = self.batches(step)
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            _, loss = engine(x, y)
            engine.backward(loss)
            engine.step()
            loss_sum += loss.detach()
            window_steps += 1
            n = step + 1
            logged = n % spec.log_interval == 0 or n == stop
            if logged:
                elapsed = time.perf_counter() - window_start
                self.log(n, (loss_sum / window_steps).item(), lr, window_steps, elapsed)
                loss_sum.zero_()
            if n % spec.checkpoint_interval == 0 or n == spec.total_steps:
                self.save(n)
            if logged:  # the next window times steps only, not logging or checkpoints
                window_steps, window_start = 0, time.perf_counter()

    def log(self, step: int, loss: float, lr: float, steps: int, elapsed: float) -> None:
        if not math.isfinite(loss):
            raise StageError(
                STAGE,
                f"training loss became {loss} at step {step}.",
                suggestion="Lower model.config.learning_rate or training.grad_clip.",
            )
        tok_s = steps * self.spec.batch_size * self.batches.block_size / max(elapsed, 1e-9)
        record: dict[str, Any] = {"step": step, "train_loss": loss, "lr": lr, "tokens_per_s": tok_s}
        mfu = self.mfu(tok_s)
        if mfu is not None:
            record["mfu"] = mfu
        self.history.append(record)
        self.metrics.add(step, {k: v for k, v in record.items() if k != "step"})
        if self.on_log is not None:
            self.on_log(record)

    def mfu(self, tokens_per_s: float) -> float | None:
        """Model FLOPs utilization against PEAK_FLOPS; None off CUDA."""
        if self.hw.device != "cuda":
            return None
        return self.flops_per_token * tokens_per_s / PEAK_FLOPS

    def fp32_state_dict(self) -> dict[str, torch.Tensor]:
        """Final weights as fp32 CPU tensors, after `train()`.

        bf16 with ZeRO >= 1: the fp32 master weights, rebuilt from the final checkpoint.
        ZeRO-3 in fp32: the gathered parameters (the module holds 0-element shards).
        Otherwise the module's weights (upcast from bf16 for ZeRO-0 in bf16).
        """
        if self.hw.precision == "bf16" and self.spec.zero_stage >= 1:
            from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint

            state = get_fp32_state_dict_from_zero_checkpoint(str(self.checkpoint_dir))
        elif self.spec.zero_stage == 3:
            state = self.engine._zero3_consolidated_16bit_state_dict()
        else:
            state = self.engine.module.state_dict()
        return {k: v.detach().float().cpu() for k, v in state.items()}

    def write_outputs(self, weights_path: Path, history_path: Path) -> None:
        torch.save(self.fp32_state_dict(), weights_path)
        history_path.write_text(json.dumps(self.history, indent=1))
