"""Config validation: the seed example passes verbatim; each bad input names its field."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from flows.config import PipelineConfig, merge_overrides, parse_pipeline_config
from flows.errors import ConfigError

SEED = json.loads((Path(__file__).parents[2] / "docs/examples/seed_job.json").read_text())


def seed_config() -> dict[str, Any]:
    return copy.deepcopy(SEED["pipeline_config"])


def with_change(path: str, value: Any) -> dict[str, Any]:
    cfg = seed_config()
    *parents, leaf = path.split(".")
    node = cfg
    for key in parents:
        node = node.setdefault(key, {})
    node[leaf] = value
    return cfg


def fields_of(exc: ConfigError) -> list[str]:
    return [e["field"] for e in exc.errors]


def test_seed_example_validates_verbatim() -> None:
    config = parse_pipeline_config(seed_config())
    assert config.data.dataset_name == "training_data_v3"
    assert config.model.config.learning_rate == 0.001
    assert config.model.config.batch_size == 32
    assert config.training.epochs == 10
    assert config.training.validation_split == 0.2
    assert config.evaluation.performance_threshold == 0.8


def test_defaults_are_filled_and_hash_is_stable() -> None:
    a = parse_pipeline_config(seed_config())
    b = PipelineConfig.model_validate(seed_config())
    assert a.config_hash() == b.config_hash()
    assert a.training.zero_stage == 0 and a.training.max_steps is None
    changed = parse_pipeline_config(with_change("training.seed", 7))
    assert changed.config_hash() != a.config_hash()


def test_unknown_dataset_lists_known_ones() -> None:
    with pytest.raises(ConfigError) as err:
        parse_pipeline_config(with_change("data.dataset_name", "nope"))
    assert fields_of(err.value) == ["pipeline_config.data.dataset_name"]
    assert "training_data_v3" in err.value.errors[0]["message"]


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        ("model.config.learning_rate", -0.001, "pipeline_config.model.config.learning_rate"),
        ("model.config.learning_rate", 0, "pipeline_config.model.config.learning_rate"),
        ("model.config.batch_size", 0, "pipeline_config.model.config.batch_size"),
        ("model.config.batch_size", -4, "pipeline_config.model.config.batch_size"),
        ("training.validation_split", 0.0, "pipeline_config.training.validation_split"),
        ("training.validation_split", 1.0, "pipeline_config.training.validation_split"),
        ("training.validation_split", 1.5, "pipeline_config.training.validation_split"),
        ("model.type", "lstm", "pipeline_config.model.type"),
        ("training.zero_stage", 4, "pipeline_config.training.zero_stage"),
        (
            "evaluation.performance_threshold",
            1.2,
            "pipeline_config.evaluation.performance_threshold",
        ),
        ("evaluation.metric", "bleu", "pipeline_config.evaluation.metric"),
        ("model.name", "bad name!", "pipeline_config.model.name"),
    ],
)
def test_bad_values_name_their_field(path: str, value: Any, field: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_pipeline_config(with_change(path, value))
    assert fields_of(err.value) == [field]
    assert field in str(err.value)


def test_unknown_model_type_lists_known_types() -> None:
    with pytest.raises(ConfigError) as err:
        parse_pipeline_config(with_change("model.type", "lstm"))
    assert "transformer" in err.value.errors[0]["message"]


@pytest.mark.parametrize(
    "path", ["extra", "model.config.lr", "training.epoch", "data.preprocessing.lower"]
)
def test_unknown_fields_are_refused(path: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_pipeline_config(with_change(path, 1))
    assert err.value.errors == [{"field": f"pipeline_config.{path}", "message": "unknown field"}]


def test_heads_must_divide_width() -> None:
    cfg = with_change("model.config.n_embd", 100)
    cfg["model"]["config"]["n_head"] = 3
    with pytest.raises(ConfigError) as err:
        parse_pipeline_config(cfg)
    assert fields_of(err.value) == ["pipeline_config.model.config"]
    assert "divisible" in str(err.value)


def test_every_error_is_reported_at_once() -> None:
    cfg = with_change("model.config.learning_rate", -1)
    cfg["training"]["validation_split"] = 2
    with pytest.raises(ConfigError) as err:
        parse_pipeline_config(cfg)
    assert set(fields_of(err.value)) == {
        "pipeline_config.model.config.learning_rate",
        "pipeline_config.training.validation_split",
    }


def test_missing_required_sections() -> None:
    with pytest.raises(ConfigError) as err:
        parse_pipeline_config({"data": {"dataset_name": "training_data_v3"}})
    assert fields_of(err.value) == ["pipeline_config.model"]


def test_merge_overrides_is_deep_and_validated() -> None:
    merged = merge_overrides(seed_config(), {"training": {"max_steps": 5}})
    assert merged["training"] == {"epochs": 10, "validation_split": 0.2, "max_steps": 5}
    assert parse_pipeline_config(merged).training.max_steps == 5
    with pytest.raises(ConfigError):
        parse_pipeline_config(
            merge_overrides(seed_config(), {"model": {"config": {"learning_rate": -1}}})
        )
