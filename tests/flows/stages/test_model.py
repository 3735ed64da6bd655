"""The GPT model and the initialize_model stage."""

from __future__ import annotations

import math

import pytest
import torch

from flows.config import PipelineConfig
from flows.errors import StageError
from flows.settings import Settings
from flows.stages import mlflow_utils
from flows.stages.context import StageContext
from flows.stages.model import GPT, GPTConfig, initialize_model, load_gpt

TINY = GPTConfig(vocab_size=48, n_layer=2, n_head=2, n_embd=32, block_size=16)


def _model(seed: int = 0) -> GPT:
    torch.manual_seed(seed)
    return GPT(TINY).eval()


def test_forward_shapes_and_initial_loss_near_uniform() -> None:
    model = _model()
    idx = torch.randint(0, TINY.vocab_size, (4, TINY.block_size))
    targets = torch.randint(0, TINY.vocab_size, (4, TINY.block_size))
    logits, loss = model(idx, targets)
    assert logits.shape == (4, TINY.block_size, TINY.vocab_size)
    assert loss is not None
    # N(0, 0.02) init: the first loss is about ln(vocab), not ~34 as with nn.Embedding's init.
    assert abs(loss.item() - math.log(TINY.vocab_size)) < 0.2
    assert model(idx)[1] is None


def test_model_is_causal() -> None:
    model = _model()
    idx = torch.randint(0, TINY.vocab_size, (1, TINY.block_size))
    changed = idx.clone()
    changed[0, 10] = (idx[0, 10] + 1) % TINY.vocab_size
    a, _ = model(idx)
    b, _ = model(changed)
    assert torch.allclose(a[:, :10], b[:, :10], atol=1e-6)
    assert not torch.allclose(a[:, 10:], b[:, 10:], atol=1e-4)


def test_head_is_tied_and_params_counted_once() -> None:
    model = _model()
    assert model.lm_head.weight.data_ptr() == model.wte.weight.data_ptr()
    unique = {id(p): p.numel() for p in model.parameters()}
    assert model.num_params(non_embedding=False) == sum(unique.values())
    assert model.num_params() == sum(unique.values()) - TINY.block_size * TINY.n_embd


def test_flops_per_token_follows_the_6n_estimate() -> None:
    model = _model()
    attention = 12 * TINY.n_layer * TINY.n_head * (TINY.n_embd // TINY.n_head) * TINY.block_size
    assert model.flops_per_token() == 6 * model.num_params() + attention


def test_sequence_longer_than_block_is_refused() -> None:
    with pytest.raises(ValueError, match="block_size"):
        _model()(torch.zeros(1, TINY.block_size + 1, dtype=torch.long))


def test_generate_appends_tokens_within_vocab() -> None:
    model = _model()
    start = torch.zeros(2, 3, dtype=torch.long)
    out = model.generate(
        start, 20, temperature=0.8, top_k=5, generator=torch.Generator().manual_seed(1)
    )
    assert out.shape == (2, 23)
    assert torch.equal(out[:, :3], start)
    assert int(out.max()) < TINY.vocab_size
    greedy = model.generate(start, 5, temperature=0)
    assert torch.equal(greedy, model.generate(start, 5, temperature=0))


def test_bad_architecture_is_refused() -> None:
    with pytest.raises(ValueError, match="divisible"):
        GPTConfig(vocab_size=10, n_head=3, n_embd=32)


def _state(vocab: int = 97) -> dict:
    config = PipelineConfig.model_validate(
        {
            "data": {"dataset_name": "training_data_v3"},
            "model": {
                "name": "tiny",
                "config": {"n_layer": 1, "n_head": 2, "n_embd": 16, "block_size": 8},
            },
            "training": {"seed": 7},
        }
    )
    return {"config": config.model_dump(mode="json"), "data": {"vocab_size": vocab}}


def test_initialize_model_saves_weights_and_records_size(settings: Settings) -> None:
    ctx = StageContext(settings=settings, run_id="t1")
    state = _state()
    state["mlflow_run_id"] = mlflow_utils.ensure_run(state, ctx)
    out = initialize_model(state, ctx)
    info = out["model"]
    assert out["completed_stages"] == ["initialize_model"]
    assert info["arch"] == {
        "vocab_size": 97,
        "n_layer": 1,
        "n_head": 2,
        "n_embd": 16,
        "block_size": 8,
        "dropout": 0.0,
    }
    model = load_gpt(info["arch"], info["init_path"])
    assert info["n_params"] == model.num_params(non_embedding=False)
    # Same seed, same weights: the init is reproducible.
    again = load_gpt(initialize_model(state, ctx)["model"]["arch"], info["init_path"])
    assert all(
        torch.equal(a, b)
        for a, b in zip(model.state_dict().values(), again.state_dict().values(), strict=True)
    )
    params = mlflow_utils.client(settings).get_run(state["mlflow_run_id"]).data.params
    assert params["n_params"] == str(info["n_params"])
    assert params["arch.vocab_size"] == "97"


def test_initialize_model_needs_vocab_size(settings: Settings) -> None:
    state = _state()
    state["data"] = {}
    with pytest.raises(StageError, match="vocab_size"):
        initialize_model(state, StageContext(settings=settings, run_id="t1"))
