"""The tokenizer's file, ``tokenizer.json``: written atomically, read back with every field checked.

One JSON object: ``format`` and ``version`` (what wrote it), the split ``pattern``, the
``special_tokens`` in id order, ``vocab_size`` and the ``merges`` as ``[left, right]`` pairs,
in merge order. That is all a tokenizer is: ``BPETokenizer(merges, pattern, special_tokens)``
rebuilds the vocabulary, and the tiktoken fast path is rebuilt from it in well under a second.

``save_tokenizer`` writes through ``files.atomic_write_text`` (a crash leaves the old file or
the new one, never half of one); ``load_tokenizer`` refuses, with the file's name, a missing
file, broken JSON, another format or version, missing fields, merges that are not pairs of
existing ids, and a ``vocab_size`` that disagrees with the merges: one ``error:`` line, never a
traceback. ``BPETokenizer.save`` / ``BPETokenizer.load`` call these; they are the file's one
writer and one reader.

What it leaves out: pickle (nanochat pickles its tiktoken Encoding; loading a pickle can run
code, loading JSON cannot), other tokenizers' formats (Hugging Face ``tokenizer.json``).

Run: through ``BPETokenizer.save`` / ``BPETokenizer.load`` (``python -m phases.phase0_tokenizer.bpe``).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from phases.common.console import UserError
from phases.common.files import atomic_write_text

FORMAT = "mini-nanochat-bpe"
FORMAT_VERSION = 1
FILENAME = "tokenizer.json"


def save_tokenizer(tok, directory: str | os.PathLike) -> Path:
    """Write ``tok`` as ``directory/tokenizer.json``, atomically; return the file's path."""
    path = Path(directory) / FILENAME
    payload = {
        "format": FORMAT, "version": FORMAT_VERSION, "pattern": tok.pattern,
        "special_tokens": list(tok.special_tokens), "vocab_size": tok.vocab_size,
        "merges": [list(m) for m in tok.merges],
    }
    atomic_write_text(path, json.dumps(payload, separators=(",", ":")))
    return path


def load_tokenizer(cls, directory: str | os.PathLike, use_fast: bool = True):
    """``cls(merges, pattern, special_tokens, use_fast)`` from ``directory/tokenizer.json`` (or that file),
    every field checked; a UserError naming the file for anything that is not a tokenizer we wrote."""
    path = Path(directory)
    path = path / FILENAME if path.is_dir() else path
    if not path.exists():
        raise UserError(f"no tokenizer at {path}; train one with "
                        f"`mini-nanochat tokenizer train --vocab-size 8192`")
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(payload, dict) or payload.get("format") != FORMAT or payload.get("version") != FORMAT_VERSION:
            raise ValueError(f"not a {FORMAT} v{FORMAT_VERSION} file")
        missing = [k for k in ("merges", "pattern", "special_tokens", "vocab_size") if k not in payload]
        if missing:
            raise ValueError(f"no {', '.join(missing)}")
        if not isinstance(payload["merges"], list):
            raise ValueError("merges must be a list of [left, right] pairs")
        tok = cls(payload["merges"], pattern=payload["pattern"], special_tokens=payload["special_tokens"],
                  use_fast=use_fast)
    except OSError as e:
        raise UserError(f"cannot read tokenizer file {path}: {e.strerror or e}") from None
    except RecursionError:
        raise UserError(f"corrupt tokenizer file {path}: JSON nested too deeply") from None
    except (ValueError, TypeError) as e:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise UserError(f"corrupt tokenizer file {path}: {e}") from None
    if tok.vocab_size != payload["vocab_size"]:
        raise UserError(f"corrupt tokenizer file {path}: vocab_size {payload['vocab_size']!r} does not match "
                        f"its {len(tok.merges)} merges and {len(tok.special_tokens)} special tokens")
    return tok
