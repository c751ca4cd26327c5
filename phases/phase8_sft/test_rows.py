"""Phase 8 checkpoint: padded best-fit rows (mask rules, nothing cut, no empty row, exact resume)."""
from __future__ import annotations

import json

import pytest
import torch

pytestmark = pytest.mark.phase8

TOOL_CONV = {"messages": [
    {"role": "user", "content": "Maya has 23 pens and buys 17 more. How many now?"},
    {"role": "assistant", "content": [{"type": "python", "text": "23+17"}, {"type": "python_output", "text": "40"},
                                      {"type": "text", "text": "#### 40"}]}]}


def _convs(offline, n=120):
    return [c for task in ("arithmetic", "identity", "stdlib", "followups") for c in offline.generate(task, "train", n)]


def test_only_assistant_text_and_tool_calls_are_targets(rows, chat_tok):
    x, y = rows.ConversationRows([TOOL_CONV], chat_tok, 1, 96, cycle=False).next_batch()
    kept = [t for t in y[0].tolist() if t >= 0]
    sp = chat_tok.encode_special
    expected = ([sp("<|python_start|>")] + chat_tok.encode("23+17") + [sp("<|python_end|>")]
                + chat_tok.encode("#### 40") + [sp("<|assistant_end|>")])
    assert kept == expected                                   # the question and the tool's output: not learned
    assert sp("<|output_start|>") in x[0].tolist()             # ...but read
    assert (y[0] == -1).sum() == y.shape[1] - len(expected)


def _segments(row: list[int], bos: int) -> list[list[int]]:
    """Split a row at each <|bos|>: conversations start with one, padding is a run of them."""
    segs, cur = [], []
    for t in row:
        if t == bos and cur:
            segs.append(cur)
            cur = []
        cur.append(t)
    segs.append(cur)
    return [s for s in segs if s != [bos]]


def test_no_conversation_is_cut_or_lost(rows, offline, chat_tok):
    convs = _convs(offline)
    T = 160
    loader = rows.ConversationRows(convs, chat_tok, 4, T, cycle=False)
    bos, end = chat_tok.encode_special("<|bos|>"), chat_tok.encode_special("<|assistant_end|>")
    packed = []
    while True:
        try:
            ids, mask = loader.next_rows()
        except StopIteration:
            break
        for row in ids.tolist():
            packed += _segments(row, bos)
    rendered = [rows.render(chat_tok, c) for c in convs]
    fits = [list(r) for r in rendered if len(r) <= T + 1]
    # every conversation that fits is packed exactly once, whole
    assert sorted(packed) == sorted(fits) and len(packed) == loader.stats.conversations
    assert all(seg[-1] == end for seg in packed)
    assert loader.stats.dropped_long == len(rendered) - len(fits)


def test_long_and_unsupervised_conversations_are_dropped_and_counted(rows, chat_tok):
    long = {"messages": [{"role": "user", "content": "word " * 200}, {"role": "assistant", "content": "ok"}]}
    only_user = [{"role": "user", "content": "hello?"}]
    loader = rows.ConversationRows([TOOL_CONV, long, only_user, TOOL_CONV], chat_tok, 2, 64, cycle=False)
    x, y = loader.next_batch()
    assert loader.stats.dropped_long == 1 and loader.stats.dropped_unsupervised == 1
    assert loader.stats.conversations == 2
    assert loader.stats.dropped_share == 0.5


def test_when_no_conversation_fits_a_row_training_stops_with_a_reason(rows, chat_tok):
    """A training loader (cycle=True) whose every conversation is too long used to spin forever
    looking for one that fits (found by the pipeline's tiny-world test): now one clear error."""
    from phases.common.console import UserError
    long = {"messages": [{"role": "user", "content": "word " * 200}, {"role": "assistant", "content": "ok"}]}
    loader = rows.ConversationRows([long, long, long], chat_tok, 2, 64)
    with pytest.raises(UserError, match="none of the 3 conversations fits a row of 65 tokens .*raise sequence_len"):
        loader.next_batch()


def test_no_row_is_fully_masked(rows, offline, chat_tok):
    loader = rows.ConversationRows(_convs(offline), chat_tok, 8, 128)
    for _ in range(30):
        x, y = loader.next_batch()
        assert ((y >= 0).sum(1) > 0).all()
    st = loader.stats
    assert 0 < st.utilisation < st.fill <= 1


def test_padding_is_bos_and_ignored(rows, chat_tok):
    x, y = rows.ConversationRows([TOOL_CONV], chat_tok, 1, 200, cycle=False).next_batch()
    n = len(rows.render(chat_tok, TOOL_CONV))
    assert (x[0, n:] == chat_tok.encode_special("<|bos|>")).all() and (y[0, n - 1:] == -1).all()


def test_best_fit_uses_rows_better_than_greedy(rows, offline, chat_tok):
    convs = _convs(offline, 200)
    n_best, best = rows.count_rows(convs, chat_tok, 128, buffer_size=100)
    n_greedy, greedy = rows.count_rows(convs, chat_tok, 128, buffer_size=1)
    assert n_best < n_greedy and best.utilisation > greedy.utilisation
    assert best.supervised_tokens == greedy.supervised_tokens      # the same data, fewer rows


@pytest.mark.parametrize("world", [1, 2])
def test_resume_is_exact(rows, offline, chat_tok, world):
    convs = _convs(offline, 15)

    def make(rank):
        return rows.ConversationRows(convs, chat_tok, 3, 96, rank=rank, world_size=world, buffer_size=16)

    for rank in range(world):
        a = make(rank)
        for _ in range(7):
            a.next_batch()
        state = json.loads(json.dumps(a.state_dict()))           # it travels in meta.json
        expected = [a.next_batch() for _ in range(40)]            # crosses an epoch boundary
        b = make(rank)
        b.load_state_dict(state)
        for (xa, ya), (xb, yb) in zip(expected, (b.next_batch() for _ in range(40))):
            assert torch.equal(xa, xb) and torch.equal(ya, yb)
    assert a.epoch >= 1


def test_ranks_share_the_conversations(rows, offline, chat_tok):
    convs = _convs(offline, 30)
    seen = []
    for rank in range(2):
        loader = rows.ConversationRows(convs, chat_tok, 2, 128, rank=rank, world_size=2, cycle=False)
        while True:
            try:
                loader.next_batch()
            except StopIteration:
                break
        seen.append(loader.stats.conversations)
    assert sum(seen) == len(convs)


def test_resume_refuses_another_mixture(rows, offline, chat_tok):
    a = rows.ConversationRows(_convs(offline, 30), chat_tok, 2, 128)
    a.next_batch()
    b = rows.ConversationRows(_convs(offline, 31), chat_tok, 2, 128)
    with pytest.raises(Exception, match="mixture changed"):
        b.load_state_dict(a.state_dict())


def test_fixed_batches_respect_the_token_budget(rows, offline, chat_tok):
    batches = rows.fixed_batches(_convs(offline, 50), chat_tok, 4, 128, max_tokens=10 * 128)
    assert sum(len(x) for x, _ in batches) == 10
