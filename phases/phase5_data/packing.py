"""Packing: turning documents of every length into training rows of exactly T+1 tokens.

A row holds T+1 tokens (T inputs, T targets shifted by one). Documents are rarely that
long, so several go into one row, and there is a trade-off between three costs:

- **padding** (positions that hold no data: compute spent on nothing),
- **cropping** (tokens of a document thrown away because the row was full),
- **misalignment** (a row that starts in the middle of a document: the model predicts
  tokens without the context that came before them).

Four strategies, measured on the same documents by ``pack`` (numbers: README.md):

- ``concat`` (Phase 2): one endless stream cut every T+1 tokens. No padding, no
  cropping, but most rows start mid-document.
- ``padding``: whole documents in arrival order; when the next one does not fit, the rest
  of the row is padding. Every row starts with ``<|bos|>``; nothing is cropped unless a
  document is longer than a row.
- ``greedy``: documents in arrival order; the one that overflows is cropped to fill the
  row and its remainder is dropped. BOS-aligned, no padding, much cropping.
- ``best_fit`` (nanochat's): keep a buffer of ~1,000 documents; repeatedly put in the
  *largest* document that still fits; when none fits, crop the *shortest* one to fill the
  row exactly. BOS-aligned, no padding, the least cropping of the BOS-aligned packers
  without padding.

What it leaves out: first-fit-decreasing over a whole dataset (offline, needs all lengths
up front), attention masks that stop attention at document boundaries (nanochat measured
no gain, spec §5.3).

Run: ``python -m phases.phase5_data.packing`` packs synthetic documents and prints the table.
"""
from __future__ import annotations

import bisect
from dataclasses import asdict, dataclass
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np

STRATEGIES = ("best_fit", "greedy", "padding", "concat")
PAD = -1  # marks padding positions in rows built by the "padding" strategy


@dataclass
class PackStats:
    rows: int = 0
    row_tokens: int = 0       # positions in all rows
    pad_tokens: int = 0       # positions holding padding
    doc_tokens: int = 0       # tokens of the documents that went into rows (before cropping)
    cropped_tokens: int = 0   # of those, thrown away by cropping
    docs: int = 0
    bos_rows: int = 0         # rows whose first token starts a document

    @property
    def utilisation(self) -> float:
        return (self.row_tokens - self.pad_tokens) / max(1, self.row_tokens)

    @property
    def crop_fraction(self) -> float:
        return self.cropped_tokens / max(1, self.doc_tokens)

    @property
    def bos_aligned(self) -> float:
        return self.bos_rows / max(1, self.rows)

    def add(self, other: "PackStats") -> None:
        for k, v in asdict(other).items():
            setattr(self, k, getattr(self, k) + v)

    def as_dict(self) -> dict:
        return {**asdict(self), "utilisation": self.utilisation, "crop_fraction": self.crop_fraction,
                "bos_aligned": self.bos_aligned}


class BestFitBuffer:
    """Tokenized documents keyed by (length, number), sorted: best fit and shortest in O(log n)."""

    def __init__(self):
        self._keys: list[tuple[int, int]] = []  # sorted (length, document number)
        self._docs: dict[int, list[int]] = {}

    def __len__(self) -> int:
        return len(self._keys)

    def add(self, number: int, ids: list[int]) -> None:
        bisect.insort(self._keys, (len(ids), number))
        self._docs[number] = ids

    def numbers(self) -> list[int]:
        return sorted(self._docs)

    def take_best(self, space: int) -> list[int] | None:
        """Remove and return the largest document of length <= space (latest number on ties)."""
        i = bisect.bisect_right(self._keys, (space, float("inf"))) - 1
        if i < 0:
            return None
        _, number = self._keys.pop(i)
        return self._docs.pop(number)

    def discard(self, number: int) -> None:
        """Remove document ``number`` if it is buffered."""
        ids = self._docs.pop(number, None)
        if ids is not None:
            self._keys.pop(bisect.bisect_left(self._keys, (len(ids), number)))

    def take_shortest(self) -> list[int]:
        _, number = self._keys.pop(0)
        return self._docs.pop(number)


# --8<-- [start:best_fit]
def fill_row_best_fit(row: np.ndarray, buffer: BestFitBuffer, refill: Callable[[], bool],
                      stats: PackStats) -> bool:
    """Fill ``row`` (capacity,) from ``buffer``; ``refill()`` tops the buffer up.

    Returns False (and leaves ``stats`` untouched) if the documents ran out mid-row.
    """
    cap, pos, local = len(row), 0, PackStats(rows=1, row_tokens=len(row), bos_rows=1)
    while pos < cap:
        refill()
        if not len(buffer):
            return False
        space = cap - pos
        ids = buffer.take_best(space)              # the largest document that fits whole
        if ids is None:                            # none fits: crop the shortest to fill the row
            ids = buffer.take_shortest()
            local.cropped_tokens += len(ids) - space
        n = min(len(ids), space)
        row[pos:pos + n] = ids[:n]
        pos += n
        local.docs += 1
        local.doc_tokens += len(ids)
    stats.add(local)
    return True
# --8<-- [end:best_fit]


def _best_fit_rows(docs: Iterator[list[int]], cap: int, stats: PackStats, buffer_size: int) -> Iterator[np.ndarray]:
    buffer, counter = BestFitBuffer(), iter(range(1 << 62))

    def refill() -> bool:
        for ids in docs:
            buffer.add(next(counter), ids)
            if len(buffer) >= buffer_size:
                break
        return True

    while True:
        row = np.empty(cap, dtype=np.int64)
        if not fill_row_best_fit(row, buffer, refill, stats):
            return
        yield row


def _greedy_rows(docs: Iterator[list[int]], cap: int, stats: PackStats, pad: bool) -> Iterator[np.ndarray]:
    row, pos, local, carry = np.full(cap, PAD, dtype=np.int64), 0, PackStats(), None
    while True:
        ids = carry if carry is not None else next(docs, None)
        carry = None
        if ids is None:
            return                                  # a partial last row is dropped, as are its stats
        space = cap - pos
        if len(ids) <= space:                       # fits whole
            row[pos:pos + len(ids)] = ids
            pos += len(ids)
        elif pad and pos > 0:                       # padding: close this row, start the next with ids
            local.pad_tokens += space
            pos, carry = cap, ids
        else:                                       # greedy (or a document longer than a row): crop
            row[pos:] = ids[:space]
            local.cropped_tokens += len(ids) - space
            pos = cap
        if carry is None:
            local.docs += 1
            local.doc_tokens += len(ids)
        if pos == cap:
            local.rows, local.row_tokens, local.bos_rows = 1, cap, 1
            stats.add(local)
            yield row
            row, pos, local = np.full(cap, PAD, dtype=np.int64), 0, PackStats()


def _concat_rows(docs: Iterator[list[int]], cap: int, stats: PackStats, bos: int) -> Iterator[np.ndarray]:
    pending: list[int] = []
    for ids in docs:
        stats.docs += 1
        stats.doc_tokens += len(ids)
        pending += ids
        while len(pending) >= cap:
            row = np.asarray(pending[:cap], dtype=np.int64)
            del pending[:cap]
            stats.rows, stats.row_tokens = stats.rows + 1, stats.row_tokens + cap
            stats.bos_rows += int(row[0] == bos)
            yield row
    stats.doc_tokens -= len(pending)  # tokens left over at the end never reached a row


def pack(docs: Iterable[Sequence[int]], capacity: int, strategy: str = "best_fit", *,
         buffer_size: int = 1000, bos: int | None = None, max_rows: int | None = None) -> tuple[np.ndarray, PackStats]:
    """Pack ``docs`` (each starting with BOS) into rows of ``capacity``: ``(rows (N, capacity), stats)``."""
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {', '.join(STRATEGIES)}, got {strategy!r}")
    stats, it = PackStats(), (list(d) for d in docs)
    if strategy == "best_fit":
        rows = _best_fit_rows(it, capacity, stats, buffer_size)
    elif strategy in ("greedy", "padding"):
        rows = _greedy_rows(it, capacity, stats, pad=strategy == "padding")
    else:
        if bos is None:
            raise ValueError("concat needs bos= to count the rows that start a document")
        rows = _concat_rows(it, capacity, stats, bos)
    out = []
    for row in rows:
        out.append(row)
        if max_rows is not None and len(out) >= max_rows:
            break
    return (np.stack(out) if out else np.empty((0, capacity), dtype=np.int64)), stats


if __name__ == "__main__":
    rng = np.random.default_rng(0)
    lengths = np.minimum(rng.lognormal(5.5, 1.2, size=20_000).astype(int) + 2, 20_000)  # heavy tail
    docs = [[0] + [1] * (n - 1) for n in lengths]
    print(f"{len(docs):,} synthetic documents, median {int(np.median(lengths))} tokens")
    print(f"{'strategy':<9} {'T':>5} {'rows':>6} {'util':>7} {'cropped':>8} {'BOS rows':>9}")
    for T in (512, 2048):
        for s in STRATEGIES:
            rows, st = pack(docs, T + 1, s, bos=0)
            print(f"{s:<9} {T:>5} {st.rows:>6} {st.utilisation:>7.1%} {st.crop_fraction:>8.1%} {st.bos_aligned:>9.1%}")
