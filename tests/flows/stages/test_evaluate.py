"""The evaluate_model stage, on a model really trained by train_model (and an untrained one)."""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from flows.settings import Settings
from flows.stages import mlflow_utils
from flows.stages.context import ConsoleProgress, StageContext
from flows.stages.evaluate import evaluate_model, perplexity_skill, validation_batches
from flows.stages.model import initialize_model
from flows.stages.train import train_model
from tests.support.synthetic import VOCAB, synthetic_state


class TableRecorder(ConsoleProgress):
    """The console reporter, keeping the tables it is given so the test can read them."""

    def __init__(self) -> None:
        super().__init__(enabled=False)
        self.tables: dict[str, list[dict[str, Any]]] = {}

    def record_table(self, key: str, rows: list[dict[str, Any]], description: str) -> None:
        self.tables[key] = rows


def make_state(root: Path, threshold: float, metric: str = "perplexity_skill") -> dict[str, Any]:
    return synthetic_state(
        root,
        training={"max_steps": 250, "checkpoint_interval": 1000},
        evaluation={"performance_threshold": threshold, "metric": metric, "max_batches": 5},
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("eval")
    settings = Settings(state_dir=root / "state")
    ctx = StageContext(settings=settings, run_id="t1", progress=TableRecorder())
    state = make_state(root, threshold=0.5)
    state["mlflow_run_id"] = mlflow_utils.ensure_run(state, ctx)
    state.update(initialize_model(state, ctx))
    state.update(train_model(state, ctx))
    return {"state": state, "ctx": ctx}


def _with(state: dict[str, Any], **evaluation: Any) -> dict[str, Any]:
    out = copy.deepcopy(state)
    out["config"]["evaluation"].update(evaluation)
    return out


def test_trained_model_passes_and_metrics_are_consistent(trained: dict[str, Any]) -> None:
    state, ctx = trained["state"], trained["ctx"]
    ev = evaluate_model(state, ctx)["evaluation"]
    assert 0.0 < ev["val_loss"] < 0.3 * ev["unigram_loss"]  # far below the baseline
    assert ev["perplexity"] == pytest.approx(math.exp(ev["val_loss"]))
    assert 0.0 <= ev["accuracy"] <= ev["top5_accuracy"] <= 1.0
    assert ev["accuracy"] > 0.8
    assert ev["perplexity_skill"] == pytest.approx(
        1 - ev["perplexity"] / math.exp(ev["unigram_loss"])
    )
    assert ev["metric"] == "perplexity_skill" and ev["metric_value"] == ev["perplexity_skill"]
    assert ev["threshold"] == 0.5 and ev["passed"] is True
    assert Path(ev["loss_curve_path"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = {row["metric"]: row["value"] for row in ctx.progress.tables["evaluation"]}
    assert table["val_loss"] == pytest.approx(ev["val_loss"], abs=1e-4)


def test_unreachable_threshold_fails(trained: dict[str, Any]) -> None:
    # perplexity >= 1, so perplexity_skill <= 1 - 1/unigram perplexity < 1.
    state = _with(trained["state"], performance_threshold=1.0)
    ev = evaluate_model(state, trained["ctx"])["evaluation"]
    assert ev["passed"] is False and ev["metric_value"] < 1.0


def test_metric_choice_is_honoured(trained: dict[str, Any]) -> None:
    state = _with(trained["state"], metric="top5_accuracy", performance_threshold=0.9)
    ev = evaluate_model(state, trained["ctx"])["evaluation"]
    assert ev["metric_value"] == ev["top5_accuracy"]
    assert ev["passed"] is (ev["top5_accuracy"] >= 0.9)


def test_untrained_model_is_below_threshold(trained: dict[str, Any], settings: Settings) -> None:
    state = copy.deepcopy(trained["state"])
    state["training"]["weights_path"] = state["model"]["init_path"]
    state.pop("mlflow_run_id")
    ev = evaluate_model(state, StageContext(settings=settings, run_id="t2"))["evaluation"]
    assert ev["val_loss"] == pytest.approx(math.log(VOCAB), abs=0.3)
    assert ev["perplexity_skill"] < 0.1 and ev["passed"] is False


def test_mlflow_has_the_metrics_and_the_plot(trained: dict[str, Any]) -> None:
    state, ctx = trained["state"], trained["ctx"]
    ev = evaluate_model(state, ctx)["evaluation"]
    client = mlflow_utils.client(ctx.settings)
    metrics = client.get_run(state["mlflow_run_id"]).data.metrics
    for key in ("val_loss", "perplexity", "accuracy", "top5_accuracy", "perplexity_skill"):
        assert metrics[key] == pytest.approx(ev[key]), key
    plots = [a.path for a in client.list_artifacts(state["mlflow_run_id"], "plots")]
    assert plots == ["plots/loss_curve.png"]


def test_validation_batches_are_disjoint_and_deterministic() -> None:
    tokens = np.arange(1000, dtype=np.uint16)
    batches = list(validation_batches(tokens, block_size=10, batch_size=4, max_batches=3))
    assert len(batches) == 3
    starts = torch.cat([x[:, 0] for x, _ in batches]).tolist()
    assert len(set(starts)) == 12 and all(s % 10 == 0 for s in starts)
    assert starts[0] == 0 and starts[-1] == 980  # spread over the whole split
    again = list(validation_batches(tokens, 10, 4, 3))
    assert all(torch.equal(a[0], b[0]) for a, b in zip(batches, again, strict=True))
    x, y = batches[0]
    assert torch.equal(y - x, torch.ones_like(x))


def test_perplexity_skill_is_clipped() -> None:
    assert perplexity_skill(1.0, math.log(10)) == pytest.approx(0.9)
    assert perplexity_skill(50.0, math.log(10)) == 0.0
    assert perplexity_skill(10.0, math.log(10)) == pytest.approx(0.0)
