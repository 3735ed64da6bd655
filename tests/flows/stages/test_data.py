"""prepare_data / validate_data and the processing behind them (flows/stages/dataset.py)."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from flows.config import PipelineConfig, merge_overrides
from flows.errors import DataValidationError
from flows.settings import Settings, get_settings
from flows.stages import mlflow_utils
from flows.stages.context import StageContext
from flows.stages.data import load_tokenizer, prepare_data, validate_data
from flows.stages.dataset import (
    PrepParams,
    build_atomically,
    dvc_dir_md5,
    dvc_file_md5,
    main,
    normalize_text,
    read_documents,
    split_documents,
    train_val_split,
    unigram_loss,
)
from flows.stages.state import PipelineState
from flows.stages.tokenizer import EOT, BPETokenizer, ByteTokenizer

ROOT = Path(__file__).resolve().parents[3]
CORPUS = ROOT / "data" / "tinyshakespeare.txt"
SEED_JOB = ROOT / "docs" / "examples" / "seed_job.json"
DOCS = split_documents(CORPUS.read_text(encoding="utf-8"))
DATA_KEYS = {
    "dataset_name", "source_path", "dvc_md5", "processed_md5", "cache_dir", "train_path",
    "val_path", "train_docs_path", "val_docs_path", "tokenizer_path", "tokenizer_kind",
    "vocab_size", "n_train_tokens", "n_val_tokens", "n_train_docs", "n_val_docs",
    "unigram_loss", "cache_hit",
}  # fmt: skip


class RecordingProgress:
    """A ProgressReporter that keeps what the stage reported, to assert on it."""

    def __init__(self) -> None:
        self.updates: list[tuple[str, int, int]] = []
        self.tables: dict[str, list[dict[str, Any]]] = {}

    def update(self, stage: str, done: int, total: int, metrics: Any = None) -> None:
        self.updates.append((stage, done, total))

    def close(self, stage: str) -> None:
        return None

    def record_table(self, key: str, rows: list[dict[str, Any]], description: str) -> None:
        self.tables[key] = rows

    def record_markdown(self, key: str, markdown: str, description: str) -> None:
        return None


def make_state(overrides: dict[str, Any] | None = None) -> PipelineState:
    """The seed example's pipeline_config with `overrides` deep-merged into it."""
    config = json.loads(SEED_JOB.read_text())["pipeline_config"]
    config = merge_overrides(config, overrides or {})
    return {"config": PipelineConfig.model_validate(config).model_dump(mode="json")}


def ctx_for(settings: Settings, progress: RecordingProgress | None = None) -> StageContext:
    return StageContext(settings=settings, run_id="t1", progress=progress or RecordingProgress())


@pytest.fixture
def use_corpus(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Callable[[str | bytes], Settings]:
    """Register a corpus as dataset 'test_corpus' in a fresh catalog; return the settings."""

    def _use(content: str | bytes) -> Settings:
        path = tmp_path / "corpus.txt"
        data = content.encode("utf-8") if isinstance(content, str) else content
        path.write_bytes(data)
        catalog = tmp_path / "catalog.yaml"
        catalog.write_text(yaml.safe_dump({"datasets": {"test_corpus": {"path": str(path)}}}))
        monkeypatch.setenv("LMCP_DATASET_CATALOG", str(catalog))
        get_settings.cache_clear()
        return get_settings()

    return _use


def corpus_state(overrides: dict[str, Any] | None = None) -> PipelineState:
    return make_state(merge_overrides({"data": {"dataset_name": "test_corpus"}}, overrides or {}))


# Text processing ---------------------------------------------------------------------
def test_normalize_text() -> None:
    raw = "\ufb01ne  \uff21ct\t\tone:  \r\nline two   \r\n\r\n\r\n\r\nnext\u00a0doc\n\n\n"
    assert normalize_text(raw) == "fine Act one:\nline two\n\nnext doc\n\n"
    assert normalize_text(normalize_text(raw)) == normalize_text(raw)


def test_split_documents_on_blank_lines() -> None:
    text = "\n\nA:\nhello\n\nB:\nworld\r\n \t\r\nC:\nbye\n\n\n\nD:\nend\n"
    assert split_documents(text) == ["A:\nhello", "B:\nworld", "C:\nbye", "D:\nend"]
    assert split_documents("") == []
    assert len(DOCS) == 7222  # speeches of the bundled corpus


def test_train_val_split_is_seeded_and_keeps_order() -> None:
    docs = [f"doc {i}" for i in range(1000)]
    train, val = train_val_split(docs, 0.2, seed=7)
    assert (len(train), len(val)) == (800, 200)
    assert sorted(train + val, key=docs.index) == docs and not set(train) & set(val)
    assert train == sorted(train, key=docs.index) and val == sorted(val, key=docs.index)
    assert train_val_split(docs, 0.2, seed=7) == (train, val)
    assert train_val_split(docs, 0.2, seed=8)[1] != val
    assert train_val_split(["only one"], 0.5, 1) == (["only one"], [])
    assert len(train_val_split(docs[:3], 0.01, 1)[1]) == 1  # at least one val document


# Tokenizers ------------------------------------------------------------------------
def test_byte_tokenizer_round_trip() -> None:
    tok = ByteTokenizer()
    text = "Hello, wörld ☃\n\nnext"
    assert tok.decode(tok.encode(text)) == text
    ids = tok.encode_documents(["ab", "c"])
    assert ids.dtype == np.uint16 and ids.tolist() == [97, 98, 10, 10, 99]


def test_bpe_tokenizer_round_trip_and_separator() -> None:
    train = DOCS[:2000]
    tok = BPETokenizer.train(train, vocab_size=400)
    assert tok.vocab_size == 400 and tok.eot_id == 0
    text = "Wherefore art thou, Ромео? ☃  <|endoftext|>\n\n"
    assert tok.decode(tok.encode(text)) == text
    held_out = "\n\n".join(DOCS[2000:2300])
    assert len(tok.encode(held_out)) < 0.7 * len(held_out.encode())  # merges compress
    ids = tok.encode_documents(DOCS[:5])
    assert int((ids == tok.eot_id).sum()) == 4
    assert tok.decode(ids) == EOT.join(DOCS[:5])
    again = BPETokenizer.train(train, vocab_size=400)  # deterministic training
    assert again.encode_documents(DOCS[:50]).tolist() == tok.encode_documents(DOCS[:50]).tolist()


# unigram baseline ------------------------------------------------------------------
def test_unigram_loss_by_hand() -> None:
    train, val = np.array([0, 0, 1]), np.array([0, 1])
    # add-one: p(0) = 3/5, p(1) = 2/5, p(2) = 0/5 + ... -> counts 3, 2, 1 over 6
    expected = -(math.log(3 / 6) + math.log(2 / 6)) / 2
    assert unigram_loss(train, val, 3) == pytest.approx(expected)
    assert unigram_loss(np.arange(4), np.arange(4), 4) == pytest.approx(math.log(4))
    assert unigram_loss(train, np.array([], dtype=np.int64), 3) is None


# prepare_data ------------------------------------------------------------------------
@pytest.mark.parametrize("tokenization", [True, False])
def test_prepare_data_full_corpus(settings: Settings, tokenization: bool) -> None:
    state = make_state({"data": {"preprocessing": {"tokenization": tokenization}}})
    progress = RecordingProgress()
    ctx = ctx_for(settings, progress)
    out = prepare_data(state, ctx)
    json.dumps(out)  # JSON-able state
    assert set(out) == {"mlflow_run_id", "data", "completed_stages"}
    assert out["completed_stages"] == ["prepare_data"]
    data = out["data"]
    assert set(data) == DATA_KEYS
    train, val = np.load(data["train_path"]), np.load(data["val_path"])
    assert train.dtype == val.dtype == np.uint16
    assert (len(train), len(val)) == (data["n_train_tokens"], data["n_val_tokens"])
    assert int(train.max()) < data["vocab_size"] and int(val.max()) < data["vocab_size"]
    assert data["n_train_docs"] + data["n_val_docs"] == len(DOCS)
    assert data["n_val_docs"] == round(0.2 * len(DOCS))
    assert 0 < data["unigram_loss"] < math.log(data["vocab_size"])
    assert Path(data["cache_dir"]).parent == settings.data_cache_dir
    tok = load_tokenizer(data)
    val_docs = read_documents(data["val_docs_path"])
    assert len(val_docs) == data["n_val_docs"]
    if tokenization:
        assert (data["tokenizer_kind"], data["vocab_size"]) == ("bpe", 512)
        assert tok.decode(val.tolist()) == EOT.join(val_docs)
        assert data["n_train_tokens"] < 0.5 * sum(len(d) for d in DOCS)
    else:
        assert (data["tokenizer_kind"], data["vocab_size"], data["tokenizer_path"]) == (
            "bytes", 256, None)  # fmt: skip
        assert tok.decode(val.tolist()) == "\n\n".join(val_docs)
    assert ("prepare_data", 5, 5) in progress.updates
    params = mlflow_utils.client(settings).get_run(out["mlflow_run_id"]).data.params
    assert params["data.dvc_md5"] == data["dvc_md5"]
    assert params["data.n_train_tokens"] == str(data["n_train_tokens"])
    assert params["data.vocab_size"] == str(data["vocab_size"])


def test_cache_is_reused_and_keyed_by_parameters(use_corpus: Callable[..., Settings]) -> None:
    settings = use_corpus("\n\n".join(DOCS[:400]))
    first = prepare_data(corpus_state(), ctx_for(settings))["data"]
    train_file = Path(first["train_path"])
    stat = train_file.stat()
    # Second call: same paths, files untouched (nothing re-tokenized or re-written).
    second = prepare_data(corpus_state(), ctx_for(settings))["data"]
    assert second["cache_hit"] and not first["cache_hit"]
    assert {k: v for k, v in second.items() if k != "cache_hit"} == {
        k: v for k, v in first.items() if k != "cache_hit"}  # fmt: skip
    assert (train_file.stat().st_mtime_ns, train_file.stat().st_ino) == (
        stat.st_mtime_ns, stat.st_ino)  # fmt: skip
    other = prepare_data(
        corpus_state({"training": {"seed": 1}}), ctx_for(settings))["data"]  # fmt: skip
    assert other["cache_dir"] != first["cache_dir"] and not other["cache_hit"]
    # An incomplete cache dir is rebuilt, not trusted.
    train_file.unlink()
    again = prepare_data(corpus_state(), ctx_for(settings))["data"]
    assert not again["cache_hit"] and train_file.is_file()
    assert again["processed_md5"] == first["processed_md5"]  # deterministic output


def test_concurrent_builder_keeps_the_finished_directory(tmp_path: Path) -> None:
    raw = tmp_path / "raw.txt"
    raw.write_text("\n\n".join(DOCS[:200]))
    params = PrepParams(tokenization=False)
    out = tmp_path / "cache" / "key"
    first = build_atomically(raw, params, out)
    inode = (out / "train.npy").stat().st_ino
    second = build_atomically(raw, params, out)  # loses the race: keeps the first result
    assert second == first and (out / "train.npy").stat().st_ino == inode
    assert [p.name for p in out.parent.iterdir()] == ["key"]  # no temp dirs left behind


def test_dvc_hashes_match_dvc_lock(settings: Settings) -> None:
    """The raw corpus hash (DVC's own hashing) is what dvc.lock records for the dependency;
    with the seed config (= params.yaml) the processed dir hash is dvc.lock's output hash."""
    lock = yaml.safe_load((ROOT / "dvc.lock").read_text())["stages"]["prepare_data"]
    dep_md5 = {d["path"]: d["md5"] for d in lock["deps"]}
    out_md5 = {o["path"]: o["md5"] for o in lock["outs"]}
    assert dvc_file_md5(CORPUS) == dep_md5["data/tinyshakespeare.txt"]
    params = yaml.safe_load((ROOT / "params.yaml").read_text())["prepare_data"]
    assert PrepParams.from_flat(params) == PrepParams.from_config(make_state()["config"])
    data = prepare_data(make_state(), ctx_for(settings))["data"]
    assert data["dvc_md5"] == dep_md5["data/tinyshakespeare.txt"]
    assert data["processed_md5"] == out_md5["data/processed"]


def test_cli_writes_outputs_and_metrics(tmp_path: Path) -> None:
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"prepare_data": {"tokenization": False, "seed": 3}}))
    out, metrics = tmp_path / "processed", tmp_path / "metrics.json"
    out.mkdir()
    (out / "stale.txt").write_text("from an older run")
    argv = ["--dataset", "training_data_v3", "--catalog", str(ROOT / "data" / "catalog.yaml"),
            "--params", str(params), "--out", str(out), "--metrics", str(metrics)]  # fmt: skip
    assert main(argv) == 0
    summary = json.loads(metrics.read_text())
    assert summary["vocab_size"] == 256
    assert summary["n_train_tokens"] == len(np.load(out / "train.npy"))
    assert not (out / "stale.txt").exists() and not (out / "tokenizer.json").exists()
    assert dvc_dir_md5(out).endswith(".dir")


# validate_data -----------------------------------------------------------------------
def test_validate_data_passes_and_records(settings: Settings) -> None:
    state = make_state({"data": {"preprocessing": {"tokenization": False}}})
    progress = RecordingProgress()
    ctx = ctx_for(settings, progress)
    state.update(prepare_data(state, ctx))  # type: ignore[typeddict-item]
    out = validate_data(state, ctx)
    assert set(out) == {"validation", "completed_stages"}
    checks = out["validation"]["checks"]
    assert out["validation"]["passed"] and all(c["passed"] for c in checks)
    assert [c["name"] for c in checks] == [
        "short_documents", "duplicate_documents", "train_tokens", "val_split",
        "char_coverage", "bad_characters"]  # fmt: skip
    assert progress.tables["data-validation"] == checks
    _assert_recorded_in_mlflow(settings, state["mlflow_run_id"], checks)


def _assert_recorded_in_mlflow(settings: Settings, run_id: str, checks: list[Any]) -> None:
    client = mlflow_utils.client(settings)
    path = client.download_artifacts(run_id, "validation/checks.json")
    assert json.loads(Path(path).read_text())["checks"] == checks
    metrics = client.get_run(run_id).data.metrics
    for c in checks:
        assert metrics[f"data_check.{c['name']}"] == pytest.approx(c["value"])


def _unique_short_docs(n: int) -> list[str]:
    letters = "abcdefghijklmnopqrstuvwxyz"
    return [f"{letters[i % 26]}{letters[i // 26 % 26]}." for i in range(n)]


BAD_DATA: dict[str, tuple[str | bytes, dict[str, Any], set[str]]] = {
    # name: (corpus, config overrides, the checks that must fail)
    "duplicates": ("\n\n".join(DOCS[:300] + DOCS[:100]), {}, {"duplicate_documents"}),
    "short_docs": ("\n\n".join(DOCS[:300] + _unique_short_docs(60)), {}, {"short_documents"}),
    "few_tokens": ("\n\n".join(DOCS[:40]), {"model": {"config": {"block_size": 256}}},
                   {"train_tokens"}),
    "tiny_val": ("\n\n".join(DOCS[:300]), {"training": {"validation_split": 0.01}},
                 {"val_split"}),
    "binary": ("\n\n".join(DOCS[:300]).encode() + b"\n\n\x00\x01\xff\xfe" * 100, {},
               {"bad_characters", "short_documents", "duplicate_documents"}),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(BAD_DATA))
def test_validate_data_fails_on_bad_data(use_corpus: Callable[..., Settings], case: str) -> None:
    corpus, overrides, expected = BAD_DATA[case]
    settings = use_corpus(corpus)
    state = corpus_state(overrides)
    progress = RecordingProgress()
    ctx = ctx_for(settings, progress)
    state.update(prepare_data(state, ctx))  # type: ignore[typeddict-item]
    with pytest.raises(DataValidationError) as err:
        validate_data(state, ctx)
    exc = err.value
    failed = {c["name"] for c in exc.details if not c["passed"]}
    assert failed == expected
    assert exc.stage == "validate_data" and exc.suggestion
    for name in expected:
        assert name in exc.message
    # The results were recorded before the error was raised.
    assert progress.tables["data-validation"] == exc.details
    _assert_recorded_in_mlflow(settings, state["mlflow_run_id"], exc.details)
