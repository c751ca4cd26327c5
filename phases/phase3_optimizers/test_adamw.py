"""Phase 3 checkpoint: AdamW from scratch (adamw.py) against torch.optim.AdamW, convergence, errors.

Tolerances (ADR.md): CPU float32. AdamW vs torch.optim.AdamW after 100 steps: atol 1e-6
on every parameter (same formula, floating-point reassociation only).
"""
from __future__ import annotations

import pytest
import torch

pytestmark = pytest.mark.phase3


def _tiny_net(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.Tanh(), torch.nn.Linear(32, 4))


def _batches(n: int, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(16, 8, generator=g), torch.randn(16, 4, generator=g)) for _ in range(n)]


def _train(model, opt, batches, before_step=None):
    for i, (x, y) in enumerate(batches):
        loss = torch.nn.functional.mse_loss(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if before_step:
            before_step(opt, i)
        opt.step()
    return loss.item()


def _groups(model):
    """Two groups with different hyperparameters: weights decayed, biases not."""
    weights = [p for n, p in model.named_parameters() if n.endswith("weight")]
    biases = [p for n, p in model.named_parameters() if n.endswith("bias")]
    return [{"params": weights, "lr": 3e-3, "weight_decay": 0.1, "betas": (0.8, 0.95)},
            {"params": biases, "lr": 1e-2, "weight_decay": 0.0, "betas": (0.9, 0.99)}]


# -- AdamW ---------------------------------------------------------------------------------

def test_adamw_matches_torch_over_100_steps(adamw):
    ours, ref = _tiny_net(), _tiny_net()
    opt = adamw.AdamW(_groups(ours), eps=1e-8)
    ref_opt = torch.optim.AdamW(_groups(ref), eps=1e-8, foreach=False)
    batches = _batches(100)
    _train(ours, opt, batches)
    _train(ref, ref_opt, batches)
    for (name, a), b in zip(ours.named_parameters(), ref.parameters()):
        assert torch.allclose(a, b, rtol=0, atol=1e-6), (name, (a - b).abs().max().item())


def test_adamw_hparam_changes_between_steps_take_effect(adamw):
    model = _tiny_net()
    opt = adamw.AdamW(model.parameters(), lr=1e-2, weight_decay=0.0)
    x, y = _batches(1)[0]
    _train(model, opt, [(x, y)])
    frozen = [p.detach().clone() for p in model.parameters()]

    def zero_lr(o, i):
        for g in o.param_groups:
            g["lr"] = 0.0
    _train(model, opt, [(x, y)] * 2, before_step=zero_lr)
    assert all(torch.equal(a, b) for a, b in zip(frozen, model.parameters()))  # lr 0: nothing moves

    def decay_only(o, i):
        for g in o.param_groups:
            g["lr"], g["weight_decay"] = 1e-2, 10.0
    before = [p.detach().clone() for p in model.parameters()]
    _train(model, opt, [(x, y)], before_step=decay_only)
    assert all(p.norm() < b.norm() for p, b in zip(model.parameters(), before))  # strong decay shrinks


def test_adamw_converges_on_regression(adamw):
    torch.manual_seed(0)
    X, w = torch.randn(128, 8), torch.randn(8, 1)                   # (N, 8), (8, 1)
    model = torch.nn.Linear(8, 1, bias=False)
    opt = adamw.AdamW(model.parameters(), lr=0.05, weight_decay=0.0)
    first = torch.nn.functional.mse_loss(model(X), X @ w).item()
    last = _train(model, opt, [(X, X @ w)] * 300)
    assert last < 1e-4 * first


def test_adamw_rejects_bad_hparams(adamw):
    with pytest.raises(Exception, match="betas"):
        adamw.AdamW(_tiny_net().parameters(), betas=(1.0, 0.9))
