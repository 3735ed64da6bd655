"""Data quality checks run by validate_data. Pure functions over documents and token ids.

Each check returns a JSON-able dict:
    {"name", "passed", "level" ("ok" | "warn" | "fail"), "value", "threshold", "message"}
`passed` is False only for level "fail"; a warning is recorded but does not stop the run.

Thresholds (module constants below) were chosen from the bundled Tiny Shakespeare corpus,
which must pass with a wide margin: 0.9% of its documents are shorter than 10 characters
(speaker names on their own), 1.0% are duplicates, 99.9995% of validation characters occur
in the training split (one '$' does not), and it has no control or replacement characters.
"""

from __future__ import annotations

import unicodedata
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

Check = dict[str, Any]

MIN_DOC_CHARS = 10
"""A document with fewer non-whitespace characters than this is 'empty or too short'."""
MAX_SHORT_DOC_RATIO = 0.05
"""Fail when more than 5% of all documents are empty or too short."""
MAX_DUPLICATE_RATIO = 0.05
"""Fail when more than 5% of all documents are exact repeats of an earlier document."""
MIN_TRAIN_BATCHES = 1
"""Fail when the train split cannot fill one batch of (block_size + 1)-token windows."""
WARN_TRAIN_BATCHES = 10
"""Warn when the train split holds fewer than 10 such batches (the model will overfit)."""
MIN_VAL_DOCS = 5
"""Fail when the validation split has fewer documents (its loss would be too noisy)."""
MIN_CHAR_COVERAGE = 0.999
"""Fail when less than 99.9% of validation characters occur in the train split."""
MIN_VOCAB_USAGE = 0.5
"""BPE only: fail when less than half of the learned (merged) tokens occur in the train
token stream: the vocabulary is too large for the corpus."""
MAX_BAD_CHAR_RATIO = 0.001
"""Fail when more than 0.1% of characters are control characters (other than newline,
tab, carriage return) or U+FFFD, the replacement for bytes that were not valid UTF-8."""

SUGGESTIONS = {
    "short_documents": "Remove empty/very short documents from the corpus, or join short "
    "blocks (documents are separated by blank lines).",
    "duplicate_documents": "De-duplicate the corpus (exact repeats inflate the training data "
    "and leak into the validation split).",
    "train_tokens": "Use a larger corpus, a smaller model.config.block_size or "
    "model.config.batch_size, or a smaller training.validation_split.",
    "val_split": "Increase training.validation_split, reduce model.config.block_size, or use "
    "a corpus with more documents (separated by blank lines).",
    "char_coverage": "The validation split uses characters the training split never shows; "
    "enable data.preprocessing.normalization or use a more homogeneous corpus.",
    "vocab_usage": "Lower data.preprocessing.vocab_size (the BPE learned tokens the corpus "
    "barely uses) or use a larger corpus.",
    "bad_characters": "The corpus contains control characters or invalid UTF-8; re-encode it "
    "as UTF-8 text and strip binary content.",
}


def _result(
    name: str, level: str, value: float | int, threshold: float | int, message: str
) -> Check:
    return {
        "name": name,
        "passed": level != "fail",
        "level": level,
        "value": value,
        "threshold": threshold,
        "message": message,
    }


def check_short_documents(docs: Sequence[str]) -> Check:
    """Share of documents with fewer than MIN_DOC_CHARS non-whitespace characters."""
    if not docs:
        return _result("short_documents", "fail", 1.0, MAX_SHORT_DOC_RATIO, "no documents")
    short = sum(1 for d in docs if len("".join(d.split())) < MIN_DOC_CHARS)
    ratio = short / len(docs)
    level = "fail" if ratio > MAX_SHORT_DOC_RATIO else "ok"
    msg = (
        f"{short}/{len(docs)} documents ({ratio:.2%}) are empty or shorter than "
        f"{MIN_DOC_CHARS} characters (max {MAX_SHORT_DOC_RATIO:.0%})"
    )
    return _result("short_documents", level, round(ratio, 6), MAX_SHORT_DOC_RATIO, msg)


def check_duplicates(train_docs: Sequence[str], val_docs: Sequence[str]) -> Check:
    """Share of documents that repeat an earlier one; also counts val docs seen in train."""
    docs = [*train_docs, *val_docs]
    if not docs:
        return _result("duplicate_documents", "fail", 1.0, MAX_DUPLICATE_RATIO, "no documents")
    counts = Counter(d.strip() for d in docs)
    repeats = len(docs) - len(counts)
    ratio = repeats / len(docs)
    train_set = {d.strip() for d in train_docs}
    leaked = sum(1 for d in val_docs if d.strip() in train_set)
    level = "fail" if ratio > MAX_DUPLICATE_RATIO else "ok"
    msg = (
        f"{repeats}/{len(docs)} documents ({ratio:.2%}) are duplicates "
        f"(max {MAX_DUPLICATE_RATIO:.0%}); {leaked} validation documents also occur in train"
    )
    return _result("duplicate_documents", level, round(ratio, 6), MAX_DUPLICATE_RATIO, msg)


def check_train_tokens(n_train_tokens: int, block_size: int, batch_size: int) -> Check:
    """Training tokens vs one batch of (block_size + 1)-token windows."""
    per_batch = batch_size * (block_size + 1)
    need, warn_at = MIN_TRAIN_BATCHES * per_batch, WARN_TRAIN_BATCHES * per_batch
    if n_train_tokens < need:
        level = "fail"
        msg = (
            f"train split has {n_train_tokens} tokens; one batch of {batch_size} windows of "
            f"{block_size + 1} tokens needs {need}"
        )
    elif n_train_tokens < warn_at:
        level = "warn"
        msg = (
            f"train split has {n_train_tokens} tokens, fewer than {WARN_TRAIN_BATCHES} "
            f"batches ({warn_at}); expect overfitting"
        )
    else:
        level = "ok"
        msg = f"train split has {n_train_tokens} tokens = {n_train_tokens / per_batch:.1f} batches"
    return _result("train_tokens", level, int(n_train_tokens), need, msg)


def check_val_split(n_val_tokens: int, n_val_docs: int, block_size: int) -> Check:
    """The validation split must hold one full window and MIN_VAL_DOCS documents."""
    need = block_size + 1
    problems = []
    if n_val_tokens < need:
        problems.append(f"{n_val_tokens} tokens < one window of {need}")
    if n_val_docs < MIN_VAL_DOCS:
        problems.append(f"{n_val_docs} documents < {MIN_VAL_DOCS}")
    if problems:
        msg = "validation split too small: " + "; ".join(problems)
    else:
        msg = f"validation split has {n_val_tokens} tokens in {n_val_docs} documents"
    return _result("val_split", "fail" if problems else "ok", int(n_val_tokens), need, msg)


def check_char_coverage(train_docs: Sequence[str], val_docs: Sequence[str]) -> Check:
    """Fraction of validation characters whose character occurs in the train split."""
    alphabet: set[str] = set()
    for d in train_docs:
        alphabet.update(d)
    val_counts: Counter[str] = Counter()
    for d in val_docs:
        val_counts.update(d)
    total = sum(val_counts.values())
    if total == 0:
        return _result("char_coverage", "fail", 0.0, MIN_CHAR_COVERAGE, "validation text is empty")
    unseen = {ch: n for ch, n in val_counts.items() if ch not in alphabet}
    coverage = 1.0 - sum(unseen.values()) / total
    level = "fail" if coverage < MIN_CHAR_COVERAGE else "ok"
    examples = "".join(sorted(unseen)[:10])
    msg = f"{coverage:.4%} of validation characters occur in train (min {MIN_CHAR_COVERAGE:.1%})"
    if unseen:
        msg += f"; {len(unseen)} unseen characters, e.g. {examples!r}"
    return _result("char_coverage", level, round(coverage, 6), MIN_CHAR_COVERAGE, msg)


def check_vocab_usage(train_ids: np.ndarray, vocab_size: int, n_fixed: int = 257) -> Check:
    """BPE: fraction of learned tokens (ids >= n_fixed: past the special token and the 256
    byte alphabet) that occur in the train token stream."""
    learned = vocab_size - n_fixed
    if learned <= 0:
        msg = f"vocabulary of {vocab_size} has no learned tokens beyond the byte alphabet"
        return _result("vocab_usage", "fail", 0.0, MIN_VOCAB_USAGE, msg)
    ids = np.asarray(train_ids, dtype=np.int64)
    used = int(np.count_nonzero(np.bincount(ids, minlength=vocab_size)[n_fixed:vocab_size]))
    usage = used / learned
    level = "fail" if usage < MIN_VOCAB_USAGE else "ok"
    msg = (
        f"{used}/{learned} learned tokens ({usage:.1%}) occur in train (min {MIN_VOCAB_USAGE:.0%})"
    )
    return _result("vocab_usage", level, round(usage, 6), MIN_VOCAB_USAGE, msg)


def _is_bad_char(ch: str) -> bool:
    return ch == "\ufffd" or (unicodedata.category(ch) == "Cc" and ch not in "\n\t\r")


def check_bad_characters(docs: Sequence[str]) -> Check:
    """Share of characters that are control characters or U+FFFD (undecodable bytes)."""
    counts: Counter[str] = Counter()
    for d in docs:
        counts.update(d)
    total = sum(counts.values())
    bad = sum(n for ch, n in counts.items() if _is_bad_char(ch))
    ratio = bad / total if total else 0.0
    level = "fail" if ratio > MAX_BAD_CHAR_RATIO else "ok"
    msg = (
        f"{bad}/{total} characters ({ratio:.3%}) are control characters or invalid UTF-8 "
        f"(max {MAX_BAD_CHAR_RATIO:.1%})"
    )
    return _result("bad_characters", level, round(ratio, 6), MAX_BAD_CHAR_RATIO, msg)


def run_checks(
    *,
    train_docs: Sequence[str],
    val_docs: Sequence[str],
    train_ids: np.ndarray,
    n_val_tokens: int,
    tokenizer_kind: str,
    vocab_size: int,
    block_size: int,
    batch_size: int,
) -> list[Check]:
    """Every check, in a fixed order. The vocabulary-usage check applies to BPE only."""
    all_docs = [*train_docs, *val_docs]
    checks = [
        check_short_documents(all_docs),
        check_duplicates(train_docs, val_docs),
        check_train_tokens(len(train_ids), block_size, batch_size),
        check_val_split(n_val_tokens, len(val_docs), block_size),
        check_char_coverage(train_docs, val_docs),
        check_bad_characters(all_docs),
    ]
    if tokenizer_kind == "bpe":
        checks.append(check_vocab_usage(train_ids, vocab_size))
    return checks


def failure_summary(checks: Sequence[Check]) -> tuple[str, str]:
    """(message naming each failed check and why, suggestion for each) for the error."""
    failed = [c for c in checks if not c["passed"]]
    message = f"{len(failed)} data check(s) failed: " + "; ".join(
        f"{c['name']}: {c['message']}" for c in failed
    )
    suggestion = " ".join(SUGGESTIONS.get(c["name"], "") for c in failed).strip()
    return message, suggestion
