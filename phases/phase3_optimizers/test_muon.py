"""Phase 3 checkpoint: Newton-Schulz and Muon (muon.py): orthogonalisation, switches, state, convergence.

Tolerances (ADR.md): CPU float32. Newton-Schulz on matrices with condition number <= 100:
singular values in [0.6, 1.25] (quintic) and [0.8, 1.2] (Polar Express). State round trips
and determinism: bitwise (torch.equal).
"""
from __future__ import annotations

import io

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from phases.phase1_transformer.config import GPTConfig
from phases.phase1_transformer.model import GPT

pytestmark = pytest.mark.phase3


# -- Newton-Schulz ---------------------------------------------------------------------------

def _conditioned(rows: int, cols: int, cond: float, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    k = min(rows, cols)
    U, _ = torch.linalg.qr(torch.randn(rows, k, generator=g))          # (rows, k)
    V, _ = torch.linalg.qr(torch.randn(cols, k, generator=g))          # (cols, k)
    S = torch.logspace(0, -torch.log10(torch.tensor(cond)).item(), k)   # 1 ... 1/cond
    return 37.0 * U @ torch.diag(S) @ V.T                               # (rows, cols)


@pytest.mark.parametrize("shape", [(64, 256), (256, 64), (96, 96)])
@pytest.mark.parametrize("coeffs,low,high", [("quintic", 0.6, 1.25), ("polar_express", 0.8, 1.2)])
def test_newton_schulz_singular_values_near_one(muon, shape, coeffs, low, high):
    G = _conditioned(*shape, cond=100.0)
    O = muon.orthogonalize(G, 5, coeffs)
    s = torch.linalg.svdvals(O)
    assert O.shape == G.shape and low <= s.min() and s.max() <= high, (s.min(), s.max())
    # and it is the polar factor's direction: close to U V^T of G
    U, _, Vh = torch.linalg.svd(G, full_matrices=False)
    cos = (O * (U @ Vh)).sum() / (O.norm() * (U @ Vh).norm())
    assert cos > 0.98


def test_newton_schulz_works_on_stacks(muon):
    G = torch.stack([_conditioned(32, 64, 10.0, seed=i) for i in range(3)])   # (3, 32, 64)
    stacked = muon.orthogonalize(G)
    one_by_one = torch.stack([muon.orthogonalize(g) for g in G])
    assert torch.allclose(stacked, one_by_one, atol=1e-5)


def _exact_polynomial(G: torch.Tensor, coeffs: list) -> torch.Tensor:
    """What 5 Newton-Schulz steps compute in exact arithmetic: p(s) applied to G's singular values."""
    U, S, Vh = torch.linalg.svd(G.double(), full_matrices=False)
    s = S / (G.double().norm() * 1.01 + 1e-6)
    for a, b, c in coeffs:
        s = a * s + b * s ** 3 + c * s ** 5
    return (U * s) @ Vh


@pytest.mark.parametrize("coeffs", ["quintic", "polar_express"])
@pytest.mark.parametrize("shape,cond", [((64, 256), 10.0), ((256, 64), 1e3), ((32, 160), 1e6), ((48, 48), 100.0)])
def test_gram_newton_schulz_equals_the_textbook_iteration(muon, shape, cond, coeffs):
    """Both methods land within 1e-4 of the exact polynomial of G in fp32 (ADR)."""
    G = _conditioned(*shape, cond=cond, seed=1)
    exact = _exact_polynomial(G, muon.COEFFICIENTS[coeffs])
    standard = muon.orthogonalize(G, 5, coeffs, method="standard")
    gram = muon.orthogonalize(G, 5, coeffs, method="gram")
    assert gram.shape == G.shape and gram.is_contiguous()
    for out in (standard, gram):
        assert (out.double() - exact).norm() / exact.norm() < 1e-4


@pytest.mark.parametrize("cond,no_restart_within", [(30.0, 1e-4), (1e6, 5e-3)])
def test_gram_newton_schulz_restart_trades_work_for_accuracy(muon, cond, no_restart_within):
    """Without the restart, A = P(PA) drifts from X X^T: harmless at a gradient's usual
    conditioning (cond ~10-30 at the demo), ten times further off on an ill-conditioned G,
    where it stays below bf16's rounding (ADR)."""
    G = _conditioned(32, 160, cond=cond, seed=1)
    X = (G / (G.norm() * 1.01 + 1e-6))[None]                            # (1, 32, 160)
    exact = _exact_polynomial(G, muon.POLAR_EXPRESS)
    err = {r: ((muon.gram_newton_schulz(X, muon.POLAR_EXPRESS, restart=r)[0].double() - exact).norm()
               / exact.norm()).item() for r in (2, 0)}                  # restart=0: never
    assert err[2] < 1e-4 and err[0] < no_restart_within
    if cond > 1e3:
        assert 10 * err[2] < err[0]
    assert muon.ns_macs("gram", 256, 1024, 5, restart=0) < muon.ns_macs("gram", 256, 1024, 5)
    U = muon.orthogonalize(G, method="gram", restart=0)                 # the switch reaches the iteration
    assert (U.double() - exact).norm() / exact.norm() == pytest.approx(err[0], rel=1e-3)


def _aol_scaled(G: torch.Tensor) -> torch.Tensor:
    """Reference AOL scaling in float64: row i of X (m <= n) over sqrt(sum_j |(X X^T)_ij|)."""
    X = G.double().mT if G.size(-2) > G.size(-1) else G.double()
    D = (X @ X.mT).abs().sum(-1).rsqrt()
    X = X * D[:, None]
    return X.mT if G.size(-2) > G.size(-1) else X


@given(rows=st.integers(1, 24), cols=st.integers(1, 24), seed=st.integers(0, 10_000),
       scale=st.sampled_from([1e-3, 1.0, 1e3]))
@settings(max_examples=40, deadline=None)
def test_aol_scaling_keeps_every_singular_value_at_most_one(muon, rows, cols, seed, scale):
    G = torch.randn(rows, cols, generator=torch.Generator().manual_seed(seed)) * scale
    X = G.mT if rows > cols else G
    Xs, A = muon.aol_precondition(X[None])                              # (1, m, n), (1, m, m)
    assert torch.linalg.matrix_norm(Xs[0].double(), ord=2) <= 1 + 1e-5
    assert torch.allclose(A, Xs @ Xs.mT, rtol=1e-4, atol=1e-6)          # the Gram it hands on is D A D


@pytest.mark.parametrize("method", ["standard", "gram"])
@pytest.mark.parametrize("shape,cond", [((64, 256), 10.0), ((256, 64), 1e3), ((32, 160), 1e6), ((48, 48), 100.0)])
def test_aol_orthogonalize_is_the_polynomial_of_the_scaled_matrix(muon, shape, cond, method):
    """AOL + the schedule from its 2nd entry = p(s) on the singular values of D G (ADR: 1e-4)."""
    G = _conditioned(*shape, cond=cond, seed=1)
    U, S, Vh = torch.linalg.svd(_aol_scaled(G), full_matrices=False)
    s = S
    for a, b, c in muon.POLAR_EXPRESS[1:]:
        s = a * s + b * s ** 3 + c * s ** 5
    exact = (U * s) @ Vh
    out = muon.orthogonalize(G, 5, "polar_express", method=method, precondition="aol")
    assert out.shape == G.shape
    assert (out.double() - exact).norm() / exact.norm() < 1e-4


def test_aol_needs_a_step_to_replace(muon):
    with pytest.raises(muon.UserError, match="ns_steps must be >= 2"):
        muon.orthogonalize(torch.randn(8, 8), 1, precondition="aol")
    with pytest.raises(muon.UserError, match="preconditioner"):
        muon.MuonAdamW([{"kind": "muon", "params": [torch.nn.Parameter(torch.zeros(4, 4))],
                         "ns_precondition": "svd"}])


def test_orthogonalize_picks_gram_for_wide_matrices_only(muon, monkeypatch):
    used = []
    monkeypatch.setattr(muon, "gram_newton_schulz", lambda X, s, restart=2, A=None: used.append("gram") or X)
    monkeypatch.setattr(muon, "newton_schulz", lambda X, s, A=None: used.append("standard") or X)
    for restart in (2, 0):                                              # the same rule with or without
        used.clear()
        for shape in [(64, 256), (256, 64), (64, 96), (64, 64), (3, 64, 100)]:
            muon.orthogonalize(torch.randn(shape), restart=restart)
        assert used == ["gram", "gram", "standard", "standard", "gram"]   # n > 1.5 m after transposing
    with pytest.raises(muon.UserError, match="Newton-Schulz method"):
        muon.orthogonalize(torch.randn(4, 4), method="svd")


# -- Muon ------------------------------------------------------------------------------------

def _muon_step(muon, P, G, **group):
    p = torch.nn.Parameter(P.clone())
    opt = muon.MuonAdamW([{"kind": "muon", "params": [p], **group}])
    p.grad = G.clone()
    opt.step()
    return p.detach()


@pytest.mark.parametrize("rows,cols,mult", [(128, 32, 2.0), (32, 32, 1.0), (32, 128, 1.0)])
def test_muon_update_is_orthogonalised_gradient_with_shape_multiplier(muon, rows, cols, mult):
    P, G = torch.randn(rows, cols), torch.randn(rows, cols)
    new = _muon_step(muon, P, G, lr=0.1, momentum=0.0, weight_decay=0.0, normuon=False)
    expected = P - 0.1 * mult * muon.orthogonalize(G)
    if not torch.allclose(new, expected, atol=1e-6):
        step = (P - new).norm() / (0.1 * muon.orthogonalize(G).norm())   # the multiplier you applied
        assert torch.allclose(new, expected, atol=1e-6), (
            f"a ({rows}, {cols}) matrix must move by lr x {mult:g} x orthogonalize(G) (sqrt(max(1, rows/cols))); "
            f"yours moved by lr x {step:.3g} x its norm")


def test_cautious_weight_decay_only_where_the_update_agrees(muon):
    P, G = torch.randn(16, 16), torch.randn(16, 16)
    U = muon.orthogonalize(G)
    new = _muon_step(muon, P, G, lr=0.5, momentum=0.0, weight_decay=0.2, normuon=False, cautious=True)
    mask = (U * P >= 0).float()
    assert 0 < mask.mean() < 1
    assert torch.allclose(new, P - 0.5 * 0.2 * P * mask - 0.5 * U, atol=1e-6)
    plain = _muon_step(muon, P, G, lr=0.5, momentum=0.0, weight_decay=0.2, normuon=False, cautious=False)
    assert torch.allclose(plain, P * (1 - 0.5 * 0.2) - 0.5 * U, atol=1e-6)


def test_normuon_equalises_row_scales_and_keeps_the_norm(muon):
    G = torch.randn(64, 16) * torch.linspace(0.1, 10, 64)[:, None]       # (64, 16): uneven rows
    P = torch.zeros(64, 16)
    off = _muon_step(muon, P, G, lr=1.0, momentum=0.0, normuon=False, weight_decay=0.0)
    on = _muon_step(muon, P, G, lr=1.0, momentum=0.0, normuon=True, beta2=0.0, weight_decay=0.0)
    assert torch.allclose(on.norm(), off.norm(), rtol=1e-4)              # same overall step size
    rms = on.square().mean(dim=1).sqrt()
    assert rms.std() / rms.mean() < 1e-3 < off.square().mean(dim=1).sqrt().std() / off.norm()


def test_normuon_matches_the_two_pass_formula(muon):
    """The fused per-row factor equals: divide by sqrt(v) + 1e-10, then restore |U| (two steps)."""
    g = torch.Generator().manual_seed(5)
    for rows, cols in [(48, 16), (16, 48)]:
        P = torch.randn(rows, cols, generator=g)
        G1, G2 = torch.randn(rows, cols, generator=g), torch.randn(rows, cols, generator=g) * torch.rand(cols)
        p = torch.nn.Parameter(P.clone())
        opt = muon.MuonAdamW([{"kind": "muon", "params": [p], "lr": 0.1, "momentum": 0.0, "weight_decay": 0.0,
                               "normuon": True, "beta2": 0.9}])
        expected, v = P.double(), 0.0
        dim = -1 if rows >= cols else -2
        for G in (G1, G2):
            p.grad = G.clone()
            opt.step()
            U = muon.orthogonalize(G[None])[0].double()
            v = 0.9 * v + 0.1 * U.square().mean(dim=dim, keepdim=True)
            damped = U / (v.sqrt() + 1e-10)
            expected = expected - 0.1 * max(1.0, rows / cols) ** 0.5 * damped * U.norm() / damped.norm()
        assert torch.allclose(p.detach().double(), expected, atol=1e-5), (p.detach().double() - expected).abs().max()


@pytest.mark.parametrize("normuon", [False, True])
def test_muon_plus_sets_the_update_norm(muon, normuon):
    """Muon+: |update| = lr x sqrt(min(rows, cols)), with or without NorMuon's row factors."""
    P, G = torch.randn(48, 16), _conditioned(48, 16, cond=1e3)
    new = _muon_step(muon, P, G, lr=0.1, momentum=0.0, weight_decay=0.0, normuon=normuon, muon_plus=True)
    mult = 48 / 16
    assert torch.allclose((P - new).norm(), torch.tensor(0.1 * mult ** 0.5 * 16 ** 0.5), rtol=1e-4)
    if not normuon:                                                    # the direction is Muon's own
        U = muon.orthogonalize(G)
        assert torch.allclose(new, P - 0.1 * mult ** 0.5 * U * 16 ** 0.5 / U.norm(), atol=1e-6)


def _tiny_gpt(seed=0):
    return GPT.build(GPTConfig.from_depth(2, vocab_size=128, sequence_len=16, aspect_ratio=32, head_dim=32),
                     seed=seed)


def _gpt_groups(muon, model):
    matrices = [p for n, p in model.named_parameters() if n.startswith("blocks.")]
    rest = [p for n, p in model.named_parameters() if not n.startswith("blocks.")]
    return [{"kind": "muon", "params": s, "lr": 0.02} for s in muon.stack_by_shape(matrices)] + \
           [{"kind": "adamw", "params": rest, "lr": 0.01}]


def _gpt_steps(model, opt, n, seed=3):
    g = torch.Generator().manual_seed(seed)
    for _ in range(n):
        idx = torch.randint(0, 128, (2, 17), generator=g)
        loss = model(idx[:, :-1], targets=idx[:, 1:])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return loss.item()


def test_muon_is_deterministic(muon):
    a, b = _tiny_gpt(), _tiny_gpt()
    _gpt_steps(a, muon.MuonAdamW(_gpt_groups(muon, a)), 3)
    _gpt_steps(b, muon.MuonAdamW(_gpt_groups(muon, b)), 3)
    assert all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters()))


def test_state_dict_round_trip_gives_identical_next_steps(muon):
    a = _tiny_gpt()
    opt_a = muon.MuonAdamW(_gpt_groups(muon, a))
    _gpt_steps(a, opt_a, 3)
    buffer = io.BytesIO()
    torch.save(opt_a.state_dict(), buffer)
    buffer.seek(0)
    b = _tiny_gpt(seed=99)
    b.load_state_dict(a.state_dict())
    opt_b = muon.MuonAdamW(_gpt_groups(muon, b))
    opt_b.load_state_dict(torch.load(buffer, weights_only=True))    # plain tensors and numbers only
    _gpt_steps(a, opt_a, 2, seed=7)
    _gpt_steps(b, opt_b, 2, seed=7)
    assert all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters()))


def test_muon_converges_on_matrix_regression(muon):
    torch.manual_seed(0)
    X, W = torch.randn(256, 32), torch.randn(32, 16) / 32 ** 0.5           # (N, 32), (32, 16)
    p = torch.nn.Parameter(torch.zeros(16, 32))                          # a Linear's (out, in) weight
    opt = muon.MuonAdamW([{"kind": "muon", "params": [p], "lr": 0.05, "weight_decay": 0.0}])
    losses = []
    for i in range(200):
        for g in opt.param_groups:                                       # Muon steps have a fixed size:
            g["lr"] = 0.05 * (1 - i / 200)                               # decay the LR to settle
        loss = torch.nn.functional.mse_loss(X @ p.T, X @ W)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 1e-3 * losses[0]


def test_muon_groups_must_be_one_shape(muon):
    with pytest.raises(Exception, match="one shape"):
        muon.MuonAdamW([{"kind": "muon", "params": [torch.nn.Parameter(torch.zeros(4, 4)),
                                                    torch.nn.Parameter(torch.zeros(4, 8))]}])
    with pytest.raises(Exception, match="kind"):
        muon.MuonAdamW([{"params": [torch.nn.Parameter(torch.zeros(4))]}])
