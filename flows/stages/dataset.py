"""Processing behind prepare_data (and the DVC stage): raw text -> token arrays. No MLflow.

  normalize (optional) -> split into documents (blocks separated by blank lines)
  -> seeded train/val split of documents -> tokenizer (BPE trained on train only, or
  bytes) -> train.npy / val.npy (uint16) + tokenizer.json + *_docs.txt + meta.json.

prepare_data keeps the result in a content-addressed cache dir, `<data_cache_dir>/<key>`,
where the key hashes the raw data's md5, the parameters and CODE_VERSION, so the same
inputs reuse it. Every file is deterministic: the cache dir's DVC hash equals the hash
`dvc repro` records in dvc.lock for `data/processed` when the parameters match params.yaml.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import tempfile
import unicodedata
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from flows.catalog import resolve_dataset
from flows.config import Preprocessing, TrainingConfig
from flows.stages.tokenizer import BPETokenizer, TextTokenizer, train_tokenizer

CODE_VERSION = "prepare-data-1"
"""Bump when a change to this module or tokenizer.py changes the processed output
(it is part of the cache key)."""

FILES = {
    "train": "train.npy",
    "val": "val.npy",
    "train_docs": "train_docs.txt",
    "val_docs": "val_docs.txt",
    "tokenizer": "tokenizer.json",
    "meta": "meta.json",
}
_PRE_KEYS = ("tokenization", "normalization", "vocab_size")
_SPLIT_KEYS = ("validation_split", "seed")
_DOC_SEPARATOR = re.compile(r"\r?\n(?:[ \t]*\r?\n)+")  # a blank (or blank-looking) line


@dataclass(frozen=True)
class PrepParams:
    """Everything besides the raw bytes that determines the processed output."""

    tokenization: bool = True
    normalization: bool = True
    vocab_size: int = 512
    validation_split: float = 0.2
    seed: int = 1337

    @property
    def tokenizer_kind(self) -> str:
        return "bpe" if self.tokenization else "bytes"

    @classmethod
    def from_flat(cls, values: Mapping[str, Any]) -> PrepParams:
        """Validated (same bounds as PipelineConfig) from a flat mapping such as the
        `prepare_data` section of params.yaml; absent keys take the config defaults."""
        pre = Preprocessing.model_validate({k: values[k] for k in _PRE_KEYS if k in values})
        split = TrainingConfig.model_validate({k: values[k] for k in _SPLIT_KEYS if k in values})
        return cls(
            pre.tokenization, pre.normalization, pre.vocab_size, split.validation_split, split.seed
        )

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> PrepParams:
        """From a PipelineConfig dump (`state["config"]`)."""
        pre = config.get("data", {}).get("preprocessing", {})
        return cls.from_flat({**config.get("training", {}), **pre})


# Text -> documents -> split ------------------------------------------------------------
def normalize_text(text: str) -> str:
    """NFKC; CRLF/CR -> LF; trailing spaces stripped; space/tab runs -> one space;
    3+ newlines -> one blank line."""
    text = unicodedata.normalize("NFKC", text)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = re.sub(r"[ \t]+$", "", text, flags=re.MULTILINE)
    text = re.sub(r"[ \t]{2,}", " ", text)
    return re.sub(r"\n{3,}", "\n\n", text)


def split_documents(text: str) -> list[str]:
    """Documents are blocks separated by blank lines (for Tiny Shakespeare: speeches)."""
    return [doc for doc in _DOC_SEPARATOR.split(text.strip("\r\n")) if doc]


def train_val_split(
    docs: Sequence[str], validation_split: float, seed: int
) -> tuple[list[str], list[str]]:
    """Seeded shuffle picks round(n * validation_split) documents (at least 1, at most n-1)
    for validation; both splits keep the original document order."""
    n = len(docs)
    n_val = min(max(round(n * validation_split), 1), n - 1) if n >= 2 else 0
    val_idx = set(np.random.default_rng(seed).permutation(n)[:n_val].tolist())
    train = [d for i, d in enumerate(docs) if i not in val_idx]
    val = [d for i, d in enumerate(docs) if i in val_idx]
    return train, val


def read_documents(path: str | Path) -> list[str]:
    """Read a *_docs.txt file written by prepare_data back into documents."""
    return split_documents(Path(path).read_text(encoding="utf-8"))


# Hashes and the baseline ------------------------------------------------------------
def dvc_file_md5(path: str | Path) -> str:
    """DVC's content hash of a file (what dvc.lock records for it), via DVC's hashing."""
    from dvc_data.hashfile.hash import file_md5

    return str(file_md5(os.fspath(path)))


def dvc_dir_md5(path: str | Path) -> str:
    """DVC's hash of a directory ("<md5>.dir", as in dvc.lock outs), via DVC's Tree."""
    from dvc_data.hashfile.hash_info import HashInfo
    from dvc_data.hashfile.meta import Meta
    from dvc_data.hashfile.tree import Tree

    root = Path(path)
    tree = Tree()
    for file in sorted(p for p in root.rglob("*") if p.is_file()):
        key = tuple(file.relative_to(root).parts)
        tree.add(key, Meta(size=file.stat().st_size), HashInfo("md5", dvc_file_md5(file)))
    tree.digest()
    return str(tree.hash_info.value)


def unigram_loss(train_ids: np.ndarray, val_ids: np.ndarray, vocab_size: int) -> float | None:
    """Cross-entropy (nats/token) on val of the add-one-smoothed unigram distribution of
    train: the loss of a model that ignores context. None when val is empty."""
    if len(val_ids) == 0:
        return None
    counts = np.bincount(np.asarray(train_ids, dtype=np.int64), minlength=vocab_size) + 1.0
    log_p = np.log(counts[:vocab_size] / counts[:vocab_size].sum())
    return float(-log_p[np.asarray(val_ids, dtype=np.int64)].mean())


# Building the processed directory ---------------------------------------------------
Progress = Callable[[str], None]


def _write_docs(path: Path, docs: Sequence[str]) -> None:
    path.write_text("\n\n".join(docs) + ("\n" if docs else ""), encoding="utf-8")


def build_processed(
    raw_path: Path, params: PrepParams, out_dir: Path, progress: Progress | None = None
) -> dict[str, Any]:
    """Write every processed file into `out_dir` (which must exist); return meta."""
    step = progress or (lambda _name: None)
    text = raw_path.read_bytes().decode("utf-8", errors="replace")
    if params.normalization:
        text = normalize_text(text)
    train_docs, val_docs = train_val_split(
        split_documents(text), params.validation_split, params.seed
    )
    step("tokenizer")
    tok: TextTokenizer = train_tokenizer(params.tokenizer_kind, train_docs, params.vocab_size)
    step("encode")
    train_ids, val_ids = tok.encode_documents(train_docs), tok.encode_documents(val_docs)
    np.save(out_dir / FILES["train"], train_ids)
    np.save(out_dir / FILES["val"], val_ids)
    if isinstance(tok, BPETokenizer):
        tok.save(out_dir / FILES["tokenizer"])
    _write_docs(out_dir / FILES["train_docs"], train_docs)
    _write_docs(out_dir / FILES["val_docs"], val_docs)
    loss = unigram_loss(train_ids, val_ids, tok.vocab_size)
    meta = {
        "code_version": CODE_VERSION,
        "params": asdict(params),
        "raw_md5": dvc_file_md5(raw_path),
        "tokenizer_kind": tok.kind,
        "vocab_size": tok.vocab_size,
        "n_train_tokens": len(train_ids),
        "n_val_tokens": len(val_ids),
        "n_train_docs": len(train_docs),
        "n_val_docs": len(val_docs),
        # rounded so the file (and the directory hash) is the same on every machine
        "unigram_loss": None if loss is None else round(loss, 6),
        "train_md5": hashlib.md5(train_ids.tobytes()).hexdigest(),
        "val_md5": hashlib.md5(val_ids.tobytes()).hexdigest(),
    }
    (out_dir / FILES["meta"]).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return meta


def cache_key(raw_md5: str, params: PrepParams) -> str:
    blob = json.dumps(
        {"raw_md5": raw_md5, "params": asdict(params), "code": CODE_VERSION}, sort_keys=True
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def _complete(out_dir: Path) -> dict[str, Any] | None:
    """meta of a finished processed dir, or None when it is missing or incomplete."""
    meta_file = out_dir / FILES["meta"]
    if not meta_file.is_file():
        return None
    meta: dict[str, Any] = json.loads(meta_file.read_text())
    needed = ["train", "val", "train_docs", "val_docs"]
    needed += ["tokenizer"] if meta.get("tokenizer_kind") == "bpe" else []
    return meta if all((out_dir / FILES[k]).is_file() for k in needed) else None


def _remove_dir(path: Path) -> None:
    """Move a directory aside (atomic), then delete it."""
    trash = path.with_name(f".trash-{path.name}-{uuid.uuid4().hex[:8]}")
    os.replace(path, trash)
    shutil.rmtree(trash, ignore_errors=True)


def build_atomically(
    raw_path: Path,
    params: PrepParams,
    out_dir: Path,
    progress: Progress | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """build_processed into a temp dir next to `out_dir`, then os.replace it into place.
    An incomplete `out_dir` (or any, with `overwrite`) is replaced. If a concurrent run
    finished the same content-addressed dir first, theirs is kept (it is identical)."""
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{out_dir.name}-", dir=out_dir.parent))
    os.chmod(tmp, 0o755)  # mkdtemp makes it private; the result is shared data
    try:
        meta = build_processed(raw_path, params, tmp, progress)
        if out_dir.exists() and (overwrite or _complete(out_dir) is None):
            _remove_dir(out_dir)
        try:
            os.replace(tmp, out_dir)
        except OSError:  # out_dir appeared meanwhile (a concurrent run won the race)
            existing = _complete(out_dir)
            if existing is None:
                raise
            meta = existing
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return meta


def prepare_cached(
    raw_path: Path, params: PrepParams, cache_root: Path, progress: Progress | None = None
) -> tuple[Path, dict[str, Any], bool]:
    """(cache dir, meta, cache_hit): reuse `<cache_root>/<key>` or build it."""
    out_dir = cache_root / cache_key(dvc_file_md5(raw_path), params)
    meta = _complete(out_dir)
    if meta is not None:
        return out_dir, meta, True
    return out_dir, build_atomically(raw_path, params, out_dir, progress), False


# DVC entry point ----------------------------------------------------------------------
METRIC_KEYS = (
    "n_train_tokens",
    "n_val_tokens",
    "n_train_docs",
    "n_val_docs",
    "vocab_size",
    "unigram_loss",
)


def main(argv: list[str] | None = None) -> int:
    """`dvc repro` runs this: build the processed dataset into --out, metrics to --metrics."""
    ap = argparse.ArgumentParser(prog="python -m flows.stages.data", description=main.__doc__)
    ap.add_argument("--dataset", required=True, help="dataset name from the catalog")
    ap.add_argument("--out", required=True, type=Path, help="output directory (replaced)")
    ap.add_argument(
        "--params",
        type=Path,
        default=Path("params.yaml"),
        help="YAML file whose `prepare_data` section holds the parameters",
    )
    ap.add_argument("--catalog", type=Path, default=Path("data/catalog.yaml"))
    ap.add_argument("--metrics", type=Path, help="small JSON file with token counts")
    args = ap.parse_args(argv)
    section = (yaml.safe_load(args.params.read_text()) or {}).get("prepare_data") or {}
    params = PrepParams.from_flat(section)
    dataset = resolve_dataset(args.dataset, args.catalog.resolve())
    meta = build_atomically(dataset.path, params, args.out.resolve(), overwrite=True)
    summary = {k: meta[k] for k in METRIC_KEYS}
    if args.metrics:
        args.metrics.write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    print(json.dumps({"dataset": args.dataset, "dvc_md5": meta["raw_md5"], **summary}))
    return 0
