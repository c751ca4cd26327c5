"""Encoding one chunk with BPE's merges: tiktoken's rule, written plainly and written fast.

A chunk (one piece of the regex split) starts as its bytes; the rule merges the adjacent pair
whose concatenated bytes form the token of lowest id (the earliest merge), leftmost on ties,
until no adjacent pair is a token; a chunk that is already one token is taken whole. tiktoken
applies the same rule, which is why ``bpe.py``'s fast path gives the same ids.

- ``encode_chunk``: the rule as a loop over the parts, O(n^2) on n bytes: the version to read.
  Real chunks are short words (``bpe.py`` caches their ids), so this is what usually runs.
- ``encode_long_chunk``: the same ids in O(n log n), candidate pairs in a heap, for chunks
  over ``SHORT_CHUNK`` bytes, so that no input (a megabyte without a space) makes encoding
  quadratic. ``tests/test_tokenizer_robustness.py`` checks the two agree on random bytes.

``ranks`` maps a token's bytes to its id (``BPETokenizer.ranks``).

What it leaves out: the regex split and the fast path (``bpe.py``), learning the merges
(``merges.py``).

Run: ``python -m phases.phase0_tokenizer.encode_chunk`` encodes three words with four merges.
"""
from __future__ import annotations

import heapq

SHORT_CHUNK = 64     # chunks up to this many bytes: the plain merge loop (and its cache); longer: the heap


# --8<-- [start:encode_chunk]
def encode_chunk(ranks: dict[bytes, int], data: bytes) -> list[int]:
    """The ids of one chunk: merge the adjacent pair of lowest rank, leftmost first, until none is a token."""
    whole = ranks.get(data)
    if whole is not None:            # the whole chunk is one token (tiktoken does this too)
        return [whole]
    parts = [data[i:i + 1] for i in range(len(data))]
    while len(parts) > 1:
        # merge the adjacent pair whose concatenation has the lowest rank (leftmost on ties)
        best_rank, best_i = None, -1
        for i in range(len(parts) - 1):
            r = ranks.get(parts[i] + parts[i + 1])
            if r is not None and (best_rank is None or r < best_rank):
                best_rank, best_i = r, i
        if best_i < 0:
            break
        parts[best_i:best_i + 2] = [parts[best_i] + parts[best_i + 1]]
    return [ranks[p] for p in parts]
# --8<-- [end:encode_chunk]


def encode_long_chunk(ranks: dict[bytes, int], data: bytes) -> list[int]:
    """``encode_chunk``'s result in O(n log n): candidate pairs in a heap keyed (rank, position).

    The same rule (lowest rank first, leftmost on ties): a part is named by the position of
    its first byte, so "leftmost" is the smallest position; a popped pair that a merge has
    changed since it was pushed is stale and skipped.
    """
    n = len(data)
    whole = ranks.get(data)
    if whole is not None:
        return [whole]
    end = list(range(1, n + 1))          # end[i]: end of the part starting at byte i (0: merged away)
    nxt = list(range(1, n + 1))          # start of the next part (n: none)
    prev = list(range(-1, n - 1))        # start of the previous part (-1: none)
    heap = [(r, i) for i in range(n - 1) if (r := ranks.get(data[i:i + 2])) is not None]
    heapq.heapify(heap)
    while heap:
        r, i = heapq.heappop(heap)
        j = nxt[i]
        if end[i] == 0 or j >= n or ranks.get(data[i:end[j]]) != r:
            continue                     # stale: part i was merged away, or a neighbour changed
        end[i], end[j] = end[j], 0       # part j joins part i
        k = nxt[i] = nxt[j]
        if k < n:
            prev[k] = i
            if (rk := ranks.get(data[i:end[k]])) is not None:
                heapq.heappush(heap, (rk, i))
        p = prev[i]
        if p >= 0 and (rp := ranks.get(data[p:end[i]])) is not None:
            heapq.heappush(heap, (rp, p))
    out, i = [], 0
    while i < n:
        out.append(ranks[data[i:end[i]]])
        i = nxt[i]
    return out


if __name__ == "__main__":
    vocab = [bytes([i]) for i in range(256)]
    for a, b in [(b"l", b"o"), (b"lo", b"w"), (b"e", b"r"), (b"low", b"er")]:
        vocab.append(a + b)                       # merge k creates id 256 + k
    ranks = {t: i for i, t in enumerate(vocab)}
    for word in (b"lower", b"slower", b"lowly"):
        ids = encode_chunk(ranks, word)
        print(f"{word.decode():>7} -> {ids} = {[vocab[i].decode() for i in ids]}")
    words = (b"lower", b"slowerlowest")
    print("the heap agrees:", all(encode_long_chunk(ranks, w) == encode_chunk(ranks, w) for w in words))
