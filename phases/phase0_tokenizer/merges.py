"""Learning the merges of a byte-level BPE: split, count, merge. The tokenizer (``bpe.py``) calls this.

Training happens in two steps:

1. **Split and count.** Every text is cut into chunks by the GPT-4 regex (with nanochat's
   one change: digits grouped 1-2 at a time instead of 1-3), and each *unique* chunk is
   counted once (``count_chunks``; several processes when the text is large). Merges never
   cross a chunk boundary.
2. **Merge, incrementally.** ``train_merges`` keeps a count for every adjacent pair and the
   set of chunks it occurs in; after each merge only the chunks that held the merged pair
   are updated (never a full recount, which is ``naive.py``). The pair merged next is the
   most frequent one, ties broken by the smallest ``(left_id, right_id)``: rustbpe's rule,
   so both learn the same merges.

Text becomes bytes with ``text_to_bytes`` (UTF-8, lone surrogates kept with
``surrogatepass``); ``bytes_to_text`` turns such bytes back into the same string (the
tokenizer decodes with it).

One guard against pathological text: a run of more than ``LONG_RUN`` whitespace characters
is cut into pieces of ``LONG_RUN`` before splitting (``cut_long_runs``). tiktoken's and
rustbpe's regex engine overflows its stack on a run of about a million spaces (a Rust panic,
not an exception), and such a run is one chunk whose BPE costs time for nothing. Training
and both encoders cut the same way, so they still agree; real text never has such runs.

What it leaves out: rustbpe's Rust speed (two processes for chunk counting, plain dicts for
the merge loop).

Run: ``python -m phases.phase0_tokenizer.merges`` learns 10 merges of a short text.
"""
from __future__ import annotations

import codecs
import heapq
import itertools
import os
from collections import Counter, defaultdict
from typing import Iterable

import regex

from phases.common.console import UserError, progress

# --8<-- [start:split_pattern]
# GPT-4's split pattern (cl100k) with nanochat's change: \p{N}{1,2} instead of {1,3}.
SPLIT_PATTERN = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}+|\p{N}{1,2}| ?[^\s\p{L}\p{N}]++[\r\n]*"""
    r"""|\s*[\r\n]|\s+(?!\S)|\s+"""
)
# --8<-- [end:split_pattern]


LONG_RUN = 10_000  # longest whitespace run split as one piece (tiktoken's regex overflows near 1,000,000)
_LONG_WHITESPACE = regex.compile(r"(?<!\s)\s{%d,}" % (LONG_RUN + 1))  # (?<!\s): only from a run's start: linear


def cut_long_runs(text: str) -> list[str]:
    """``text`` cut inside every whitespace run longer than ``LONG_RUN``, every ``LONG_RUN`` characters.

    ``"".join(cut_long_runs(t)) == t``; a text without such a run comes back whole. Each piece
    is then split and encoded on its own, by the trainer and by both encoders alike.
    """
    if len(text) <= LONG_RUN:
        return [text]
    cuts = [c for m in _LONG_WHITESPACE.finditer(text) for c in range(m.start() + LONG_RUN, m.end(), LONG_RUN)]
    bounds = [0, *cuts, len(text)]
    return [text[a:b] for a, b in zip(bounds, bounds[1:])]


def text_to_bytes(text: str) -> bytes:
    """UTF-8 bytes of ``text``; lone surrogates ("\\ud800") survive as 3 bytes (``surrogatepass``)."""
    return text.encode("utf-8", "surrogatepass")


# Bytes -> text, text_to_bytes in reverse. Python strings may hold lone surrogates ("\ud800"),
# which strict UTF-8 refuses. text_to_bytes writes them with 'surrogatepass' (3 bytes ED A0..BF
# 80..BF) and this reads those bytes back as the same surrogate; any other invalid byte sequence
# (a token sequence cut in the middle of a character) becomes U+FFFD.

def _surrogate_or_replace(exc: UnicodeError):
    if not isinstance(exc, UnicodeDecodeError):
        raise exc
    b, i = exc.object, exc.start
    if i + 2 < len(b) and b[i] == 0xED and 0xA0 <= b[i + 1] <= 0xBF and 0x80 <= b[i + 2] <= 0xBF:
        code = ((b[i] & 0x0F) << 12) | ((b[i + 1] & 0x3F) << 6) | (b[i + 2] & 0x3F)
        return chr(code), i + 3
    return "\ufffd", exc.end


codecs.register_error("mini_nanochat.surrogates", _surrogate_or_replace)


def bytes_to_text(data: bytes) -> str:
    """``text_to_bytes`` undone: the same string back, lone surrogates included; broken UTF-8 -> U+FFFD."""
    return data.decode("utf-8", "mini_nanochat.surrogates")


# ---------------------------------------------------------------------------
# Training, step 1: split every document into chunks and count the unique chunks.

_COMPILED: dict[str, regex.Pattern] = {}


def compiled(pattern: str) -> regex.Pattern:
    if pattern not in _COMPILED:
        _COMPILED[pattern] = regex.compile(pattern)
    return _COMPILED[pattern]


_PROBE = "Hello, world! It's 2025: naïve café 日本語 🙂\n\tdef f(x):\r\n    return x ** 2  \x00\x1b end  "


def check_pattern(pattern: str) -> regex.Pattern:
    """``pattern`` compiled, or a ValueError: it must compile and cut text into non-empty pieces
    that cover all of it (a pattern that skips characters would silently drop them)."""
    if not isinstance(pattern, str):
        raise ValueError(f"the split pattern must be a string, got {type(pattern).__name__}")
    try:
        rx = compiled(pattern)
    except regex.error as e:
        raise ValueError(f"the split pattern does not compile ({e})") from None
    pieces = rx.findall(_PROBE)
    if not all(isinstance(p, str) and p for p in pieces) or "".join(pieces) != _PROBE:
        raise ValueError("the split pattern does not cut text into pieces that cover it (text would be lost)")
    return rx


def _count_batch(args: tuple[str, list[str]]) -> tuple[Counter, int]:
    pattern, docs = args
    findall = compiled(pattern).findall
    counts: Counter = Counter()
    for doc in docs:
        for piece in cut_long_runs(doc):
            counts.update(findall(piece))  # Counter.update on a list counts in C
    return counts, sum(map(len, docs))


def _batches(texts: Iterable[str], batch_chars: int) -> Iterable[list[str]]:
    batch: list[str] = []
    size = 0
    for text in texts:
        if not isinstance(text, str):
            raise UserError(f"training texts must be str, got {type(text).__name__}")
        batch.append(text)
        size += len(text)
        if size >= batch_chars:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


def count_chunks(texts: Iterable[str], pattern: str = SPLIT_PATTERN, workers: int | None = None,
                 show_progress: bool = False) -> Counter:
    """Split each text with ``pattern`` and count how often every unique chunk occurs.

    With ``workers > 1`` the batches are counted in parallel processes (the result is
    the same, counting is order-independent). ``None`` means one worker per CPU, max 8.
    """
    workers = min(8, os.cpu_count() or 1) if workers is None else workers
    total: Counter = Counter()
    bar = progress(desc="split+count", unit="chars", enabled=show_progress)
    batches = iter(_batches(texts, batch_chars=1 << 20))
    first = next(batches, [])
    second = next(batches, None)
    if second is None:
        workers = 1  # one batch: a process pool would only add start-up time
    jobs = ((pattern, b) for b in itertools.chain([first], [] if second is None else [second], batches))
    if workers <= 1:
        for batch_counts, chars in map(_count_batch, jobs):
            total.update(batch_counts)
            bar.update(chars)
    else:
        import multiprocessing as mp
        ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
        with ctx.Pool(workers) as pool:
            for batch_counts, chars in pool.imap_unordered(_count_batch, jobs, chunksize=1):
                total.update(batch_counts)
                bar.update(chars)
    bar.close()
    return total


# ---------------------------------------------------------------------------
# Training, step 2: the incremental merge loop.

# --8<-- [start:train_merges]
def train_merges(chunk_counts: dict[str, int], num_merges: int,
                 show_progress: bool = False) -> list[tuple[int, int]]:
    """Learn ``num_merges`` merges from unique chunks and their counts.

    Returns the merges in order; merge ``k`` creates token id ``256 + k``.
    """
    words: list[list[int]] = []  # each unique chunk as a list of token ids (bytes at first)
    counts: list[int] = []       # how often that chunk occurs in the corpus
    for chunk, c in chunk_counts.items():
        ids = list(text_to_bytes(chunk))
        if len(ids) >= 2:        # a 1-byte chunk has no pair: it can never merge
            words.append(ids)
            counts.append(c)

    pair_counts: dict[tuple[int, int], int] = defaultdict(int)
    where: dict[tuple[int, int], set[int]] = defaultdict(set)  # pair -> words it may occur in
    for wi, ids in enumerate(words):
        c = counts[wi]
        for pair in zip(ids, ids[1:]):
            pair_counts[pair] += c
            where[pair].add(wi)

    # A max-heap of (count, pair) as a min-heap of (-count, pair): the smallest pair wins
    # ties. Entries go stale when a count drops; we fix them lazily when they surface.
    heap = [(-c, pair) for pair, c in pair_counts.items()]
    heapq.heapify(heap)

    merges: list[tuple[int, int]] = []
    bar = progress(total=num_merges, desc="merges", unit="merges", enabled=show_progress)
    while len(merges) < num_merges and heap:
        neg, pair = heapq.heappop(heap)
        current = pair_counts.get(pair, 0)
        if current <= 0:
            continue                                   # merged away entirely
        if -neg != current:
            heapq.heappush(heap, (-current, pair))     # stale: requeue with the true count
            continue

        new_id = 256 + len(merges)
        merges.append(pair)
        a, b = pair
        created: dict[tuple[int, int], set[int]] = defaultdict(set)
        for wi in where.pop(pair):
            ids = words[wi]
            try:
                i = ids.index(a)                       # jump to the first candidate (C speed)
            except ValueError:
                continue
            c, n = counts[wi], len(ids)
            out = ids[:i]
            while i < n:
                if ids[i] == a and i + 1 < n and ids[i + 1] == b:
                    # x a b y  ->  x N y : pairs (x,a) and (b,y) disappear, (x,N), (N,y) appear
                    if out:
                        x = out[-1]
                        pair_counts[(x, a)] -= c
                        pair_counts[(x, new_id)] += c
                        created[(x, new_id)].add(wi)
                    if i + 2 < n:
                        y = ids[i + 2]
                        pair_counts[(b, y)] -= c
                        pair_counts[(new_id, y)] += c
                        created[(new_id, y)].add(wi)
                    out.append(new_id)
                    i += 2
                else:
                    out.append(ids[i])
                    i += 1
            words[wi] = out
        pair_counts[pair] = 0  # every occurrence was merged
        # Only pairs containing new_id are new; every other pair count only went down.
        for p, ws in created.items():
            c = pair_counts[p]
            if c > 0:
                where[p] = ws
                heapq.heappush(heap, (-c, p))
        bar.update(1)
    bar.close()
    return merges
# --8<-- [end:train_merges]


if __name__ == "__main__":
    text = "low lower lowest newer newest wider widest " * 20
    for k, (a, b) in enumerate(train_merges(count_chunks([text]), 10)):
        print(f"merge {k:2d}: {a:3d} + {b:3d} -> {256 + k}")
