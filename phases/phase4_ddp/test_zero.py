"""Phase 4 checkpoint: ZeRO-2 inside MuonAdamW (zero.py): ownership, one rank = Phase 3, state slices.

Tolerances (ADR.md): CPU float32; one rank of ZeRO is Phase 3's MuonAdamW bit for bit.
"""
from __future__ import annotations

import pytest
import torch

from phases.common.console import UserError
from phases.phase1_transformer.config import preset
from phases.phase1_transformer.memory import meta_model
from phases.phase3_optimizers.muon import MuonAdamW

pytestmark = pytest.mark.phase4


@pytest.mark.parametrize("K,world", [(1, 2), (4, 2), (5, 2), (12, 8), (3, 8)])
def test_each_muon_matrix_has_exactly_one_owner(zero, K, world):
    stack = [torch.nn.Parameter(torch.zeros(4, 4)) for _ in range(K)]
    owners = [zero.ZeroMuonAdamW([{"kind": "muon", "params": stack}], r, world).owned(K) for r in range(world)]
    real = [k for o in owners for k in o if k < K]
    assert sorted(real) == list(range(K))                        # disjoint and covering
    assert all(len(o) == -(-K // world) for o in owners)         # ceil(K/W) slots each, padding included


def _groups(params):
    return [{"kind": "muon", "params": params[:3], "lr": 0.02, "weight_decay": 0.1},
            {"kind": "adamw", "params": params[3:4], "lr": 0.01},       # 2,048 elements: sharded
            {"kind": "adamw", "params": params[4:], "lr": 0.01}]        # 8 elements: replicated


def test_one_rank_zero_is_phase3_muonadamw_bit_for_bit(zero):
    torch.manual_seed(0)
    a = [torch.nn.Parameter(torch.randn(*s)) for s in [(16, 8)] * 3 + [(256, 8), (8,)]]
    b = [torch.nn.Parameter(p.detach().clone()) for p in a]
    za, mb = zero.ZeroMuonAdamW(_groups(a), 0, 1), MuonAdamW(_groups(b))
    for _ in range(3):
        for p, q in zip(a, b):
            p.grad = torch.randn_like(p)
            q.grad = p.grad.clone()
        za.step()
        mb.step()
    assert all(torch.equal(p, q) for p, q in zip(a, b))


def test_loading_a_full_state_keeps_this_ranks_slice(zero):
    torch.manual_seed(0)
    params = [torch.nn.Parameter(torch.randn(*s)) for s in [(16, 8)] * 3 + [(256, 8), (8,)]]
    full = MuonAdamW(_groups(params))
    for p in params:
        p.grad = torch.randn_like(p)
    full.step()
    sd = full.state_dict()
    for rank in (0, 1):
        z = zero.ZeroMuonAdamW(_groups(params), rank, 2)
        z.load_state_dict(sd)
        muon_buf = sd["state"][0]["momentum_buffer"]                             # (3, 16, 8)
        mine = torch.cat([muon_buf, torch.zeros(1, 16, 8)])[2 * rank:2 * rank + 2]   # 3 padded to 4
        assert torch.equal(z.shard_state[z.shards[0, 0][0]]["momentum_buffer"], mine)
        rows = sd["state"][3]["exp_avg"][128 * rank:128 * (rank + 1)]
        assert torch.equal(z.shard_state[z.shards[1, 0]]["exp_avg"], rows)
        assert torch.equal(z.state[params[4]]["exp_avg"], sd["state"][4]["exp_avg"])   # replicated: whole
        assert z.state_bytes() < sum(v.numel() * 4 for s in sd["state"].values()
                                     for v in s.values() if torch.is_tensor(v) and v.dim())


def test_optimizer_state_per_rank(zero):
    model = meta_model(preset("d12"))
    n = sum(p.numel() for p in model.parameters())
    assert zero.state_bytes_per_rank(model, "adamw")["total"] == 2 * 4 * n
    muon = zero.state_bytes_per_rank(model, "muon")
    matrices = [p for p in model.blocks.parameters() if p.ndim == 2]
    assert muon["muon_momentum"] == 4 * sum(p.numel() for p in matrices)
    assert muon["normuon_second_moment"] == 4 * sum(max(p.shape) for p in matrices)
    assert muon["adamw_moments"] == 8 * (n - sum(p.numel() for p in matrices))
    sharded = zero.state_bytes_per_rank(model, "muon", world=8)
    assert muon["total"] / 8 <= sharded["total"] < muon["total"] / 4
    with pytest.raises(UserError):
        zero.state_bytes_per_rank(model, "sgd")
