"""Phase 1 checkpoint: the sampler (run against your own with --impl sampling=my_sampling.py).

Everything here is exact: filtering keeps or drops whole tokens, and the draws use a seeded
``torch.Generator``.
"""
from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

pytestmark = pytest.mark.phase1


def _logits(B=3, V=50, seed=0):
    return torch.randn(B, V, generator=torch.Generator().manual_seed(seed)) * 3


def test_greedy_is_the_argmax_and_uses_no_randomness(sampling):
    logits = _logits()
    g = torch.Generator().manual_seed(0)
    before = g.get_state().clone()
    assert torch.equal(sampling.sample_next(logits, temperature=0, generator=g), logits.argmax(-1))
    assert torch.equal(g.get_state(), before)


def test_top_k_keeps_exactly_the_k_best(sampling):
    logits = _logits()
    x = sampling.filter_logits(logits, top_k=5)
    kept = torch.isfinite(x)
    assert kept.sum(-1).tolist() == [5, 5, 5]
    best = logits.topk(5, dim=-1).indices
    assert kept.gather(1, best).all()


def test_top_p_keeps_the_smallest_set_reaching_p(sampling):
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    kept = lambda p: torch.isfinite(sampling.filter_logits(logits, top_p=p))[0].tolist()  # noqa: E731
    assert kept(0.5) == [True, False, False, False]      # 0.5 alone reaches 0.5
    assert kept(0.6) == [True, True, False, False]
    assert kept(0.95) == [True, True, True, False]
    assert kept(1.0) == [True, True, True, True]


@settings(max_examples=50, deadline=None)
@given(p=st.floats(0.01, 1.0), seed=st.integers(0, 1000))
def test_top_p_mass_property(sampling, p, seed):
    logits = _logits(B=2, V=30, seed=seed)
    probs = logits.softmax(-1)
    kept = torch.isfinite(sampling.filter_logits(logits, top_p=p))
    mass = (probs * kept).sum(-1)
    assert (mass >= p - 1e-6).all()                                 # enough mass kept ...
    smallest_kept = torch.where(kept, probs, torch.ones_like(probs)).min(-1).values
    assert ((mass - smallest_kept) < p + 1e-6).all()                # ... and no token more than needed


def test_temperature_scales_and_per_row_knobs(sampling):
    logits = _logits(B=2)
    both = sampling.filter_logits(logits, temperature=torch.tensor([0.5, 2.0]), top_k=torch.tensor([3, 0]))
    assert torch.allclose(both[0], sampling.filter_logits(logits[:1], temperature=0.5, top_k=3)[0])
    assert torch.allclose(both[1], logits[1] / 2.0)                 # top_k 0 = off


def test_per_row_generators_make_rows_independent_of_the_batch(sampling):
    logits = _logits(B=3)
    gens = lambda: [torch.Generator().manual_seed(10 + r) for r in range(3)]  # noqa: E731
    batch = sampling.sample_next(logits, temperature=1.0, generator=gens())
    for r in range(3):
        alone = sampling.sample_next(logits[r:r + 1], temperature=1.0, generator=[gens()[r]])
        assert alone.item() == batch[r].item()


def test_the_same_seed_gives_the_same_draws(sampling):
    logits = _logits(B=4)
    draw = lambda: sampling.sample_next(logits, 1.0, 10, 0.9, torch.Generator().manual_seed(7))  # noqa: E731
    assert torch.equal(draw(), draw())


@pytest.mark.parametrize("bad", [dict(temperature=-1), dict(top_k=-2), dict(top_p=0.0), dict(top_p=1.5),
                                 dict(temperature=float("nan"))])
def test_bad_knobs_are_clear_errors(sampling, bad):
    with pytest.raises(ValueError):
        sampling.sample_next(_logits(), **bad)


def test_entropy_of_uniform_peaked_and_greedy(sampling):
    import math
    uniform = torch.zeros(1, 8)
    assert sampling.entropy(uniform).item() == pytest.approx(math.log(8))
    two = torch.tensor([[3.0, 3.0, 0.0, -1.0]])                       # top-2 keeps two equal tokens
    assert sampling.entropy(two, top_k=2).item() == pytest.approx(math.log(2))
    peaked = torch.tensor([[50.0, 0.0, 0.0]])
    assert sampling.entropy(peaked).item() == pytest.approx(0.0, abs=1e-6)
    assert sampling.entropy(_logits(), temperature=0).tolist() == [0.0, 0.0, 0.0]


def test_a_row_generator_draws_as_the_single_generator_does(sampling):
    """Per-row generators draw what one generator gives a one-row batch: Phase 6's engine (a
    generator per row) reproduces Phase 1's naive generate (one generator) token for token."""
    logits = _logits(B=3)
    gens = [torch.Generator().manual_seed(s) for s in (1, 2, 3)]
    rows = sampling.sample_next(logits, 0.9, 10, 0.95, generator=gens)
    for r, s in enumerate((1, 2, 3)):
        alone = sampling.sample_next(logits[r:r + 1], 0.9, 10, 0.95, generator=torch.Generator().manual_seed(s))
        assert alone.item() == rows[r].item()
