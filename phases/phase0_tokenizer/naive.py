"""The naive BPE trainer: recount every pair after every merge.

This is BPE exactly as it is usually first explained, and the reference the fast,
incremental trainer in ``merges.py`` is tested against: on the same text both must learn
the *same* merges (same rule: most frequent pair, ties to the smallest pair). It
is O(merges x corpus), which is why ``merges.py`` updates counts incrementally instead.
The benchmark (``tests/benchmarks/bench_tokenizer.py``) times it on a slice.

What it leaves out: everything but training (use ``BPETokenizer(merges)`` to encode).

Run: ``python -m phases.phase0_tokenizer.naive`` trains on a short text and prints merges.
"""
from __future__ import annotations

from collections import Counter
from typing import Iterable

from phases.phase0_tokenizer.merges import SPLIT_PATTERN, count_chunks, text_to_bytes


# --8<-- [start:naive]
def train_merges_naive(texts: Iterable[str], num_merges: int,
                       pattern: str = SPLIT_PATTERN) -> list[tuple[int, int]]:
    chunk_counts = count_chunks(texts, pattern, workers=1)
    words = [(list(text_to_bytes(chunk)), c) for chunk, c in chunk_counts.items()]
    merges: list[tuple[int, int]] = []
    for step in range(num_merges):
        pairs: Counter = Counter()
        for ids, c in words:                      # the full recount, every single step
            for pair in zip(ids, ids[1:]):
                pairs[pair] += c
        if not pairs:
            break                                 # every chunk is a single token already
        best = max(pairs.items(), key=lambda kv: (kv[1], -kv[0][0], -kv[0][1]))[0]
        new_id = 256 + step
        merges.append(best)
        words = [(_merge(ids, best, new_id), c) for ids, c in words]
    return merges


def _merge(ids: list[int], pair: tuple[int, int], new_id: int) -> list[int]:
    out, i = [], 0
    while i < len(ids):
        if i + 1 < len(ids) and ids[i] == pair[0] and ids[i + 1] == pair[1]:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out
# --8<-- [end:naive]


if __name__ == "__main__":
    text = "low lower lowest newer newest wider widest " * 20
    token = {i: bytes([i]) for i in range(256)}      # id -> its bytes, to show what each merge glues
    for k, (a, b) in enumerate(train_merges_naive([text], 10)):
        token[256 + k] = token[a] + token[b]
        left, right, new = (repr(token[i].decode("utf-8", "replace")) for i in (a, b, 256 + k))
        print(f"merge {k:2d}: {a:3d} + {b:3d} -> {256 + k}      {left:<5} + {right:<6} -> {new}")
