"""The training core (batches, schedule, DeepSpeed trainer) and the train_model stage.

Everything runs for real: a DeepSpeed engine on the CPU accelerator, MLflow on SQLite.
The data is a repeating random pattern, so a tiny model can learn it in a few hundred
steps and its loss must end far below ln(vocab).
"""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from flows.errors import StageError
from flows.settings import Settings
from flows.stages import mlflow_utils
from flows.stages.bare_loop import bare_torch_loop
from flows.stages.context import StageContext
from flows.stages.model import GPT, GPTConfig, initialize_model, load_gpt
from flows.stages.train import (
    Hardware,
    LRSchedule,
    MetricBuffer,
    TokenBatches,
    Trainer,
    TrainSpec,
    plan_steps,
    train_model,
)
from tests.support.synthetic import BATCH, BLOCK, VOCAB, pattern_tokens, synthetic_state


def make_state(root: Path, **training: Any) -> dict[str, Any]:
    """A pipeline state as prepare_data + validate_data would leave it."""
    return synthetic_state(root, training={"epochs": 100, **training})


# -- pure pieces ---------------------------------------------------------------------------
def test_lr_schedule_warms_up_then_decays_to_the_floor() -> None:
    s = LRSchedule(peak_lr=1e-3, total_steps=1000, min_lr_ratio=0.1)
    assert s.warmup == 50  # 5% of the steps, at most 100
    assert LRSchedule(1e-3, 10_000).warmup == 100
    lrs = [s(i) for i in range(1000)]
    assert lrs[0] == pytest.approx(1e-3 / 50)
    assert all(a < b for a, b in itertools.pairwise(lrs[:50]))
    assert max(lrs) == pytest.approx(1e-3) and lrs.index(max(lrs)) in (49, 50)
    assert all(a >= b for a, b in itertools.pairwise(lrs[50:]))
    assert lrs[-1] == pytest.approx(1e-4, rel=1e-3)
    assert LRSchedule(1e-3, 100, warmup_steps=0)(0) == pytest.approx(1e-3)


def test_token_batches_are_shifted_windows_fixed_per_step(tmp_path: Path) -> None:
    path = tmp_path / "t.npy"
    np.save(path, np.arange(1000, dtype=np.uint16))
    batches = TokenBatches(path, batch_size=4, block_size=16, seed=3)
    x, y = batches(7)
    assert x.shape == y.shape == (4, 16) and x.dtype == torch.int64
    assert torch.equal(x[:, 1:], y[:, :-1])
    assert torch.equal(y - x, torch.ones_like(x))  # consecutive tokens of the array
    again = TokenBatches(path, batch_size=4, block_size=16, seed=3)
    assert torch.equal(again(7)[0], x)
    assert not torch.equal(batches(8)[0], x)
    assert not torch.equal(TokenBatches(path, 4, 16, seed=4)(7)[0], x)


def test_token_batches_refuse_too_little_data(tmp_path: Path) -> None:
    np.save(tmp_path / "t.npy", np.arange(10, dtype=np.uint16))
    with pytest.raises(StageError, match="block_size"):
        TokenBatches(tmp_path / "t.npy", batch_size=2, block_size=16)


def test_metric_buffer_sends_batches() -> None:
    calls: list[list[tuple[str, float, int]]] = []
    buffer = MetricBuffer(
        lambda records: calls.append(list(records)), flush_seconds=1e9, max_records=60
    )
    for step in range(1, 51):
        buffer.add(step, {"train_loss": 1.0 / step, "lr": 0.1, "mfu": None})
    buffer.flush()
    assert [len(c) for c in calls] == [60, 40]
    assert calls[0][0] == ("train_loss", 1.0, 1)


def test_plan_steps_and_hardware() -> None:
    assert plan_steps(10_000, 8, 32, epochs=3) == 3 * math.ceil(10_000 / 256)
    assert plan_steps(10_000, 8, 32, epochs=3, max_steps=5) == 5
    if torch.cuda.is_available():
        pytest.skip("the CPU-only branches need a machine without CUDA")
    assert Hardware.resolve() == Hardware("cpu", "fp32")
    with pytest.raises(StageError, match="no CUDA"):
        Hardware.resolve("cuda")


# -- the DeepSpeed trainer -------------------------------------------------------------------
def _tiny(seed: int = 0) -> GPT:
    torch.manual_seed(seed)
    return GPT(GPTConfig(vocab_size=VOCAB, n_layer=1, n_head=2, n_embd=32, block_size=BLOCK))


def _spec(**kw: Any) -> TrainSpec:
    base = {
        "total_steps": 20,
        "batch_size": BATCH,
        "learning_rate": 3e-3,
        "checkpoint_interval": 10,
        "log_interval": 5,
    }
    return TrainSpec(**{**base, **kw})


def test_deepspeed_zero0_matches_the_bare_torch_loop(tmp_path: Path) -> None:
    batches = TokenBatches(pattern_tokens(), BATCH, BLOCK, seed=1)
    spec = _spec()
    reference = bare_torch_loop(_tiny(), batches, spec)
    result = Trainer(_tiny(), batches, spec, tmp_path / "ckpt").train()
    assert [h["step"] for h in result.history] == [5, 10, 15, 20]
    for ds, bare in zip(result.history, reference, strict=True):
        assert ds["train_loss"] == pytest.approx(bare["train_loss"], rel=1e-5)
    assert reference[-1]["train_loss"] < reference[0]["train_loss"]


@pytest.mark.parametrize("zero_stage", [1, 3])
def test_zero_stages_train_save_and_resume(tmp_path: Path, zero_stage: int) -> None:
    batches = TokenBatches(pattern_tokens(), BATCH, BLOCK, seed=1)
    spec = _spec(zero_stage=zero_stage)
    reference = bare_torch_loop(_tiny(), batches, spec)
    trainer = Trainer(_tiny(), batches, spec, tmp_path / "ckpt")
    result = trainer.train()
    assert result.history[-1]["train_loss"] == pytest.approx(reference[-1]["train_loss"], rel=1e-3)
    weights = trainer.fp32_state_dict()
    assert all(v.numel() > 0 for v in weights.values())  # ZeRO-3: gathered, not 0-element
    again = Trainer(_tiny(seed=5), batches, spec, tmp_path / "ckpt")
    assert again.train().resumed_from_step == 20
    for key, value in again.fp32_state_dict().items():
        assert torch.equal(value, weights[key]), key


def test_bf16_zero1_exports_the_fp32_master_weights(tmp_path: Path) -> None:
    # The GPU path (bf16), run on DeepSpeed's CPU accelerator.
    batches = TokenBatches(pattern_tokens(), BATCH, BLOCK, seed=1)
    trainer = Trainer(_tiny(), batches, _spec(zero_stage=1, precision="bf16"), tmp_path)
    result = trainer.train()
    assert trainer.hw == Hardware("cpu", "bf16")
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]
    weights = trainer.fp32_state_dict()
    module = trainer.engine.module.state_dict()
    assert module["wte.weight"].dtype == torch.bfloat16
    assert all(w.dtype == torch.float32 for w in weights.values())
    # Master weights round to the bf16 ones, but carry more precision than them.
    assert all(torch.equal(weights[k].bfloat16(), module[k]) for k in module)
    assert any(not torch.equal(weights[k], module[k].float()) for k in module)
    model = GPT(GPTConfig(vocab_size=VOCAB, n_layer=1, n_head=2, n_embd=32, block_size=BLOCK))
    model.load_state_dict(weights)


def test_checkpoint_of_another_config_is_refused(tmp_path: Path) -> None:
    batches = TokenBatches(pattern_tokens(), BATCH, BLOCK)
    Trainer(
        _tiny(), batches, _spec(total_steps=10), tmp_path, client_meta={"total_steps": 10}
    ).train()
    other = Trainer(
        _tiny(), batches, _spec(total_steps=30), tmp_path, client_meta={"total_steps": 30}
    )
    with pytest.raises(StageError, match="total_steps"):
        other.train()


# -- the stage -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One real train_model run (300 steps) shared by the stage tests below."""
    root = tmp_path_factory.mktemp("train")
    settings = Settings(state_dir=root / "state")
    settings.ensure_dirs()
    ctx = StageContext(settings=settings, run_id="t1")
    state = make_state(root, max_steps=300, checkpoint_interval=100)
    state["mlflow_run_id"] = mlflow_utils.ensure_run(state, ctx)
    state.update(initialize_model(state, ctx))
    state.update(train_model(state, ctx))
    return {"state": state, "ctx": ctx}


def test_training_learns_the_pattern(trained: dict[str, Any]) -> None:
    training = trained["state"]["training"]
    history = json.loads(Path(training["history_path"]).read_text())
    assert [h["step"] for h in history] == list(range(10, 301, 10))
    assert history[0]["train_loss"] > 2.5
    assert training["final_train_loss"] == history[-1]["train_loss"]
    assert training["final_train_loss"] < 0.25 * math.log(VOCAB)
    assert training["steps"] == 300 and training["resumed_from_step"] == 0
    assert training["device"] == "cpu" and training["mfu"] is None
    assert training["tokens_per_s"] > 0
    model = load_gpt(trained["state"]["model"]["arch"], training["weights_path"]).eval()
    x, y = TokenBatches(trained["state"]["data"]["val_path"], 16, BLOCK)(0)
    with torch.no_grad():
        assert model(x, y)[1].item() < 0.25 * math.log(VOCAB)


def test_checkpoints_at_the_interval_and_the_end(trained: dict[str, Any]) -> None:
    ckpt = Path(trained["state"]["training"]["checkpoint_dir"])
    assert (ckpt / "latest").read_text().strip() == "step300"
    # Written at 100, 200 and 300; the oldest was pruned (keep_checkpoints=2).
    assert sorted(p.name for p in ckpt.glob("step*")) == ["step200", "step300"]


def test_mlflow_got_every_logged_step_in_batches(trained: dict[str, Any]) -> None:
    state, ctx = trained["state"], trained["ctx"]
    client = mlflow_utils.client(ctx.settings)
    for key in ("train_loss", "lr", "tokens_per_s"):
        history = client.get_metric_history(state["mlflow_run_id"], key)
        assert sorted(m.step for m in history) == list(range(10, 301, 10)), key
    history = client.get_metric_history(state["mlflow_run_id"], "train_loss")
    # log_batch stamps a batch with one time: the 30 records came in a few calls (a flush
    # at each checkpoint, 100/200/300, plus one per 15 s of training), not one per record.
    calls = len({m.timestamp for m in history})
    assert calls <= 3 + state["training"]["wall_s"] // 15 and calls < 30
    losses = {m.step: m.value for m in history}
    assert losses[300] == pytest.approx(state["training"]["final_train_loss"])
    params = client.get_run(state["mlflow_run_id"]).data.params
    assert params["train.total_steps"] == "300" and params["train.zero_stage"] == "0"


def test_rerun_of_a_finished_run_resumes_at_the_end(trained: dict[str, Any]) -> None:
    state, ctx = trained["state"], trained["ctx"]
    again = train_model(state, ctx)["training"]
    assert again["resumed_from_step"] == 300 and again["steps"] == 300
    assert again["final_train_loss"] == state["training"]["final_train_loss"]
