"""Phase 0 checkpoint: the shard format (shards.py): listing, splits, reading, and clear errors.

The corpus under test is built by ``corpus.py`` on a tiny source set (seconds); the broken
shards are written by hand, one per mistake ``open_shard`` must name.
"""
from __future__ import annotations

import re
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from phases.common.console import UserError
from phases.phase0_tokenizer import corpus, shards

pytestmark = pytest.mark.phase0
TINY = dict(packages=["markupsafe"], stdlib_modules=("json", "textwrap", "string"),
            include_topics=False, shard_chars=5_000, show_progress=False)


def build(out: Path) -> corpus.CorpusInfo:
    return corpus.build_embedded_corpus(out, **TINY)


def shard_texts(path: Path) -> list[str]:
    return pq.read_table(path).column("text").to_pylist()


def test_iter_texts_limits(tmp_path: Path) -> None:
    info = build(tmp_path / "c")
    capped = list(shards.iter_texts(info.out_dir, "train", doc_cap=100))
    assert capped and all(len(t) <= 100 for t in capped) and max(map(len, capped)) == 100
    limited = list(shards.iter_texts(info.out_dir, "train", max_chars=1_234))
    assert sum(map(len, limited)) == 1_234
    train = list(shards.iter_texts(info.out_dir, "train"))
    val = list(shards.iter_texts(info.out_dir, "val"))
    assert len(train) + len(val) == info.num_docs and val == shard_texts(info.val_shard)
    with pytest.raises(UserError):
        list(shards.iter_texts(info.out_dir, max_chars=0))


def test_list_shards(tmp_path: Path) -> None:
    info = build(tmp_path / "c")
    assert shards.list_shards(info.out_dir, "val") == [info.val_shard]
    assert shards.list_shards(info.out_dir, "train") == info.shards[:-1]
    assert shards.list_shards(info.out_dir, "all") == info.shards
    (tmp_path / "empty").mkdir()
    for folder in (tmp_path / "empty", tmp_path / "missing"):
        with pytest.raises(UserError, match=re.escape("mini-nanochat data embedded")):
            shards.list_shards(folder)
    with pytest.raises(UserError, match="split"):
        shards.list_shards(info.out_dir, "test")


def test_write_then_read_back(tmp_path: Path) -> None:
    docs = [f"document {i} " * 3 for i in range(10)]
    shards.write_shard(tmp_path / shards.shard_name(0), docs[:7], row_group_size=3)
    shards.write_shard(tmp_path / shards.shard_name(1), docs[7:])
    assert shards.shard_name(0) == "shard_00000.parquet"
    assert pq.ParquetFile(tmp_path / "shard_00000.parquet").num_row_groups == 3
    assert list(shards.iter_texts(tmp_path, "all")) == docs
    assert shards.shard_problem(tmp_path / "shard_00000.parquet") is None


@pytest.mark.parametrize("write, message", [
    (lambda p: p.write_bytes(b""), "is empty (0 bytes)"),
    (lambda p: p.write_bytes(b"not parquet at all " * 20), "is not a readable parquet file"),
    (lambda p: p.write_bytes(_good_bytes()[:-40]), "is not a readable parquet file"),            # truncated
    (lambda p: pq.write_table(pa.table({"content": ["x"]}), p), "has no string column 'text' (columns: content)"),
    (lambda p: pq.write_table(pa.table({"text": [1, 2]}), p), "has no string column 'text'"),
    (lambda p: pq.write_table(pa.table({"text": ["a", None]}), p), "has 1 null text value(s) in row group 0"),
])
def test_a_bad_shard_is_named_with_what_is_wrong(tmp_path: Path, write, message) -> None:
    path = tmp_path / shards.shard_name(0)
    write(path)
    with pytest.raises(UserError, match=re.escape(f"{path} {message}")):
        shards.open_shard(path)
    assert message.split(" ", 1)[1] in shards.shard_problem(path)
    shards.write_shard(tmp_path / shards.shard_name(1), ["fine"])
    with pytest.raises(UserError, match=re.escape(str(path))):
        list(shards.iter_texts(tmp_path, "train"))


def _good_bytes() -> bytes:
    import io
    buf = io.BytesIO()
    pq.write_table(pa.table({"text": ["a document"] * 50}), buf)
    return buf.getvalue()
