"""Tokenizers for prepare_data: a byte-level BPE trained offline, or raw UTF-8 bytes.

Both kinds expose the same small interface (`encode`, `decode`, `encode_documents`,
`vocab_size`, `kind`), so later stages (sample generation, drift and feedback
features) never need to know which one a run used: see `load_tokenizer`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

EOT = "<|endoftext|>"  # separator between documents in the BPE token stream
BYTE_SEPARATOR = "\n\n"  # separator between documents in the byte stream
BYTE_VOCAB_SIZE = 256
BPE_MIN_FREQUENCY = 2  # a pair must occur at least twice in the train split to merge
TOKEN_DTYPE = np.uint16  # ids are stored as uint16, so vocabularies are capped at 65536


class TextTokenizer(Protocol):
    kind: str
    vocab_size: int

    def encode(self, text: str) -> list[int]: ...

    def decode(self, ids: Iterable[int]) -> str: ...

    def encode_documents(self, docs: Sequence[str]) -> np.ndarray: ...


class ByteTokenizer:
    """UTF-8 bytes as tokens (vocabulary of 256); documents joined by a blank line."""

    kind = "bytes"
    vocab_size = BYTE_VOCAB_SIZE
    eot_id: int | None = None

    def encode(self, text: str) -> list[int]:
        return list(text.encode("utf-8"))

    def decode(self, ids: Iterable[int]) -> str:
        data = bytes(int(i) for i in ids if 0 <= int(i) < BYTE_VOCAB_SIZE)
        return data.decode("utf-8", errors="replace")

    def encode_documents(self, docs: Sequence[str]) -> np.ndarray:
        blob = BYTE_SEPARATOR.join(docs).encode("utf-8")
        return np.frombuffer(blob, dtype=np.uint8).astype(TOKEN_DTYPE)


class BPETokenizer:
    """A byte-level BPE (`tokenizers`) with the special token `<|endoftext|>`."""

    kind = "bpe"

    def __init__(self, tokenizer: Tokenizer) -> None:
        self._tok = tokenizer
        eot = tokenizer.token_to_id(EOT)
        if eot is None:
            raise ValueError(f"tokenizer has no {EOT} token")
        self.eot_id: int = eot
        self.vocab_size: int = tokenizer.get_vocab_size()

    @classmethod
    def train(cls, docs: Sequence[str], vocab_size: int) -> BPETokenizer:
        """Train offline on `docs` (the train split only). Deterministic for equal input."""
        if vocab_size > np.iinfo(TOKEN_DTYPE).max + 1:
            raise ValueError(f"vocab_size {vocab_size} does not fit in {TOKEN_DTYPE.__name__}")
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            min_frequency=BPE_MIN_FREQUENCY,
            special_tokens=[EOT],
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        )
        tok.train_from_iterator(docs, trainer=trainer, length=len(docs))
        return cls(tok)

    @classmethod
    def from_file(cls, path: str | Path) -> BPETokenizer:
        return cls(Tokenizer.from_file(str(path)))

    def save(self, path: str | Path) -> None:
        self._tok.save(str(path))

    def encode(self, text: str) -> list[int]:
        return list(self._tok.encode(text).ids)

    def decode(self, ids: Iterable[int]) -> str:
        return str(self._tok.decode([int(i) for i in ids], skip_special_tokens=False))

    def encode_documents(self, docs: Sequence[str]) -> np.ndarray:
        """Token ids of all documents, with one `<|endoftext|>` between neighbours."""
        encoded = [e.ids for e in self._tok.encode_batch(list(docs))] if docs else []
        total = sum(len(ids) for ids in encoded) + max(len(encoded) - 1, 0)
        out = np.empty(total, dtype=TOKEN_DTYPE)
        pos = 0
        for i, ids in enumerate(encoded):
            if i:
                out[pos] = self.eot_id
                pos += 1
            out[pos : pos + len(ids)] = ids
            pos += len(ids)
        return out


def train_tokenizer(kind: str, train_docs: Sequence[str], vocab_size: int) -> TextTokenizer:
    """`kind` "bpe" trains a BPE on `train_docs`; "bytes" needs no training."""
    if kind == "bpe":
        return BPETokenizer.train(train_docs, vocab_size)
    if kind == "bytes":
        return ByteTokenizer()
    raise ValueError(f"unknown tokenizer kind '{kind}' (expected 'bpe' or 'bytes')")


def load_tokenizer(data_state: Mapping[str, Any]) -> TextTokenizer:
    """The tokenizer of a prepared dataset, from prepare_data's `state["data"]`."""
    kind = data_state.get("tokenizer_kind", "bytes")
    if kind == "bpe":
        path = data_state.get("tokenizer_path")
        if not path:
            raise ValueError("data state says tokenizer_kind='bpe' but has no tokenizer_path")
        return BPETokenizer.from_file(path)
    if kind == "bytes":
        return ByteTokenizer()
    raise ValueError(f"unknown tokenizer kind '{kind}'")
