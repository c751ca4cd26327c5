"""Phase 2's simple data path: tokenize the corpus once, then cut it into training windows.

1. ``tokenize_split`` encodes every document of a split (fast path when tiktoken is
   installed), puts ``<|bos|>`` in front of each, concatenates them into one long array of
   token ids, and caches it on disk (``<base>/tokens/…npy``, written atomically; the file
   name holds a hash of the tokenizer and the data, so a new tokenizer never reads stale ids).
2. ``TokenLoader`` walks that array: each micro-batch is B rows of T+1 consecutive tokens,
   inputs = the first T, targets = the last T (the same window shifted by one). With several
   processes (Phase 4) each rank reads its own B rows of every global batch, so the shards
   are disjoint and together cover the stream. Its state is one integer position (plus an
   epoch counter), saved in checkpoints so a resumed run sees exactly the same batches.

What it leaves out (Phase 5 brings it): streaming from parquet without loading everything,
background tokenization, and BOS-aligned packing (here a window may start mid-document).

Run: ``python -m phases.phase2_training.data`` tokenizes the embedded corpus and prints a batch.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import torch

from phases.common.console import UserError, progress
from phases.common.files import atomic_path
from phases.common.paths import tokenizer_dir, tokens_dir
from phases.phase0_tokenizer.shards import iter_texts, list_shards


def _fingerprint(tokenizer_file: Path, data_dir: Path, split: str) -> str:
    h = hashlib.sha256()
    h.update(tokenizer_file.read_bytes())
    manifest = data_dir / "manifest.json"
    if manifest.exists():
        h.update(manifest.read_bytes())
    for shard in list_shards(data_dir, split):  # names and sizes: cheap, catches swapped shards
        h.update(f"{shard.name}:{shard.stat().st_size}".encode())
    h.update(split.encode())
    return h.hexdigest()[:16]


def tokenize_split(tok, tokenizer_file: str | os.PathLike, data_dir: str | os.PathLike, split: str,
                   cache_dir: str | os.PathLike | None = None, show_progress: bool = True) -> np.ndarray:
    """All documents of ``split`` as one array of ids, each document preceded by ``<|bos|>``."""
    data_dir, tokenizer_file = Path(data_dir), Path(tokenizer_file)
    cache_dir = Path(cache_dir) if cache_dir else tokens_dir()
    path = cache_dir / f"{split}-{_fingerprint(tokenizer_file, data_dir, split)}.npy"
    if path.exists():
        try:
            return np.load(path, mmap_mode="r")
        except (ValueError, OSError):
            path.unlink()  # a damaged cache is re-created, never trusted
    dtype = np.uint16 if tok.vocab_size <= 1 << 16 else np.uint32
    pieces: list[np.ndarray] = []
    bar = progress(desc=f"tokenizing {split}", unit="docs", enabled=show_progress)
    batch: list[str] = []

    def flush():
        for ids in tok.encode_batch(batch, prepend="<|bos|>"):
            pieces.append(np.asarray(ids, dtype=dtype))
        bar.update(len(batch))
        batch.clear()

    for text in iter_texts(data_dir, split):
        batch.append(text)
        if len(batch) == 512:
            flush()
    if batch:
        flush()
    bar.close()
    if not pieces:
        raise UserError(f"no documents in the {split} split of {data_dir}")
    tokens = np.concatenate(pieces)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, tokens)
    return tokens


class TokenLoader:
    """Batches of (inputs, targets), each (B, T), from one long token array.

    Global batch g covers tokens [pos, pos + world*B*T + 1); rank r takes rows
    r*B … r*B + B − 1 of it. When the array runs out the stream wraps around and
    ``epoch`` increases. ``state_dict`` / ``load_state_dict`` make resumption exact.
    """

    def __init__(self, tokens: np.ndarray, batch_size: int, seq_len: int, rank: int = 0,
                 world_size: int = 1, device: str | torch.device = "cpu"):
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not in [0, {world_size})")
        self.tokens, self.B, self.T = tokens, batch_size, seq_len
        self.rank, self.world = rank, world_size
        self.device = torch.device(device)
        self.span = world_size * batch_size * seq_len  # tokens consumed per global batch
        if len(tokens) < self.span + 1:
            raise UserError(f"the data has {len(tokens):,} tokens, fewer than one global batch "
                            f"({world_size} x {batch_size} x {seq_len} + 1); use a smaller batch")
        self.pos, self.epoch = 0, 0

    # --8<-- [start:next_batch]
    def next_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self.pos + self.span + 1 > len(self.tokens):
            self.pos, self.epoch = 0, self.epoch + 1        # wrap around: a new epoch
        start = self.pos + self.rank * self.B * self.T        # this rank's rows
        chunk = np.asarray(self.tokens[start:start + self.B * self.T + 1], dtype=np.int64)
        buf = torch.from_numpy(chunk)                          # (B*T + 1,)
        x = buf[:-1].view(self.B, self.T)                      # (B, T) inputs
        y = buf[1:].view(self.B, self.T)                       # (B, T) targets: shifted by one
        self.pos += self.span
        if self.device.type == "cuda":
            return x.pin_memory().to(self.device, non_blocking=True), y.pin_memory().to(self.device, non_blocking=True)
        return x.to(self.device), y.to(self.device)
    # --8<-- [end:next_batch]

    def state_dict(self) -> dict:
        return {"pos": self.pos, "epoch": self.epoch}

    def load_state_dict(self, state: dict) -> None:
        pos, epoch = state["pos"], state["epoch"]
        if not (isinstance(pos, int) and isinstance(epoch, int) and pos >= 0 and epoch >= 0):
            raise ValueError(f"pos and epoch must be whole numbers >= 0, got {pos!r} and {epoch!r}")
        self.pos, self.epoch = pos, epoch


def eval_batches(tokens: np.ndarray, batch_size: int, seq_len: int, max_tokens: int,
                 rank: int = 0, world_size: int = 1, device="cpu") -> list[tuple[torch.Tensor, torch.Tensor]]:
    """A fixed list of validation batches: the same tokens every evaluation."""
    loader = TokenLoader(tokens, batch_size, seq_len, rank, world_size, device)
    steps = max(1, max_tokens // loader.span)
    steps = min(steps, (len(tokens) - 1) // loader.span)  # never wrap: each batch is distinct
    return [loader.next_batch() for _ in range(steps)]


if __name__ == "__main__":
    from phases.phase0_tokenizer.bpe import BPETokenizer
    from phases.phase0_tokenizer.corpus import ensure_embedded_corpus

    info = ensure_embedded_corpus()
    tok_dir = tokenizer_dir()
    tok = BPETokenizer.load(tok_dir)
    tokens = tokenize_split(tok, tok_dir / "tokenizer.json", info.out_dir, "val")
    x, y = TokenLoader(tokens, 2, 16).next_batch()
    print(json.dumps({"tokens": len(tokens), "x": x.tolist(), "y": y.tolist()})[:400])
    print(repr(tok.decode(x[0].tolist())))
