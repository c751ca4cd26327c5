"""Phase 5 checkpoint, step 1: documents from row groups, shared out by rank, tokenized in the background (stream.py)."""
from __future__ import annotations

from collections import Counter

import pytest

from phases.phase0_tokenizer.shards import list_shards

pytestmark = pytest.mark.phase5


def test_rank_sharding_is_disjoint_and_covering(stream, grouped_dir):
    paths = list_shards(grouped_dir)
    everything = stream.shard_units(paths)
    assert len(everything) > 6                                      # many row groups to share
    per_rank = [stream.DocumentStream(paths, r, 3) for r in range(3)]
    units = [set((u.path, u.row_group) for u in ds.units) for ds in per_rank]
    assert all(not (units[a] & units[b]) for a in range(3) for b in range(a + 1, 3))
    assert set.union(*units) == {(u.path, u.row_group) for u in everything}
    # document level: one epoch of every rank together = every training document once
    texts = Counter()
    for ds in per_rank:
        got = ds.read(range(ds.docs_per_epoch))
        texts.update(got.values())
    import pyarrow.parquet as pq
    expected = Counter(t for p in paths for t in pq.read_table(p).column("text").to_pylist())
    assert texts == expected


def test_document_numbers_run_across_epochs(stream, grouped_dir):
    ds = stream.DocumentStream(list_shards(grouped_dir), 1, 2)
    d = ds.docs_per_epoch
    assert ds.locate(0) == (0, 0, 0) and ds.locate(d) == (1, 0, 0)
    assert ds.locate(d + 9)[0] == 1 and ds.read([3])[3] == ds.read([d + 3])[d + 3]


def test_background_tokenization_is_in_order_and_prepends_bos(stream, grouped_dir, tiny_data):
    tok = tiny_data["tok"]
    ds = stream.DocumentStream(list_shards(grouped_dir))
    docs = stream.TokenizedDocs(ds, tok, start=5, threads=2, prefetch=2)
    got = [docs.next() for _ in range(ds.docs_per_epoch + 3)]          # wraps into epoch 1
    docs.close()
    assert [n for n, _ in got] == list(range(5, 5 + len(got)))
    texts = ds.read([n for n, _ in got])
    assert all(ids == [tok.bos_token_id] + tok.encode_ordinary(texts[n]) for n, ids in got)
