"""The shard format: pretraining text as a folder of parquet files, one writer and one reader.

A dataset is a folder of ``shard_00000.parquet``, ``shard_00001.parquet``, … (sorted by
name), each with one string column ``text``, one document per row, stored in row groups
of ``ROWS_PER_GROUP`` documents. The **last shard is the validation split**; the others
are the training split. nanochat's pretraining shards on the Hugging Face Hub
(``phases/phase5_data/download.py``) and the offline embedded corpus (``corpus.py``) both
have exactly this layout, so everything that reads text (the tokenizer trainer, Phase 2's
and Phase 5's loaders, the dataset inspector) goes through this file:

- ``write_shard``: the one writer (atomic, zstd, no dictionary encoding);
- ``list_shards``: the shards of a split (``train``, ``val`` or ``all``);
- ``open_shard`` / ``shard_problem``: open a shard, or say why it cannot be used: empty,
  truncated or not parquet at all, no string ``text`` column, no rows, null rows;
  ``check_folder``: every shard of a folder, so a command fails before its work starts;
- ``read_row_group`` and ``iter_texts``: documents, one row group at a time.

What it leaves out: other columns, remote files (download them first), shuffling (the
writers shuffle before they write).

Run: ``python -m phases.phase0_tokenizer.shards DIR`` lists the shards of a folder with
their split, documents and row groups.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator, Sequence

import pyarrow as pa
import pyarrow.parquet as pq

from phases.common.console import UserError
from phases.common.files import atomic_path

SHARD_GLOB = "shard_*.parquet"
ROWS_PER_GROUP = 1024  # nanochat's shards use 1,024 documents per row group too
SPLITS = ("train", "val", "all")


def shard_name(index: int) -> str:
    """``shard_00042.parquet``: five digits, so names sort in shard order."""
    return f"shard_{index:05d}.parquet"


def write_shard(path: str | os.PathLike, docs: Sequence[str], row_group_size: int | None = None) -> None:
    """Write one shard atomically (a crash leaves the old file or the new one, never half);
    ``row_group_size`` documents per row group, default ``ROWS_PER_GROUP``."""
    table = pa.table({"text": pa.array(list(docs), type=pa.string())})
    with atomic_path(path) as tmp:
        # Unique texts gain nothing from dictionary encoding; zstd keeps the files small.
        pq.write_table(table, tmp, row_group_size=row_group_size or ROWS_PER_GROUP, compression="zstd",
                       use_dictionary=False)


def list_shards(data_dir: str | os.PathLike, split: str = "train") -> list[Path]:
    """Shard paths of ``split``: "train" (all but the last), "val" (the last) or "all"."""
    if split not in SPLITS:
        raise UserError(f"split must be 'train', 'val' or 'all', got {split!r}")
    folder = Path(data_dir)
    shards = sorted(folder.glob(SHARD_GLOB)) if folder.is_dir() else []
    if not shards:
        raise UserError(f"no {SHARD_GLOB} files in {folder}; build the offline corpus with "
                        "`mini-nanochat data embedded` (or pass the folder that holds the shards)")
    if split != "all" and len(shards) < 2:
        raise UserError(f"{folder} holds a single shard; train/val splitting needs at least 2")
    return shards if split == "all" else shards[-1:] if split == "val" else shards[:-1]


# ---------------------------------------------------------------------------
# Opening with validation


def _text_column(schema: pa.Schema) -> str | None:
    field = schema.field("text") if "text" in schema.names else None
    if field is None or not (pa.types.is_string(field.type) or pa.types.is_large_string(field.type)):
        return f"no string column 'text' (columns: {', '.join(schema.names) or 'none'})"
    return None


def _nulls(pf: pq.ParquetFile) -> str | None:
    """Null rows, from the footer's statistics when the writer stored them (pyarrow does)."""
    meta, column = pf.metadata, pf.schema_arrow.names.index("text")
    for g in range(meta.num_row_groups):
        stats = meta.row_group(g).column(column).statistics
        if stats is not None and stats.has_null_count and stats.null_count:
            return f"{stats.null_count} null text value(s) in row group {g}; every row must hold a document"
    return None


def _check(path: Path, allow_null: bool = False) -> tuple[pq.ParquetFile | None, str, str | None]:
    """(the opened file, verb, what is wrong) for a message "<path> <verb> <what>"; what = None if fine."""
    try:
        if path.stat().st_size == 0:
            return None, "is", "empty (0 bytes): an interrupted write or download; delete it"
        pf = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as e:
        return None, "is", f"not a readable parquet file ({e}); delete it and download or build it again"
    if pf.metadata.num_rows == 0:
        return pf, "has", "no documents (0 rows): an empty shard trains nothing; delete it"
    return pf, "has", _text_column(pf.schema_arrow) or (None if allow_null else _nulls(pf))


def shard_problem(path: str | os.PathLike) -> str | None:
    """Why ``path`` cannot be used as a shard (e.g. "not a readable parquet file (…)"), or None."""
    return _check(Path(path))[2]


def open_shard(path: str | os.PathLike, allow_null: bool = False) -> pq.ParquetFile:
    """Open a shard after checking it; a ``UserError`` names the file and what is wrong with it.

    ``allow_null``: open a shard with null rows anyway (the dataset inspector lists them).
    """
    pf, verb, problem = _check(Path(path), allow_null)
    if problem:
        raise UserError(f"{path} {verb} {problem}")
    return pf


def check_folder(data_dir: str | os.PathLike) -> list[Path]:
    """Every shard of a folder, checked (footers only: fast); a ``UserError`` names the bad ones.

    Commands call it on start, so a broken shard is reported before minutes of work, and
    whichever split it belongs to.
    """
    shards = list_shards(data_dir, "all")
    bad = [f"{path} {verb} {problem}" for path in shards for _, verb, problem in [_check(path)] if problem]
    if bad:
        more = f" (and {len(bad) - 1} more bad shard(s))" if len(bad) > 1 else ""
        raise UserError(bad[0] + more)
    return shards


# ---------------------------------------------------------------------------
# Reading


def read_row_group(path: str | os.PathLike, index: int, pf: pq.ParquetFile | None = None,
                   allow_null: bool = False) -> list[str]:
    """The documents of one row group; a damaged page or a null row is a ``UserError`` naming both
    (``allow_null``: null rows come back as None instead)."""
    try:
        texts = (pf or pq.ParquetFile(path)).read_row_group(index, columns=["text"]).column("text").to_pylist()
    except (pa.ArrowException, OSError) as e:
        raise UserError(f"{path}: row group {index} cannot be read ({e}); "
                        "the shard is corrupt: delete it and download it again") from None
    if not allow_null and any(t is None for t in texts):
        raise UserError(f"{path}: row group {index} has null text rows; every row must hold a document")
    return texts


def iter_texts(data_dir: str | os.PathLike, split: str = "train", *, max_chars: int | None = None,
               doc_cap: int | None = None) -> Iterator[str]:
    """Stream documents of ``split`` row group by row group (never the whole file in memory).

    Each document is cropped to ``doc_cap`` characters, and iteration stops once
    ``max_chars`` characters were yielded (the last document cropped to land exactly on it).
    """
    for name, value in (("max_chars", max_chars), ("doc_cap", doc_cap)):
        if value is not None and value <= 0:
            raise UserError(f"{name} must be positive, got {value}")
    budget = max_chars
    for path in list_shards(data_dir, split):
        pf = open_shard(path)
        for rg in range(pf.num_row_groups):
            for text in read_row_group(path, rg, pf):
                if doc_cap is not None:
                    text = text[:doc_cap]
                if budget is not None:
                    text = text[:budget]
                    budget -= len(text)
                yield text
                if budget == 0:
                    return


if __name__ == "__main__":
    import sys

    from phases.common.console import run_command
    from phases.common.paths import data_dir

    def main() -> None:
        folder = Path(sys.argv[1]) if len(sys.argv) > 1 else data_dir()
        shards = list_shards(folder, "all")
        for path in shards:
            meta = open_shard(path).metadata
            split = "val" if path == shards[-1] else "train"
            print(f"{path.name}  {split:5s}  {meta.num_rows:>8,} docs  {meta.num_row_groups:>4} row groups")

    sys.exit(run_command(main))
