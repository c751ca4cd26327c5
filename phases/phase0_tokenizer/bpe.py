"""Byte-level BPE tokenizer, from scratch: train, encode, decode, save, load.

This is the tokenizer every later phase uses. It follows nanochat's tokenizer:

- byte-level: the 256 byte values are the first 256 tokens, so any text can be encoded;
- training (``merges.py``): text split into chunks by the GPT-4 regex (digits grouped
  1-2), unique chunks counted, then the incremental merge loop with rustbpe's tie rule,
  so both train the same merges;
- nine special tokens are appended after the merges (``<|bos|>`` … ``<|output_end|>``);
- encoding follows tiktoken's rule (merge the adjacent pair whose *bytes* have the
  lowest rank, leftmost first: ``encode_chunk.py``), so the pure-Python encoder and the
  tiktoken fast path give identical ids. The tokenizer owns its fast path:
  ``tiktoken_encoding()`` exports the merges to a tiktoken ``Encoding`` (built once), and
  ``encode`` / ``encode_batch`` use it when tiktoken is installed. Only the chunks tiktoken
  cannot take (a lone surrogate, which it would replace) go to the pure-Python path, so round
  trips stay exact; whitespace runs over ``merges.LONG_RUN`` characters are cut first on both
  paths (tiktoken's regex overflows on a million spaces). ``encode_bytes`` encodes raw bytes (what a user typed or
  piped, invalid UTF-8 included) so that ``decode_bytes`` gives exactly those bytes back.

``save`` / ``load`` write and read ``tokenizer.json`` (``tokenizer_file.py``).

What it leaves out: pickled files (we save JSON: loading never executes code; nanochat
pickles its tiktoken Encoding, we rebuild it from the JSON in well under a second).

Run: ``python -m phases.phase0_tokenizer.bpe`` trains a small tokenizer on the
embedded corpus, prints a few encodings and compares the speed of both encoders
(``mini-nanochat tokenizer train`` is the full command).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Sequence

from phases.common.console import UserError
from phases.phase0_tokenizer.encode_chunk import SHORT_CHUNK, encode_chunk, encode_long_chunk
from phases.phase0_tokenizer.merges import (SPLIT_PATTERN, bytes_to_text, check_pattern, count_chunks,
                                            cut_long_runs, train_merges)
from phases.phase0_tokenizer.tokenizer_file import FILENAME, load_tokenizer, save_tokenizer  # noqa: F401 (re-exported)

try:
    import tiktoken  # the fast path: optional (pip install tiktoken)
except ImportError:
    tiktoken = None

# --8<-- [start:special_tokens]
SPECIAL_TOKEN_PURPOSES = {  # name -> what it is for; their ids follow the merges, in this order
    "<|bos|>": "begins every document; the only special token pretraining sees",
    "<|user_start|>": "opens a user turn",
    "<|user_end|>": "closes a user turn",
    "<|assistant_start|>": "opens an assistant turn (at inference the model writes after it)",
    "<|assistant_end|>": "closes an assistant turn: the model learns to stop with it",
    "<|python_start|>": "the assistant starts a python tool call",
    "<|python_end|>": "the tool call ends; the engine runs it",
    "<|output_start|>": "the tool's output begins (written by the engine, not the model)",
    "<|output_end|>": "the tool's output ends",
}
SPECIAL_TOKENS = tuple(SPECIAL_TOKEN_PURPOSES)
# --8<-- [end:special_tokens]

# ---------------------------------------------------------------------------
# The tokenizer object


class BPETokenizer:
    """A trained byte-level BPE: ``merges[k] = (left, right)`` creates id ``256 + k``."""

    def __init__(self, merges: Sequence[tuple[int, int]], pattern: str = SPLIT_PATTERN,
                 special_tokens: Sequence[str] = SPECIAL_TOKENS, use_fast: bool = True):
        self._split = check_pattern(pattern).findall      # a ValueError names what is wrong
        self.pattern = pattern
        self.merges = [tuple(m) if isinstance(m, (tuple, list)) else m for m in merges]
        self.vocab: list[bytes] = [bytes([i]) for i in range(256)]  # id -> raw bytes
        first: dict[tuple[int, int], int] = {}
        for k, m in enumerate(self.merges):
            if not (isinstance(m, tuple) and len(m) == 2 and all(_is_int(x) for x in m)):
                raise ValueError(f"merge {k} must be a pair of token ids, got {m!r}")
            a, b = m
            if not (0 <= a < 256 + k and 0 <= b < 256 + k):
                raise ValueError(f"merge {k} = {(a, b)} refers to a token that does not exist yet")
            if m in first:               # training merges a pair once: every occurrence at the same time
                raise ValueError(f"merge {k} = {m} repeats merge {first[m]}")
            first[m] = k
            self.vocab.append(self.vocab[a] + self.vocab[b])
        # bytes -> id. If two merges produce the same bytes, the first (lowest) id wins.
        self.ranks: dict[bytes, int] = {}
        for i, tok in enumerate(self.vocab):
            self.ranks.setdefault(tok, i)
        n = len(self.vocab)
        if (not isinstance(special_tokens, (list, tuple)) or not all(isinstance(t, str) and t for t in special_tokens)
                or len(set(special_tokens)) != len(special_tokens)):
            raise ValueError(f"special_tokens must be distinct non-empty names, got {special_tokens!r}")
        self.special_tokens = {name: n + k for k, name in enumerate(special_tokens)}
        self.special_names = {i: name for name, i in self.special_tokens.items()}
        self._cache: dict[bytes, list[int]] = {}
        self.use_fast = use_fast and tiktoken is not None
        self._encoding = None  # the tiktoken Encoding, built on first use

    # -- training -----------------------------------------------------------
    @classmethod
    def train(cls, texts: Iterable[str], vocab_size: int, *, pattern: str = SPLIT_PATTERN,
              special_tokens: Sequence[str] = SPECIAL_TOKENS, workers: int | None = None,
              show_progress: bool = False) -> "BPETokenizer":
        """Train on ``texts`` to a vocabulary of ``vocab_size`` ids *including* the specials."""
        num_merges = check_vocab_size(vocab_size, len(special_tokens))
        chunk_counts = count_chunks(texts, pattern, workers=workers, show_progress=show_progress)
        merges = train_merges(chunk_counts, num_merges, show_progress=show_progress)
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

    # -- encoding (one chunk: encode_chunk.py) -------------------------------
    def _chunk_ids(self, data: bytes) -> list[int]:
        """The ids of one chunk's bytes; short chunks are cached (frequent words come back often)."""
        if len(data) > SHORT_CHUNK:
            return encode_long_chunk(self.ranks, data)
        got = self._cache.get(data)
        if got is None:
            got = encode_chunk(self.ranks, data)
            if len(self._cache) > 200_000:
                self._cache.clear()          # bound memory; frequent chunks come back quickly
            self._cache[data] = got
        return got

    def _python_ids(self, text: str, errors: str) -> list[int]:
        ids: list[int] = []
        for piece in cut_long_runs(text):
            for chunk in self._split(piece):
                ids += self._chunk_ids(chunk.encode("utf-8", errors))
        return ids

    def encode_ordinary_python(self, text: str) -> list[int]:
        """Pure-Python encoding of ordinary text (special-token strings are plain text)."""
        return self._python_ids(text, "surrogatepass")

    # -- the fast path ----------------------------------------------------------
    def tiktoken_encoding(self):
        """These merges as a tiktoken ``Encoding`` (Rust, same ids), built once; None without tiktoken."""
        if tiktoken is None:
            return None
        if self._encoding is None:
            # tiktoken wants rank == id for every mergeable token; duplicates of the same
            # bytes (possible in principle) keep the lowest id, as self.ranks does.
            self._encoding = tiktoken.Encoding(
                name=f"mini-nanochat-{self.vocab_size}", pat_str=self.pattern,
                mergeable_ranks=dict(self.ranks), special_tokens=dict(self.special_tokens),
                explicit_n_vocab=None if len(self.ranks) != len(self.vocab) else self.vocab_size)
        return self._encoding

    def _fast(self, text: str) -> list[int]:
        """tiktoken on clean text; should Rust panic (a BaseException), the same ids come from Python."""
        try:
            return self.tiktoken_encoding().encode_ordinary(text)
        except BaseException as e:  # pyo3's PanicException derives from BaseException only
            if type(e).__name__ != "PanicException":
                raise
            return self._python_ids(text, "strict")

    def _ids(self, text: str, errors: str) -> list[int]:
        """tiktoken for clean pieces. In a piece with a lone surrogate only the chunks holding one
        take the Python path: a run of whole chunks splits the same way on its own, so tiktoken
        gives the ids it would give in place. ``errors``: how a lone surrogate becomes bytes."""
        if not self.use_fast:
            return self._python_ids(text, errors)
        ids: list[int] = []
        for piece in cut_long_runs(text):
            if _utf8_clean(piece):
                ids += self._fast(piece)
                continue
            clean: list[str] = []
            for chunk in self._split(piece):
                if _utf8_clean(chunk):
                    clean.append(chunk)
                    continue
                if clean:
                    ids += self._fast("".join(clean))
                    clean = []
                ids += self._chunk_ids(chunk.encode("utf-8", errors))
            if clean:
                ids += self._fast("".join(clean))
        return ids

    def encode_ordinary(self, text: str) -> list[int]:
        if not isinstance(text, str):
            raise TypeError(f"encode() takes a str, got {type(text).__name__}")
        return self._ids(text, "surrogatepass")

    def encode_bytes(self, data: bytes) -> list[int]:
        """Ordinary encoding of raw bytes, valid UTF-8 or not: ``decode_bytes`` returns ``data`` exactly.

        For what a user types or pipes in (``os.fsencode(arg)``, ``sys.stdin.buffer``): an
        undecodable byte stays that one byte (``surrogateescape``), never three.
        """
        if not isinstance(data, (bytes, bytearray)):
            raise TypeError(f"encode_bytes() takes bytes, got {type(data).__name__}")
        return self._ids(bytes(data).decode("utf-8", "surrogateescape"), "surrogateescape")

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
                     append: int | str | None = None, num_threads: int = 8) -> list[list[int]]:
        """``encode`` of each text; on the fast path tiktoken encodes on ``num_threads`` threads."""
        if self.use_fast and all(_utf8_clean(t) and len(cut_long_runs(t)) == 1 for t in texts):
            pre = [] if prepend is None else [self._special_id(prepend)]
            post = [] if append is None else [self._special_id(append)]
            try:
                batch = self.tiktoken_encoding().encode_ordinary_batch(list(texts), num_threads=num_threads)
            except BaseException as e:  # a Rust panic: encode them one by one (same ids)
                if type(e).__name__ != "PanicException":
                    raise
            else:
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

    # -- persistence: tokenizer_file.py --------------------------------------
    def save(self, directory: str | os.PathLike) -> Path:
        """Write ``tokenizer.json`` (atomically) into ``directory`` and return its path."""
        return save_tokenizer(self, directory)

    @classmethod
    def load(cls, directory: str | os.PathLike, use_fast: bool = True) -> "BPETokenizer":
        """The tokenizer saved in ``directory`` (or that file); a UserError naming the file if it cannot be used."""
        return load_tokenizer(cls, directory, use_fast)

    def __repr__(self) -> str:
        return f"BPETokenizer(vocab_size={self.vocab_size}, merges={len(self.merges)})"


def check_vocab_size(vocab_size: int, num_special: int = len(SPECIAL_TOKENS)) -> int:
    """The number of merges a vocabulary of ``vocab_size`` ids holds; a UserError if it is too small."""
    if not _is_int(vocab_size) or vocab_size < 256 + num_special:
        raise UserError(f"vocab_size must be at least {256 + num_special} "
                        f"(256 bytes + {num_special} special tokens), got {vocab_size}")
    return vocab_size - 256 - num_special


def _is_int(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _utf8_clean(text: str) -> bool:
    """Strict UTF-8 can encode it (no lone surrogates): tiktoken would alter those."""
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


if __name__ == "__main__":
    import time

    from phases.common.paths import data_dir
    from phases.phase0_tokenizer.corpus import ensure_embedded_corpus
    from phases.phase0_tokenizer.shards import iter_texts

    info = ensure_embedded_corpus(data_dir())
    tok = BPETokenizer.train(iter_texts(info.out_dir, "train", max_chars=5_000_000),
                             vocab_size=2048, show_progress=True)
    for s in ["Hello world!", "def forward(self, x):", "2024 tokens, 12345 digits"]:
        ids = tok.encode(s)
        print(f"{s!r} -> {ids} -> {[tok.decode([i]) for i in ids]}")
    text = "\n".join(iter_texts(info.out_dir, "val", max_chars=2_000_000))
    for name, encode in [("python", tok.encode_ordinary_python), ("tiktoken", tok.encode_ordinary)]:
        t0 = time.perf_counter()
        ids = encode(text)
        print(f"{name:>8}: {len(text.encode()) / (time.perf_counter() - t0) / 1e6:6.2f} MB/s, {len(ids)} tokens")
