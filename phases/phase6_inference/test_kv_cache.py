"""Phase 6 checkpoint, part 1: the KV cache (run against yours with --impl kv_cache=my_cache.py).

Tolerances (ADR.md): CPU float32; a cached forward computes the same sums as a full one in
another order (and batched matmuls block differently), so logits (up to the softcap, 15) agree within atol 1e-4;
positions, lengths and byte counts are exact.
"""
from __future__ import annotations

import pytest
import torch

from phases.phase6_inference.conftest import make_model, prompt_of

pytestmark = pytest.mark.phase6
ATOL = 1e-4      # logits reach the softcap (15): 1e-4 is ~7e-6 relative (ADR.md)


def _cache(kv_cache_mod, model, batch, max_len=512):
    return kv_cache_mod.KVCache.for_model(model, batch, max_len)


def _full(model, ids):
    with torch.no_grad():
        return model(torch.tensor([ids]))[0]                                  # (T, V)


@pytest.mark.parametrize("variant", ["all features", "plain"])
def test_prefill_then_decode_equals_one_full_forward(kv_cache_mod, tok, model, plain_model, variant):
    """Prefill 150 tokens, decode 100 one by one: past the 128-token windows, against one forward."""
    m = model if variant == "all features" else plain_model
    ids = prompt_of(tok, 250)
    cache = _cache(kv_cache_mod, m, 1)
    with torch.no_grad():
        pieces = [m(torch.tensor([ids[:150]]), kv_cache=cache.view(0))[0]]
        for t in range(150, 250):
            pieces.append(m(torch.tensor([[ids[t]]]), kv_cache=cache.view(0))[0])
    assert int(cache.pos[0]) == 250
    torch.testing.assert_close(torch.cat(pieces), _full(m, ids), atol=ATOL, rtol=0)


def test_rows_at_different_positions_decode_as_if_alone(kv_cache_mod, tok, model):
    """Three rows of lengths 20, 137 and 201 decode together, each at its own position."""
    lengths = [20, 137, 201]
    prompts = [prompt_of(tok, n + 6, seed=i) for i, n in enumerate(lengths)]
    cache = _cache(kv_cache_mod, model, 3)
    with torch.no_grad():
        for r, n in enumerate(lengths):
            model(torch.tensor([prompts[r][:n]]), kv_cache=cache.view(r))
        assert cache.pos.tolist() == lengths
        for step in range(6):
            nxt = torch.tensor([[p[n + step]] for p, n in zip(prompts, lengths)])    # (3, 1)
            logits = model(nxt, kv_cache=cache.view([0, 1, 2]))[:, -1]             # (3, V)
            for r, n in enumerate(lengths):
                torch.testing.assert_close(logits[r], _full(model, prompts[r][:n + step + 1])[-1], atol=ATOL, rtol=0)


def test_a_subset_of_scattered_rows_decodes_and_the_others_stay(kv_cache_mod, tok, model):
    cache = _cache(kv_cache_mod, model, 4)
    prompts = [prompt_of(tok, 30 + 10 * r, seed=r) for r in range(4)]
    with torch.no_grad():
        for r, p in enumerate(prompts):
            model(torch.tensor([p[:-1]]), kv_cache=cache.view(r))
        logits = model(torch.tensor([[prompts[3][-1]], [prompts[0][-1]]]), kv_cache=cache.view([3, 0]))[:, -1]
    assert cache.pos.tolist() == [30, 39, 49, 60]
    torch.testing.assert_close(logits[0], _full(model, prompts[3])[-1], atol=ATOL, rtol=0)
    torch.testing.assert_close(logits[1], _full(model, prompts[0])[-1], atol=ATOL, rtol=0)


def test_truncate_rolls_back_exactly(kv_cache_mod, tok, model):
    """Decode 40 tokens, roll back to 170 (mid-decode) and to 100 (mid-prefill), continue differently."""
    ids, other = prompt_of(tok, 200), prompt_of(tok, 200, seed=9)
    cache = _cache(kv_cache_mod, model, 1)
    with torch.no_grad():
        model(torch.tensor([ids[:160]]), kv_cache=cache.view(0))
        for t in range(160, 200):
            model(torch.tensor([[ids[t]]]), kv_cache=cache.view(0))
        for keep in (170, 100):
            cache.truncate(0, keep)
            got = model(torch.tensor([other[keep:keep + 5]]), kv_cache=cache.view(0))[0]
            torch.testing.assert_close(got, _full(model, ids[:keep] + other[keep:keep + 5])[keep:], atol=ATOL, rtol=0)
            cache.truncate(0, keep)
    with pytest.raises(ValueError):
        cache.truncate(0, 500)


def test_copy_prefix_gives_every_row_the_prompt(kv_cache_mod, tok, model):
    ids = prompt_of(tok, 90)
    cache = _cache(kv_cache_mod, model, 4)
    with torch.no_grad():
        model(torch.tensor([ids[:80]]), kv_cache=cache.view(1))
        cache.copy_prefix(1, [0, 2, 3])
        assert cache.pos.tolist() == [80] * 4
        cache.copy_prefix(1, [3], length=50)                                    # a shorter shared prefix
        assert cache.pos.tolist() == [80, 80, 80, 50]
        rows = model(torch.tensor([[ids[80]]] * 3), kv_cache=cache.view([0, 1, 2]))[:, -1]
        short = model(torch.tensor([ids[50:60]]), kv_cache=cache.view(3))[0, -1]
    want = _full(model, ids[:81])[-1]
    for r in range(3):
        torch.testing.assert_close(rows[r], want, atol=ATOL, rtol=0)
    torch.testing.assert_close(short, _full(model, ids[:60])[-1], atol=ATOL, rtol=0)


def test_the_cache_is_written_in_place(kv_cache_mod, tok, plain_model):
    cache = _cache(kv_cache_mod, plain_model, 2, max_len=64)
    ptrs = [t.data_ptr() for t in cache.k + cache.v]
    with torch.no_grad():
        plain_model(torch.tensor([prompt_of(tok, 10)] * 2), kv_cache=cache.view([0, 1]))
        for t in range(20):
            plain_model(torch.tensor([[5], [6]]), kv_cache=cache.view([0, 1]))
    assert [t.data_ptr() for t in cache.k + cache.v] == ptrs
    assert len(cache.k) == 4 and cache.k[0].numel() == 2 * 64 * 2 * 16       # L x B x T_max x Hkv x D, any order
    assert cache.pos.tolist() == [30, 30]
    with pytest.raises(ValueError, match="holds 64"):
        with torch.no_grad():
            plain_model(torch.tensor([prompt_of(tok, 40)] * 2), kv_cache=cache.view([0, 1]))


def test_bytes_reported(kv_cache_mod, tok, model, plain_model):
    for m in (model, plain_model):
        cache = _cache(kv_cache_mod, m, 3, max_len=100)
        extra = m.config.n_embd * 4 if m.config.smear else 0                  # the smear embedding, fp32
        assert cache.bytes_per_token() == m.kv_bytes_per_token(torch.float32) + extra
        assert cache.bytes_allocated() == 3 * 100 * cache.bytes_per_token()
        assert cache.bytes_used() == 0
        cache.pos[:] = torch.tensor([10, 0, 7])
        assert cache.bytes_used() == 17 * cache.bytes_per_token()
        cache.reset([0])
        assert cache.pos.tolist() == [0, 0, 7]
        cache.reset()
        assert cache.bytes_used() == 0


def test_row_masks_equal_the_single_row_mask(layers):
    start = torch.tensor([0, 5, 12])
    masks = layers.row_attention_mask(start, 3, 15, window=4)                 # (3, 1, 3, 15)
    for b, s in enumerate(start.tolist()):
        want = layers.attention_mask(3, s + 3, 4)                             # queries = the last 3 of s+3
        assert torch.equal(masks[b, 0, :, :s + 3], want)
        assert not masks[b, 0, :, s + 3:].any()                               # another row's longer tail


def test_a_cache_larger_than_memory_is_refused_with_its_size(kv_cache_mod, tok):
    """Issue 15 re-attack: `generate -n 100000` swapped for minutes; now an error with the figure."""
    from phases.common.console import UserError
    m = make_model(tok, sequence_len=16)
    with pytest.raises(UserError, match=r"a KV cache of 10,000,000,000 rows x 16 tokens needs .* but cpu has"):
        kv_cache_mod.KVCache.for_model(m, 10 ** 10, 16)


def test_max_len_beyond_the_rotary_table_is_refused(kv_cache_mod, tok):
    m = make_model(tok, sequence_len=16)
    with pytest.raises(ValueError, match="rotary"):
        kv_cache_mod.KVCache.for_model(m, 1, 161)
