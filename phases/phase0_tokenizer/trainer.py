"""Training the project's tokenizer: from a folder of shards to a saved ``tokenizer.json``.

``train_tokenizer`` trains a ``BPETokenizer`` on the training split of a shard folder
(``shards.py``; the embedded corpus by default), then saves ``tokenizer.json`` and, next to
it, ``train_info.json``: the ``TrainSettings`` that made it (vocabulary size, data folder,
character budget, per-document crop) and how long it took, both written atomically. The
settings let the demo reuse a tokenizer when nothing changed, and let the evaluation
(``compression.py``) retrain rustbpe on exactly the same texts.

What it leaves out: training on anything but parquet shards (convert first).

Run: ``python -m phases.phase0_tokenizer.trainer --vocab-size 8192`` (``mini-nanochat
tokenizer train`` mounts the same ``add_arguments`` / ``run``).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from phases.common.console import UserError, command, path_arg, positive_int
from phases.common.files import atomic_write_text, output_dir, output_file
from phases.common.paths import data_dir, tokenizer_dir
from phases.phase0_tokenizer.bpe import FILENAME, BPETokenizer, check_vocab_size
from phases.phase0_tokenizer.corpus import ensure_embedded_corpus
from phases.phase0_tokenizer.shards import check_folder, iter_texts, list_shards

TRAIN_INFO = "train_info.json"


@dataclass
class TrainSettings:
    """Everything that determines a trained tokenizer (saved next to it)."""
    vocab_size: int
    data_dir: str
    max_chars: int
    doc_cap: int

    def texts(self):
        return iter_texts(Path(self.data_dir), "train", max_chars=self.max_chars, doc_cap=self.doc_cap)


def resolve_data_dir(folder: str | Path | None, show_progress: bool = True) -> Path:
    """The training data folder; the embedded corpus is built on first use."""
    if folder is None:
        return Path(ensure_embedded_corpus(data_dir("embedded"), show_progress=show_progress).out_dir)
    path = Path(folder).expanduser()
    check_folder(path)  # a clear UserError when a shard is missing or broken, before training starts
    list_shards(path, "train")
    return path


def train_tokenizer(settings: TrainSettings, out_dir: Path, workers: int | None = None,
                    show_progress: bool = True) -> tuple[BPETokenizer, float]:
    """Train, save ``tokenizer.json`` + ``train_info.json`` atomically; return (tokenizer, seconds)."""
    t0 = time.perf_counter()
    tok = BPETokenizer.train(settings.texts(), settings.vocab_size, workers=workers, show_progress=show_progress)
    seconds = time.perf_counter() - t0
    tok.save(out_dir)
    info = {**asdict(settings), "train_seconds": round(seconds, 3), "merges": len(tok.merges)}
    atomic_write_text(Path(out_dir) / TRAIN_INFO, json.dumps(info, indent=2))
    return tok, seconds


def load_train_settings(folder: str | Path) -> TrainSettings | None:
    """The settings a tokenizer folder was trained with, or None (trained elsewhere)."""
    path = Path(folder) / TRAIN_INFO
    if not path.exists():
        return None
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        settings = TrainSettings(raw["vocab_size"], raw["data_dir"], raw["max_chars"], raw["doc_cap"])
        if not (isinstance(settings.data_dir, str) and all(isinstance(getattr(settings, k), int) and getattr(settings, k) > 0
                                                            for k in ("vocab_size", "max_chars", "doc_cap"))):
            raise ValueError("a value has the wrong type")
        return settings
    except (OSError, ValueError, KeyError, TypeError, RecursionError) as e:
        raise UserError(f"corrupt {path}: {e}; retrain with `mini-nanochat tokenizer train`") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--vocab-size", type=positive_int, default=8192,
                        help="vocabulary size including the 9 special tokens (default 8192; nanochat uses 32768)")
    parser.add_argument("--out", type=path_arg, default=None, help="output folder (default <base>/tokenizer)")
    parser.add_argument("--data", type=path_arg, default=None,
                        help="folder of parquet shards with a 'text' column (default: the embedded corpus)")
    parser.add_argument("--max-chars", type=positive_int, default=2_000_000_000,
                        help="stop after this many characters (default 2e9, as nanochat)")
    parser.add_argument("--doc-cap", type=positive_int, default=10_000,
                        help="crop each document to this many characters (default 10000)")
    parser.add_argument("--workers", type=positive_int, default=None, help="processes for chunk counting")


def run(args: argparse.Namespace) -> BPETokenizer:
    show = not getattr(args, "no_progress", False)
    check_vocab_size(args.vocab_size)                 # arguments first: before minutes of corpus building
    out = output_dir(args.out or tokenizer_dir(), "--out")
    output_file(out / FILENAME, "--out")              # a folder named tokenizer.json would fail at the end
    folder = resolve_data_dir(args.data, show_progress=show)
    settings = TrainSettings(args.vocab_size, str(folder.resolve()), args.max_chars, args.doc_cap)
    tok, seconds = train_tokenizer(settings, out, workers=args.workers, show_progress=show)
    print(f"trained {len(tok.merges)} merges (vocab {tok.vocab_size}) in {seconds:.1f}s -> {out}")
    if tok.vocab_size < args.vocab_size:
        print(f"note: vocab_size {args.vocab_size:,} was not reached: the training text only has "
              f"{len(tok.merges):,} pairs worth merging (use more --data or --max-chars, or a smaller --vocab-size)")
    return tok


if __name__ == "__main__":
    sys.exit(command("Train the byte-level BPE tokenizer on the train shards (all but the last) of --data.",
                     add_arguments, run))
