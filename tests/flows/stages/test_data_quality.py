"""Every data quality check of validate_data, on good and on deliberately bad inputs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from flows.stages import quality as q
from flows.stages.dataset import normalize_text, split_documents, train_val_split

CORPUS = Path(__file__).resolve().parents[3] / "data" / "tinyshakespeare.txt"


def _shakespeare_split() -> tuple[list[str], list[str]]:
    docs = split_documents(normalize_text(CORPUS.read_text(encoding="utf-8")))
    return train_val_split(docs, 0.2, 1337)


def test_checks_have_the_documented_shape() -> None:
    check = q.check_val_split(1000, 10, 128)
    assert set(check) == {"name", "passed", "level", "value", "threshold", "message"}
    json.dumps(check)  # JSON-able


def test_bundled_corpus_passes_every_check_with_margin() -> None:
    train, val = _shakespeare_split()
    assert q.check_short_documents(train + val)["value"] < q.MAX_SHORT_DOC_RATIO / 2
    assert q.check_duplicates(train, val)["value"] < q.MAX_DUPLICATE_RATIO / 2
    assert 1 - q.check_char_coverage(train, val)["value"] < (1 - q.MIN_CHAR_COVERAGE) / 2
    assert q.check_bad_characters(train + val)["value"] == 0.0


def test_short_documents() -> None:
    good = [f"Speaker {i}:\nA line long enough to count." for i in range(100)]
    assert q.check_short_documents(good)["passed"]
    empty = ["", "   ", "\u3000\t", "ok.", "Ay."]  # whitespace-only and too short
    bad = q.check_short_documents(good[:20] + empty)
    assert not bad["passed"] and bad["level"] == "fail"
    assert bad["value"] == round(5 / 25, 6)
    assert not q.check_short_documents([])["passed"]


def test_duplicates_and_leakage() -> None:
    train = [f"document number {i}" for i in range(100)]
    ok = q.check_duplicates(train, [f"held-out document {i}" for i in range(20)])
    assert ok["passed"] and ok["value"] == 0.0
    bad = q.check_duplicates(train, train[:20])  # every val doc is a train doc
    assert not bad["passed"]
    assert bad["value"] == round(20 / 120, 6)
    assert "20 validation documents also occur in train" in bad["message"]


def test_train_tokens_fail_warn_ok() -> None:
    block, batch = 128, 32
    need = batch * (block + 1)
    fail = q.check_train_tokens(need - 1, block, batch)
    warn = q.check_train_tokens(need, block, batch)
    ok = q.check_train_tokens(q.WARN_TRAIN_BATCHES * need, block, batch)
    assert (fail["level"], fail["passed"], fail["threshold"]) == ("fail", False, need)
    assert (warn["level"], warn["passed"]) == ("warn", True)
    assert (ok["level"], ok["passed"]) == ("ok", True)


def test_val_split_needs_a_window_and_enough_documents() -> None:
    assert q.check_val_split(129, q.MIN_VAL_DOCS, 128)["passed"]
    few_tokens = q.check_val_split(128, 50, 128)
    assert not few_tokens["passed"] and "one window of 129" in few_tokens["message"]
    few_docs = q.check_val_split(10_000, q.MIN_VAL_DOCS - 1, 128)
    assert not few_docs["passed"] and "documents" in few_docs["message"]


def test_char_coverage() -> None:
    train = ["the quick brown fox", "jumps over the lazy dog"]
    assert q.check_char_coverage(train, ["a lazy fox"])["value"] == 1.0
    bad = q.check_char_coverage(train, ["ΑΒΓΔ and the fox"])  # Greek letters unseen in train
    assert not bad["passed"]
    assert bad["value"] == round(1 - 4 / 16, 6)
    assert "unseen" in bad["message"]
    assert not q.check_char_coverage(train, [])["passed"]


def test_bad_characters() -> None:
    assert q.check_bad_characters(["tabs\tand\r\nnewlines are fine"])["passed"]
    bad = q.check_bad_characters(["binary \x00\x01\x02 junk \ufffd\ufffd" * 10])
    assert not bad["passed"] and bad["value"] > q.MAX_BAD_CHAR_RATIO


def test_vocab_usage() -> None:
    vocab = 257 + 100  # special + 256 bytes + 100 learned tokens
    used_all = np.arange(257, vocab, dtype=np.uint16)
    assert q.check_vocab_usage(used_all, vocab)["value"] == 1.0
    used_few = np.array([1, 2, 3, 257, 258], dtype=np.uint16)  # 2 of 100 learned tokens
    bad = q.check_vocab_usage(used_few, vocab)
    assert not bad["passed"] and bad["value"] == 0.02
    assert not q.check_vocab_usage(used_few, 257)["passed"]  # nothing learned at all


def test_run_checks_adds_vocab_usage_for_bpe_only() -> None:
    train, val = ["some text " * 50] * 1, ["more text " * 5] * 6
    common: dict[str, Any] = {
        "train_docs": train,
        "val_docs": val,
        "train_ids": np.zeros(600, np.uint16),
        "n_val_tokens": 300,
        "vocab_size": 300,
        "block_size": 16,
        "batch_size": 2,
    }
    names_bytes = [c["name"] for c in q.run_checks(tokenizer_kind="bytes", **common)]
    names_bpe = [c["name"] for c in q.run_checks(tokenizer_kind="bpe", **common)]
    assert "vocab_usage" not in names_bytes
    assert names_bpe == [*names_bytes, "vocab_usage"]


def test_failure_summary_names_each_failed_check_and_suggests_a_fix() -> None:
    checks = [q.check_val_split(5, 1, 128), q.check_char_coverage(["ab"], ["ab"])]
    message, suggestion = q.failure_summary(checks)
    assert message.startswith("1 data check(s) failed: val_split:")
    assert suggestion == q.SUGGESTIONS["val_split"]
