"""Byte-level BPE tokenizer, from scratch: train, encode, decode, save, load.

This is the tokenizer every later phase uses. It follows nanochat's tokenizer:

- byte-level: the 256 byte values are the first 256 tokens, so any text can be encoded;
- text is first split into chunks by the GPT-4 regex, with nanochat's one change
  (digits grouped 1-2 at a time instead of 1-3); merges never cross a chunk boundary;
- training is the *incremental* algorithm: count each unique chunk once, keep a count
  for every adjacent pair and the set of chunks it occurs in, and after each merge
  update only the chunks that contained the merged pair (never a full recount);
- the pair merged next is the most frequent one, ties broken by the smallest
  ``(left_id, right_id)``; this is rustbpe's rule, so both train the same merges;
- nine special tokens are appended after the merges (``<|bos|>`` … ``<|output_end|>``);
- encoding follows tiktoken's rule (merge the adjacent pair whose *bytes* have the
  lowest rank, leftmost first), so the pure-Python encoder and the tiktoken fast path
  (``fast.py``) give identical ids.

What it leaves out: rustbpe's Rust speed (we use two processes for chunk counting and
plain dicts for the merge loop), tiktoken-style threading in ``encode_batch``, and
pickled files (we save JSON: loading never executes code).

Run: ``python -m phases.phase0_tokenizer.bpe`` trains a small tokenizer on the
embedded corpus and prints a few encodings (``mini-nanochat tokenizer train`` is the
full command).
"""
from __future__ import annotations

import codecs
import heapq
import itertools
import json
import os
from collections import Counter, defaultdict
from pathlib import Path
from typing import Iterable, Sequence

import regex

from phases.phase0_tokenizer.common import UserError, atomic_write_text, progress

# --8<-- [start:split_pattern]
# GPT-4's split pattern (cl100k) with nanochat's change: \p{N}{1,2} instead of {1,3}.
SPLIT_PATTERN = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}+|\p{N}{1,2}| ?[^\s\p{L}\p{N}]++[\r\n]*"""
    r"""|\s*[\r\n]|\s+(?!\S)|\s+"""
)
# --8<-- [end:split_pattern]

# --8<-- [start:special_tokens]
SPECIAL_TOKENS = (
    "<|bos|>",             # begins every document; the only special token pretraining sees
    "<|user_start|>", "<|user_end|>",
    "<|assistant_start|>", "<|assistant_end|>",
    "<|python_start|>", "<|python_end|>",    # the assistant calls the python tool
    "<|output_start|>", "<|output_end|>",    # the tool's output comes back
)
# --8<-- [end:special_tokens]

FORMAT = "mini-nanochat-bpe"
FORMAT_VERSION = 1
FILENAME = "tokenizer.json"


# ---------------------------------------------------------------------------
# Bytes <-> text. Python strings may hold lone surrogates ("\ud800"), which strict
# UTF-8 refuses. We encode them with 'surrogatepass' (3 bytes ED A0..BF 80..BF) and
# decode those bytes back to the same surrogate; any other invalid byte sequence
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


def text_to_bytes(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


def bytes_to_text(data: bytes) -> str:
    return data.decode("utf-8", "mini_nanochat.surrogates")


# ---------------------------------------------------------------------------
# Training, step 1: split every document into chunks and count the unique chunks.

_COMPILED: dict[str, regex.Pattern] = {}


def _compiled(pattern: str) -> regex.Pattern:
    if pattern not in _COMPILED:
        _COMPILED[pattern] = regex.compile(pattern)
    return _COMPILED[pattern]


def _count_batch(args: tuple[str, list[str]]) -> tuple[Counter, int]:
    pattern, docs = args
    findall = _compiled(pattern).findall
    counts: Counter = Counter()
    for doc in docs:
        counts.update(findall(doc))  # Counter.update on a list counts in C
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


# ---------------------------------------------------------------------------
# The tokenizer object


class BPETokenizer:
    """A trained byte-level BPE: ``merges[k] = (left, right)`` creates id ``256 + k``."""

    def __init__(self, merges: Sequence[tuple[int, int]], pattern: str = SPLIT_PATTERN,
                 special_tokens: Sequence[str] = SPECIAL_TOKENS, use_fast: bool = True):
        self.pattern = pattern
        self.merges = [tuple(m) for m in merges]
        self.vocab: list[bytes] = [bytes([i]) for i in range(256)]  # id -> raw bytes
        for k, (a, b) in enumerate(self.merges):
            if not (0 <= a < 256 + k and 0 <= b < 256 + k):
                raise ValueError(f"merge {k} = {(a, b)} refers to a token that does not exist yet")
            self.vocab.append(self.vocab[a] + self.vocab[b])
        # bytes -> id. If two merges produce the same bytes, the first (lowest) id wins.
        self.ranks: dict[bytes, int] = {}
        for i, tok in enumerate(self.vocab):
            self.ranks.setdefault(tok, i)
        n = len(self.vocab)
        self.special_tokens = {name: n + k for k, name in enumerate(special_tokens)}
        self.special_names = {i: name for name, i in self.special_tokens.items()}
        self._split = _compiled(pattern).findall
        self._cache: dict[str, list[int]] = {}
        self.use_fast = use_fast
        self._fast = None  # built lazily by fast.to_tiktoken

    # -- training -----------------------------------------------------------
    @classmethod
    def train(cls, texts: Iterable[str], vocab_size: int, *, pattern: str = SPLIT_PATTERN,
              special_tokens: Sequence[str] = SPECIAL_TOKENS, workers: int | None = None,
              show_progress: bool = False) -> "BPETokenizer":
        """Train on ``texts`` to a vocabulary of ``vocab_size`` ids *including* the specials."""
        num_merges = vocab_size - 256 - len(special_tokens)
        if num_merges < 0:
            raise UserError(f"vocab_size must be at least {256 + len(special_tokens)} "
                            f"(256 bytes + {len(special_tokens)} special tokens), got {vocab_size}")
        chunk_counts = count_chunks(texts, pattern, workers=workers, show_progress=show_progress)
        merges = train_merges(chunk_counts, num_merges, show_progress=show_progress)
        if len(merges) < num_merges and show_progress:
            print(f"note: the text only supports {len(merges)} merges; "
                  f"vocab_size is {256 + len(merges) + len(special_tokens)}")
        return cls(merges, pattern=pattern, special_tokens=special_tokens)

    # -- sizes and lookups --------------------------------------------------
    @property
    def vocab_size(self) -> int:
        return len(self.vocab) + len(self.special_tokens)

    @property
    def bos_token_id(self) -> int:
        return self.special_tokens["<|bos|>"]

    def encode_special(self, name: str) -> int:
        try:
            return self.special_tokens[name]
        except KeyError:
            raise ValueError(f"unknown special token {name!r}; known: {', '.join(self.special_tokens)}") from None

    def is_special(self, token_id: int) -> bool:
        return token_id in self.special_names

    def token_bytes(self, token_id: int) -> bytes:
        """The raw bytes of one token (a special token's bytes are its name)."""
        if 0 <= token_id < len(self.vocab):
            return self.vocab[token_id]
        if token_id in self.special_names:
            return self.special_names[token_id].encode("utf-8")
        raise ValueError(f"token id {token_id} is out of range [0, {self.vocab_size})")

    def split(self, text: str) -> list[str]:
        """The regex chunks of ``text``: merges never cross their boundaries."""
        return self._split(text)

    # -- encoding -----------------------------------------------------------
    # --8<-- [start:encode_chunk]
    def _encode_chunk(self, data: bytes) -> list[int]:
        ranks = self.ranks
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

    def encode_ordinary_python(self, text: str) -> list[int]:
        """Pure-Python encoding of ordinary text (special-token strings are plain text)."""
        ids: list[int] = []
        cache = self._cache
        for chunk in self._split(text):
            got = cache.get(chunk)
            if got is None:
                got = self._encode_chunk(text_to_bytes(chunk))
                if len(cache) > 200_000:
                    cache.clear()  # bound memory; frequent chunks come back quickly
                cache[chunk] = got
            ids.extend(got)
        return ids

    def encode_ordinary(self, text: str) -> list[int]:
        if not isinstance(text, str):
            raise TypeError(f"encode() takes a str, got {type(text).__name__}")
        if self.use_fast:
            from phases.phase0_tokenizer.fast import fast_encode_ordinary
            ids = fast_encode_ordinary(self, text)
            if ids is not None:
                return ids
        return self.encode_ordinary_python(text)

    def _special_id(self, token: int | str) -> int:
        if isinstance(token, str):
            return self.encode_special(token)
        return token

    def encode(self, text: str, prepend: int | str | None = None,
               append: int | str | None = None) -> list[int]:
        """Encode ordinary text; ``prepend``/``append`` take a special-token name or id."""
        ids = self.encode_ordinary(text)
        if prepend is not None:
            ids.insert(0, self._special_id(prepend))
        if append is not None:
            ids.append(self._special_id(append))
        return ids

    def encode_batch(self, texts: Sequence[str], prepend: int | str | None = None,
                     append: int | str | None = None) -> list[list[int]]:
        if self.use_fast:
            from phases.phase0_tokenizer.fast import fast_encode_batch
            batch = fast_encode_batch(self, texts)
            if batch is not None:
                pre = [] if prepend is None else [self._special_id(prepend)]
                post = [] if append is None else [self._special_id(append)]
                return [pre + ids + post for ids in batch]
        return [self.encode(t, prepend=prepend, append=append) for t in texts]

    # -- decoding -----------------------------------------------------------
    def decode_bytes(self, ids: Iterable[int]) -> bytes:
        vocab, n = self.vocab, len(self.vocab)
        out = bytearray()
        for i in ids:
            if 0 <= i < n:
                out += vocab[i]
            else:
                out += self.token_bytes(int(i))  # special token, or a clear ValueError
        return bytes(out)

    def decode(self, ids: Iterable[int]) -> str:
        """Decode ids to text. Never raises for ids in range; broken UTF-8 becomes U+FFFD."""
        return bytes_to_text(self.decode_bytes(ids))

    # -- merge history (for teaching) ---------------------------------------
    def merge_tree(self, token_id: int) -> tuple:
        """How a token was built: ``(id,)`` for a byte, else ``(id, left_tree, right_tree)``."""
        if token_id < 256:
            return (token_id,)
        if token_id >= len(self.vocab):
            raise ValueError(f"token id {token_id} is not a merged token")
        a, b = self.merges[token_id - 256]
        return (token_id, self.merge_tree(a), self.merge_tree(b))

    # -- persistence ----------------------------------------------------------
    def save(self, directory: str | os.PathLike) -> Path:
        """Write ``tokenizer.json`` (atomically) into ``directory`` and return its path."""
        path = Path(directory) / FILENAME
        payload = {
            "format": FORMAT, "version": FORMAT_VERSION, "pattern": self.pattern,
            "special_tokens": list(self.special_tokens), "vocab_size": self.vocab_size,
            "merges": [list(m) for m in self.merges],
        }
        atomic_write_text(path, json.dumps(payload, separators=(",", ":")))
        return path

    @classmethod
    def load(cls, directory: str | os.PathLike, use_fast: bool = True) -> "BPETokenizer":
        path = Path(directory)
        path = path / FILENAME if path.is_dir() else path
        if not path.exists():
            raise UserError(f"no tokenizer at {path}; train one with "
                            f"`mini-nanochat tokenizer train --vocab-size 8192`")
        try:
            payload = json.loads(path.read_text(encoding="utf-8"))
            if payload.get("format") != FORMAT or payload.get("version") != FORMAT_VERSION:
                raise ValueError(f"not a {FORMAT} v{FORMAT_VERSION} file")
            tok = cls([tuple(m) for m in payload["merges"]], pattern=payload["pattern"],
                      special_tokens=payload["special_tokens"], use_fast=use_fast)
        except (ValueError, KeyError, TypeError) as e:  # JSONDecodeError is a ValueError
            raise UserError(f"corrupt tokenizer file {path}: {e}") from None
        if tok.vocab_size != payload.get("vocab_size"):
            raise UserError(f"corrupt tokenizer file {path}: vocab_size does not match its merges")
        return tok

    def __repr__(self) -> str:
        return f"BPETokenizer(vocab_size={self.vocab_size}, merges={len(self.merges)})"


if __name__ == "__main__":
    from phases.phase0_tokenizer.corpus import ensure_embedded_corpus, iter_texts

    info = ensure_embedded_corpus()
    tok = BPETokenizer.train(iter_texts(info.out_dir, "train", max_chars=5_000_000),
                             vocab_size=2048, show_progress=True)
    for s in ["Hello world!", "def forward(self, x):", "2024 tokens, 12345 digits"]:
        ids = tok.encode(s)
        print(f"{s!r} -> {ids} -> {[tok.decode([i]) for i in ids]}")
