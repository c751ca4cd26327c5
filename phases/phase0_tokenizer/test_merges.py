"""Phase 0 checkpoint: counting chunks and learning merges (merges.py).

The merges themselves are checked through ``BPETokenizer.train`` in ``test_bpe.py`` (golden
values, the naive recount, rustbpe parity); here the pieces underneath.
"""
from __future__ import annotations

import pytest

from phases.phase0_tokenizer.merges import count_chunks, train_merges

pytestmark = pytest.mark.phase0


def test_parallel_counting_matches_serial(golden_text):
    docs = [golden_text[i:i + 50_000] for i in range(0, len(golden_text), 50_000)] * 30
    assert count_chunks(docs, workers=1) == count_chunks(docs, workers=2)


def test_ties_go_to_the_smallest_pair():
    # "ab" and "cd" occur equally often: (97, 98) < (99, 100), so "ab" is merged first
    assert train_merges({"ab": 3, "cd": 3}, 2) == [(97, 98), (99, 100)]
    assert train_merges({"a": 10}, 5) == []                       # a 1-byte chunk never merges
