"""The fast path: export a trained BPETokenizer to a tiktoken ``Encoding`` and encode with it.

tiktoken (Rust) applies exactly the rule our pure-Python encoder applies (lowest-rank
bytes first, leftmost on ties, whole-chunk shortcut), so the ids are identical; the
checkpoint tests prove it on arbitrary text with hypothesis. ``BPETokenizer.encode``
calls ``fast_encode_ordinary`` and falls back to Python when:

- tiktoken is not installed (it is an optional dependency: ``pip install tiktoken``);
- the text holds lone surrogates (tiktoken would replace them with U+FFFD, breaking the
  exact round trip we promise), so such text takes the pure-Python path.

What it leaves out: pickling the Encoding (nanochat pickles it; we rebuild it from the
JSON file in well under a second instead, so loading never unpickles anything).

Run: ``python -m phases.phase0_tokenizer.fast`` compares both paths' speed on a sample.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

if TYPE_CHECKING:  # pragma: no cover
    from phases.phase0_tokenizer.bpe import BPETokenizer

try:
    import tiktoken
except ImportError:  # the fast path is optional
    tiktoken = None


def fast_available() -> bool:
    return tiktoken is not None


def to_tiktoken(tok: "BPETokenizer"):
    """Build (once, then cache on ``tok``) the tiktoken Encoding for ``tok``; None without tiktoken."""
    if tiktoken is None:
        return None
    if tok._fast is None:
        # tiktoken wants rank == id for every mergeable token; duplicates of the same
        # bytes (possible in principle) keep the lowest id, as BPETokenizer.ranks does.
        tok._fast = tiktoken.Encoding(
            name=f"mini-nanochat-{tok.vocab_size}",
            pat_str=tok.pattern,
            mergeable_ranks=dict(tok.ranks),
            special_tokens=dict(tok.special_tokens),
            explicit_n_vocab=None if len(tok.ranks) != len(tok.vocab) else tok.vocab_size,
        )
    return tok._fast


def _safe(text: str) -> bool:
    # Lone surrogates cannot be encoded as strict UTF-8; tiktoken would alter them.
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def fast_encode_ordinary(tok: "BPETokenizer", text: str) -> list[int] | None:
    enc = to_tiktoken(tok)
    if enc is None or not _safe(text):
        return None
    return enc.encode_ordinary(text)


def fast_encode_batch(tok: "BPETokenizer", texts: Sequence[str], num_threads: int = 8) -> list[list[int]] | None:
    enc = to_tiktoken(tok)
    if enc is None:
        return None
    if not all(_safe(t) for t in texts):
        return [tok.encode_ordinary(t) for t in texts]  # per text: fast where it can be
    return enc.encode_ordinary_batch(list(texts), num_threads=num_threads)


if __name__ == "__main__":
    import time

    from phases.phase0_tokenizer.bpe import BPETokenizer
    from phases.phase0_tokenizer.corpus import ensure_embedded_corpus, iter_texts

    info = ensure_embedded_corpus()
    tok = BPETokenizer.train(iter_texts(info.out_dir, "train", max_chars=3_000_000), vocab_size=4096)
    text = "\n".join(iter_texts(info.out_dir, "val", max_chars=2_000_000))
    for name, fn in [("python", tok.encode_ordinary_python), ("tiktoken", tok.encode_ordinary)]:
        tok._cache.clear()
        t0 = time.perf_counter()
        ids = fn(text)
        dt = time.perf_counter() - t0
        print(f"{name:>8}: {len(text.encode()) / dt / 1e6:6.2f} MB/s, {len(ids)} tokens")
