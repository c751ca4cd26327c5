"""Documents from parquet shards, split across ranks by row group, tokenized in the background.

A pretraining dataset here is a folder of shards in Phase 0's format (``shards.py``:
``shard_NNNNN.parquet`` files with one string column ``text``, the last shard is
validation): the downloaded shards (``download.py``) and the embedded corpus alike.

Three ideas:

1. **Row groups are the unit of work.** A parquet file is stored as row groups (1,024
   documents each in nanochat's shards and ours) that can be read one at a time. All row
   groups of a split, file by file, form one list; rank ``r`` of ``W`` reads entries
   ``r, r+W, r+2W, …``, so ranks are disjoint and together cover the split.
2. **Every document has an address.** Rank ``r``'s documents, in order and across epochs,
   are numbered 0, 1, 2, …; document ``s`` lives in epoch ``s // D`` (``D`` = documents of
   this rank per epoch), and the row-group sizes in the parquet footers say which row group
   and row. A loader's resume state is a handful of such numbers, and any document can be
   read back from its number (``DocumentStream.read``): this is what makes resume exact.
3. **Tokenization happens off the training thread.** ``TokenizedDocs`` runs a reader
   thread that reads row groups and hands batches of documents to a pool of tokenizer
   threads (tiktoken releases the GIL while it encodes); results come back in order, so
   the stream is the same whatever the number of threads.

What it leaves out: remote streaming without a local copy (MosaicML streaming, HF
``datasets`` streaming), shuffling at load time (the shards are pre-shuffled), columns
other than ``text``.

Run: ``python -m phases.phase5_data.stream [DATA_DIR]`` prints the row-group split and a
few tokenized documents of the embedded corpus.
"""
from __future__ import annotations

import bisect
import queue
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

from phases.common.console import UserError
from phases.phase0_tokenizer.shards import list_shards, open_shard, read_row_group

TOKENIZER_BATCH = 128  # documents per tokenizer call: big enough to amortise the call, small enough to stream


@dataclass(frozen=True)
class Unit:
    """One row group of one shard: the unit that ranks share out."""
    path: Path
    row_group: int
    num_rows: int


def shard_units(paths: Sequence[Path]) -> list[Unit]:
    """All row groups of ``paths``, file by file: reads only the footers."""
    units: list[Unit] = []
    for path in paths:
        meta = open_shard(path).metadata
        units += [Unit(Path(path), i, meta.row_group(i).num_rows) for i in range(meta.num_row_groups)]
    return units


def split_paths(data_dir: str | Path, split: str) -> list[Path]:
    """Shards of a split (Phase 0's rule: the last shard is validation)."""
    return list_shards(data_dir, split)


class DocumentStream:
    """Rank ``rank``'s documents of ``paths``, numbered 0, 1, 2, … forever (epoch after epoch)."""

    # --8<-- [start:rank_units]
    def __init__(self, paths: Sequence[Path], rank: int = 0, world_size: int = 1):
        if not 0 <= rank < world_size:
            raise UserError(f"rank {rank} is not in [0, {world_size})")
        units = shard_units(paths)
        self.units = units[rank::world_size]     # row groups rank, rank+W, rank+2W, ...
        if not self.units or not any(u.num_rows for u in self.units):
            raise UserError(f"rank {rank} of {world_size} gets no documents: the data has "
                            f"{len(units)} row group(s); use fewer ranks or more shards")
        self.starts = [0]                         # index of each unit's first document
        for u in self.units:
            self.starts.append(self.starts[-1] + u.num_rows)
        self.docs_per_epoch = self.starts[-1]
    # --8<-- [end:rank_units]

    def locate(self, s: int) -> tuple[int, int, int]:
        """Document number ``s`` -> (epoch, unit index, row within that row group)."""
        epoch, offset = divmod(s, self.docs_per_epoch)
        u = bisect.bisect_right(self.starts, offset) - 1
        return epoch, u, offset - self.starts[u]

    def read_unit(self, u: int) -> list[str]:
        unit = self.units[u]
        return read_row_group(unit.path, unit.row_group)    # a damaged page or a null row: a UserError

    def read(self, numbers: Sequence[int]) -> dict[int, str]:
        """The texts of the given document numbers (each row group read once)."""
        by_unit: dict[int, list[int]] = {}
        for s in numbers:
            by_unit.setdefault(self.locate(s)[1], []).append(s)
        out: dict[int, str] = {}
        for u, ss in by_unit.items():
            texts = self.read_unit(u)
            for s in ss:
                out[s] = texts[self.locate(s)[2]]
        return out

    def batches(self, start: int, batch: int = TOKENIZER_BATCH) -> Iterator[tuple[int, list[str]]]:
        """``(number of the first document, texts)`` from document ``start`` on, forever."""
        _, u, row = self.locate(start)
        s = start
        while True:
            texts = self.read_unit(u)[row:]
            for i in range(0, len(texts), batch):
                yield s, texts[i:i + batch]
                s += len(texts[i:i + batch])
            u, row = (u + 1) % len(self.units), 0


def encode_docs(tok, texts: Sequence[str]) -> list[list[int]]:
    """``<|bos|>`` + ids of each text (Phase 0's fast path when tiktoken is there, one thread per call)."""
    return tok.encode_batch(texts, prepend=tok.bos_token_id, num_threads=1)  # our pool does the parallelism


# --8<-- [start:background]
def _read_ahead(stream: DocumentStream, start: int, pool: ThreadPoolExecutor, tok,
                out: queue.Queue, stop: threading.Event) -> None:
    """Reader thread: row groups -> batches of texts -> tokenizer pool -> futures, in order."""
    try:
        for s, texts in stream.batches(start):
            future = pool.submit(encode_docs, tok, texts)
            while not stop.is_set():
                try:
                    out.put((s, future), timeout=0.1)  # bounded: reads at most `prefetch` ahead
                    break
                except queue.Full:
                    continue
            if stop.is_set():
                return
    except BaseException as e:  # handed to the consumer, which raises it on its own thread
        if stop.is_set():           # closing: the pool refused new work, nobody is listening
            return
        done: Future = Future()
        done.set_exception(e)
        while not stop.is_set():
            try:
                out.put((-1, done), timeout=0.1)
                return
            except queue.Full:
                continue


class TokenizedDocs:
    """Tokenized documents of a ``DocumentStream`` from number ``start`` on, prepared in the background.

    ``next()`` returns ``(number, ids)``. The order never depends on ``threads``.
    """

    def __init__(self, stream: DocumentStream, tok, start: int = 0, threads: int = 2, prefetch: int = 16):
        if threads < 1:
            raise UserError(f"tokenizer threads must be >= 1, got {threads}")
        self.next_number = start
        self._stop = threading.Event()
        self._queue: queue.Queue = queue.Queue(maxsize=prefetch)
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="tokenize")
        self._reader = threading.Thread(target=_read_ahead, daemon=True, name="read-ahead",
                                        args=(stream, start, self._pool, tok, self._queue, self._stop))
        self._reader.start()
        self._batch: list[list[int]] = []
        self._pos = 0
    # --8<-- [end:background]

    def next(self) -> tuple[int, list[int]]:
        if self._pos == len(self._batch):
            _, future = self._queue.get()
            self._batch, self._pos = future.result(), 0  # re-raises a reader/tokenizer error here
        ids = self._batch[self._pos]
        self._pos += 1
        self.next_number += 1
        return self.next_number - 1, ids

    def close(self) -> None:
        if hasattr(self, "_pool"):                # __init__ may have failed before the pool existed
            self._stop.set()
            self._pool.shutdown(wait=False, cancel_futures=True)

    def __del__(self):
        self.close()


if __name__ == "__main__":
    import sys

    from phases.phase0_tokenizer.bpe import BPETokenizer
    from phases.phase0_tokenizer.corpus import ensure_embedded_corpus

    data_dir = Path(sys.argv[1]) if len(sys.argv) > 1 else ensure_embedded_corpus().out_dir
    for r in range(2):
        ds = DocumentStream(split_paths(data_dir, "train"), rank=r, world_size=2)
        print(f"rank {r}/2: {len(ds.units)} row groups, {ds.docs_per_epoch:,} documents per epoch, "
              f"first: {ds.units[0].path.name}#{ds.units[0].row_group}")
    tok = BPETokenizer.train(["hello world, this is a tiny tokenizer " * 20], vocab_size=300)
    docs = TokenizedDocs(DocumentStream(split_paths(data_dir, "val")), tok, threads=2)
    for _ in range(3):
        n, ids = docs.next()
        print(f"document {n}: {len(ids)} tokens, starts {ids[:8]}")
    docs.close()
