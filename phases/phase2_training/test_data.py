"""Phase 2 checkpoint, step 2: training windows from one token stream (data.py)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.phase2


def test_windows_are_shifted_by_one(data):
    tokens = np.arange(1000, dtype=np.uint16)
    x, y = data.TokenLoader(tokens, batch_size=2, seq_len=5).next_batch()
    assert x.tolist() == [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]]
    assert y.tolist() == [[1, 2, 3, 4, 5], [6, 7, 8, 9, 10]]


def test_rank_shards_are_disjoint_and_cover_the_stream(data):
    tokens = np.arange(10_000, dtype=np.uint16)
    loaders = [data.TokenLoader(tokens, 3, 8, rank=r, world_size=4) for r in range(4)]
    single = data.TokenLoader(tokens, 12, 8)
    for _ in range(5):
        parts = [loader.next_batch()[0] for loader in loaders]
        assert torch.equal(torch.cat(parts), single.next_batch()[0])  # ranks = rows of one big batch
    seen = torch.cat([torch.cat([loader.next_batch()[0] for loader in loaders]).flatten() for _ in range(3)])
    assert len(set(seen.tolist())) == len(seen)                          # no token read twice


def test_loader_state_round_trip_and_wrap(data):
    tokens = np.arange(100, dtype=np.uint16)
    a = data.TokenLoader(tokens, 2, 10)
    for _ in range(7):
        a.next_batch()
    b = data.TokenLoader(tokens, 2, 10)
    b.load_state_dict(a.state_dict())
    assert a.epoch == 1 and torch.equal(a.next_batch()[0], b.next_batch()[0])
