"""Phase 3 checkpoint: the depth dial's numbers (scaling.py) against nanochat's table.

Tolerances (ADR.md): the auto-scaling table within 1% of nanochat's (spec §3.3).
"""
from __future__ import annotations

import math

import pytest

pytestmark = pytest.mark.phase3

# nanochat's table (spec §3.3): depth -> (batch tokens, iterations, Muon weight decay), ratio 12
NANOCHAT = {12: (524_288, 2_520, 0.280), 16: (524_288, 5_376, 0.131), 20: (1_048_576, 4_980, 0.100),
            24: (1_048_576, 8_352, 0.0597), 26: (1_048_576, 10_510, 0.0475)}


def test_scaling_rules_reproduce_nanochats_table(scaling):
    """The rules alone (``scaling.py``: --impl scaling=my_scaling.py), before any training config."""
    rows = {r["depth"]: r for r in scaling.table(depths=sorted(NANOCHAT), ratio=12.0, vocab_size=32768)}
    for depth, (batch, iters, wd) in NANOCHAT.items():
        assert math.isclose(rows[depth]["batch"], batch, rel_tol=0.01), depth
        assert math.isclose(rows[depth]["iterations"], iters, rel_tol=0.01), depth
        assert math.isclose(rows[depth]["weight_decay"], wd, rel_tol=0.01), depth
        assert math.isclose(rows[depth]["lr_batch_scale"], (batch / 2**19) ** 0.5, rel_tol=1e-6), depth


def test_scale_on_numbers_equals_depth_scaling(scaling):
    """The public number-level rule the model calculator calls gives what derive uses."""
    from phases.phase1_transformer.config import GPTConfig
    cfg, ref = GPTConfig.from_depth(20, vocab_size=32768), GPTConfig.from_depth(12, vocab_size=32768)
    a = scaling.depth_scaling(cfg, ref, 12.0, 0.28)
    b = scaling.scale(scaling.scaling_params(cfg), scaling.scaling_params(ref), 12.0, 0.28, width=cfg.n_embd)
    assert a == b and (b.batch, b.iterations) == (1_048_576, 4_980)
    tokens = scaling.scale(scaling.scaling_params(cfg), scaling.scaling_params(ref), 12.0, target_tokens=2e9)
    assert tokens.target_tokens == 2_000_000_000 and tokens.iterations == 2_000_000_000 // tokens.batch
