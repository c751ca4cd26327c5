"""The pretraining loader: streamed documents, BOS-aligned best-fit rows, exact resume.

``PackedLoader`` joins the two other modules: ``stream.TokenizedDocs`` delivers this
rank's documents, tokenized on background threads with ``<|bos|>`` in front, and
``packing.fill_row_best_fit`` turns a buffer of ~1,000 of them into rows of T+1 tokens
that each start with BOS and hold no padding. A batch is B such rows; inputs are the first
T tokens of each, targets the last T.

**Exact resume.** Every document has a number (``stream.DocumentStream``), so the whole
state of the loader is: the number of the next document to pull into the buffer, and the
numbers of the documents sitting in the buffer (stored as ranges: about 9 KB of JSON in
the checkpoint's ``meta.json`` at the demo's size). Restoring re-reads those documents from their
row groups and re-tokenizes them; the packing is deterministic, so the following batches
are exactly those an uninterrupted run would have produced. ``epoch``, ``file`` and
``row_group`` are in the state too, for people reading it.

On CUDA, each batch is written into one pinned host buffer laid out [inputs | targets]
and copied to the GPU with one non-blocking copy; an event makes sure the pinned buffer
is not overwritten while that copy is still in flight.

``make_data`` has the signature of Phase 2's ``Recipe.make_data`` (the ``Runtime`` says which
rank's share to read); ``recipe.py`` plugs it into a recipe. ``DataKeys`` are the loader's
config keys; ``DataConfig`` is Phase 2's config with them.

What it leaves out: checkpointing the background queue (it is rebuilt from the cursor),
changing the number of ranks on resume (refused with a clear error).

Run: ``python -m phases.phase5_data.loader`` packs a batch of the embedded corpus and
prints its rows' first tokens and the packing statistics.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from phases.common.console import UserError
from phases.phase2_training.config import TrainConfig, at_least, compose
from phases.phase2_training.recipe import Runtime, resolve_data_dir
from phases.phase5_data.packing import BestFitBuffer, PackStats, fill_row_best_fit
from phases.phase5_data.stream import DocumentStream, TokenizedDocs, encode_docs, split_paths

STATE_VERSION = 1


@dataclass
class DataKeys:
    """The loader's knobs: the keys this phase adds to any training config."""
    tokenizer_threads: int = 2   # background tokenizer threads
    doc_buffer: int = 1000       # documents the best-fit packer chooses from


DataKeys.limits = {"tokenizer_threads": at_least(1), "doc_buffer": at_least(1)}
DataConfig = compose("DataConfig", TrainConfig, DataKeys, module=__name__)  # load_config(..., cls=DataConfig)


def number_ranges(numbers: Sequence[int]) -> list[list[int]]:
    """Sorted numbers -> [[start, length], ...]: the buffer is mostly runs of neighbours."""
    out: list[list[int]] = []
    for n in numbers:
        if out and out[-1][0] + out[-1][1] == n:
            out[-1][1] += 1
        else:
            out.append([n, 1])
    return out


class PackedLoader:
    """Batches (inputs, targets), each (B, T) int64, of BOS-aligned best-fit rows."""

    def __init__(self, paths: Sequence[Path], tok, batch_size: int, seq_len: int, rank: int = 0,
                 world_size: int = 1, device: str | torch.device = "cpu", threads: int = 2,
                 buffer_size: int = 1000):
        if batch_size < 1 or seq_len < 1 or buffer_size < 1:
            raise UserError(f"batch_size, seq_len and buffer_size must be >= 1, "
                            f"got {batch_size}, {seq_len}, {buffer_size}")
        self.stream = DocumentStream(paths, rank, world_size)
        # Bytes of each shard this rank reads, taken once (the state is saved every step): a shard
        # rewritten with as many documents, which the document count cannot see, changes its size.
        self.sizes = {p.name: p.stat().st_size for p in sorted({u.path for u in self.stream.units})}
        self.tok, self.B, self.T = tok, batch_size, seq_len
        self.rank, self.world = rank, world_size
        self.device = torch.device(device)
        # On a tiny dataset a 1,000-document buffer would hold several epochs' copies of the
        # same documents, and best-fit would serve the shortest ones over and over: cap it.
        self.threads, self.buffer_size = threads, min(buffer_size, max(1, self.stream.docs_per_epoch // 4))
        self.buffer = BestFitBuffer()
        self.stats = PackStats()
        self.cursor = 0                 # number of the next document to pull into the buffer
        self._docs: TokenizedDocs | None = None
        self._rows = np.empty((batch_size, seq_len + 1), dtype=np.int64)  # (B, T+1), reused
        self._pinned = self._event = None
        if self.device.type == "cuda":
            self._pinned = torch.empty((2, batch_size, seq_len), dtype=torch.int64, pin_memory=True)

    def _refill(self) -> bool:
        if self._docs is None:          # started lazily, from the cursor (a restore moves it)
            self._docs = TokenizedDocs(self.stream, self.tok, start=self.cursor, threads=self.threads)
        while len(self.buffer) < self.buffer_size:
            number, ids = self._docs.next()
            # A document longer than a row waits in the buffer until it is the shortest; on a
            # small dataset its copy from the next epoch can arrive first: keep one copy.
            self.buffer.discard(number - self.stream.docs_per_epoch)
            self.buffer.add(number, ids)
            self.cursor = number + 1
        return True

    # --8<-- [start:next_batch]
    def next_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        for b in range(self.B):
            fill_row_best_fit(self._rows[b], self.buffer, self._refill, self.stats)  # (T+1,) row b
        rows = torch.from_numpy(self._rows)                      # (B, T+1)
        if self._pinned is None:                                 # CPU: a fresh tensor per batch
            xy = torch.stack((rows[:, :-1], rows[:, 1:]))        # (2, B, T) [inputs | targets]
            xy = xy.to(self.device)
        else:
            if self._event is not None:
                self._event.synchronize()                        # last copy out of _pinned is done
            self._pinned[0].copy_(rows[:, :-1])                  # (B, T) inputs
            self._pinned[1].copy_(rows[:, 1:])                   # (B, T) targets
            xy = self._pinned.to(self.device, non_blocking=True)  # (2, B, T): one async copy
            self._event = torch.cuda.Event()
            self._event.record()
        return xy[0], xy[1]
    # --8<-- [end:next_batch]

    @property
    def epoch(self) -> int:
        return self.stream.locate(self.cursor)[0]

    # --8<-- [start:state]
    def state_dict(self) -> dict:
        epoch, u, row = self.stream.locate(self.cursor)
        unit = self.stream.units[u]
        return {"version": STATE_VERSION, "next_doc": self.cursor, "buffer": number_ranges(self.buffer.numbers()),
                "epoch": epoch, "file": unit.path.name, "row_group": unit.row_group, "row": row,
                "rank": self.rank, "world_size": self.world, "docs_per_epoch": self.stream.docs_per_epoch,
                "sizes": dict(self.sizes)}

    def load_state_dict(self, state: dict) -> None:
        if state.get("version") != STATE_VERSION:
            raise UserError(f"the checkpoint's data state is not a Phase 5 loader state "
                            f"(version {state.get('version')!r}); it was saved by another loader")
        if (state["world_size"], state["rank"]) != (self.world, self.rank):
            raise UserError(f"the checkpoint was saved by rank {state['rank']} of {state['world_size']}; "
                            f"this is rank {self.rank} of {self.world}: resume with the same number of ranks")
        if state["docs_per_epoch"] != self.stream.docs_per_epoch:
            raise UserError(f"the data changed since the checkpoint ({state['docs_per_epoch']:,} documents "
                            f"per epoch then, {self.stream.docs_per_epoch:,} now): resume on the same shards")
        now = self.sizes
        changed = [f"{name}: {then:,} bytes then, {now[name]:,} now" for name, then in (state.get("sizes") or {}).items()
                   if name in now and now[name] != then]
        if changed:                                        # (a checkpoint older than this check has no sizes)
            raise UserError(f"the data changed since the checkpoint ({'; '.join(changed[:3])}): resume on the "
                            "same shards")
        cursor, ranges = state["next_doc"], state["buffer"]
        if not (isinstance(cursor, int) and cursor >= 0 and isinstance(ranges, list)
                and all(isinstance(r, list) and len(r) == 2 and all(isinstance(x, int) for x in r)
                        and 0 <= r[0] and 0 <= r[1] and r[0] + r[1] <= cursor for r in ranges)
                and sum(n for _, n in ranges) <= self.buffer_size):   # never re-read more than a buffer holds
            raise ValueError("next_doc and buffer must be document numbers already pulled, at most a buffer's worth")
        self.close()
        numbers = [s + i for s, n in ranges for i in range(n)]
        texts = self.stream.read(numbers)                        # re-read the buffered documents...
        self.buffer = BestFitBuffer()
        for n, ids in zip(numbers, encode_docs(self.tok, [texts[n] for n in numbers])):
            self.buffer.add(n, ids)                              # ...and re-tokenize them
        self.cursor = int(state["next_doc"])                     # the stream restarts here
    # --8<-- [end:state]

    def close(self) -> None:
        if self._docs is not None:
            self._docs.close()
            self._docs = None


def val_batches(paths: Sequence[Path], tok, batch_size: int, seq_len: int, max_tokens: int,
                rank: int = 0, world_size: int = 1, device="cpu", buffer_size: int = 1000):
    """Fixed validation batches: the first of the val shard's packed batches, never wrapping."""
    loader = PackedLoader(paths, tok, batch_size, seq_len, rank, world_size, device, threads=1,
                          buffer_size=buffer_size)
    steps = max(1, max_tokens // (world_size * batch_size * seq_len))
    out = []
    for _ in range(steps):
        out.append(loader.next_batch())
        if loader.epoch > 0:  # the val split is exhausted: more batches would repeat documents
            break
    loader.close()
    return out


# --8<-- [start:make_data]
def make_data(cfg: TrainConfig, tok, tok_file: Path | None, device: torch.device, runtime: Runtime,
              show_progress: bool):
    """Phase 2's ``Recipe.make_data`` contract: (this rank's training loader, fixed validation batches)."""
    data_dir = resolve_data_dir(cfg, show_progress)
    rank, world_size = runtime.rank, runtime.world_size
    threads = getattr(cfg, "tokenizer_threads", DataKeys.tokenizer_threads)   # a config without DataKeys:
    buffer_size = getattr(cfg, "doc_buffer", DataKeys.doc_buffer)             # the loader's defaults
    loader = PackedLoader(split_paths(data_dir, "train"), tok, cfg.device_batch_size, cfg.sequence_len,
                          rank, world_size, device, threads=threads, buffer_size=buffer_size)
    val = val_batches(split_paths(data_dir, "val"), tok, cfg.device_batch_size, cfg.sequence_len,
                      cfg.eval_tokens, rank, world_size, device, buffer_size=buffer_size)
    return loader, val
# --8<-- [end:make_data]


if __name__ == "__main__":
    from phases.phase0_tokenizer.bpe import BPETokenizer
    from phases.phase0_tokenizer.corpus import ensure_embedded_corpus
    from phases.phase0_tokenizer.shards import iter_texts

    info = ensure_embedded_corpus()
    tok = BPETokenizer.train(iter_texts(info.out_dir, "train", max_chars=500_000), vocab_size=1024)
    loader = PackedLoader(split_paths(info.out_dir, "train"), tok, batch_size=4, seq_len=256)
    x, y = loader.next_batch()
    for row in x.tolist():
        print(repr(tok.decode(row[:16])))
    print(loader.stats.as_dict())
    print({k: v for k, v in loader.state_dict().items() if k != "buffer"})
    loader.close()
