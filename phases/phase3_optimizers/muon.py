"""Muon (momentum + orthogonalisation) and MuonAdamW, the one optimizer nanochat trains with.

Muon treats a weight matrix as a linear map, not as a bag of numbers. It keeps a Nesterov
momentum of the gradient, then replaces that matrix G = U S V^T by (approximately) its
orthogonal factor U V^T: every singular value becomes ~1, so the step moves the map by
the same amount in every direction the gradient cares about, instead of mostly along the
one or two directions that dominate G. The orthogonal factor is computed without an SVD,
by a few Newton-Schulz iterations (only matmuls, cheap on a GPU): either the classic
fixed quintic coefficients or Polar Express's per-iteration ones. For wide or tall matrices
the same iteration runs on the small Gram matrix X X^T instead (Gram Newton-Schulz: a
third fewer multiply-adds for the MLP's 4:1 matrices).

``MuonAdamW`` holds param groups of two kinds. ``kind="muon"`` groups hold matrices of one
shape, stacked into one (K, rows, cols) tensor and updated together (one batched matmul
instead of K small ones); ``kind="adamw"`` groups are updated by Phase 3's own AdamW.
Optional refinements, each behind a group switch: NorMuon's per-row/column variance
normalisation, cautious weight decay, nanochat's Muon+ renormalisation, and Turbo-Muon's
AOL preconditioning (one Newton-Schulz iteration fewer; measured worse at the demo size).

What it leaves out: nanochat's MuonEq row equilibration, bf16 Newton-Schulz,
torch.compile'd fused kernels, the sharded multi-GPU step (Phase 4).

Run: ``python -m phases.phase3_optimizers.muon`` prints singular values before and after.
"""
from __future__ import annotations

import torch

from phases.common.console import UserError
from phases.phase3_optimizers.adamw import adamw_group_step, check_hparams

# --8<-- [start:coefficients]
# X <- a X + (b A + c A^2) X with A = X X^T maps every singular value s of X to
# p(s) = a s + b s^3 + c s^5. Keller Jordan's quintic uses one (a, b, c) five times: steep
# near 0 (a = 3.4) so small singular values grow fast, and it settles in a band around 1
# rather than at 1 exactly (good enough for training, and faster than converging).
QUINTIC = [(3.4445, -4.7750, 2.0315)] * 5
# Polar Express (Amsel et al., 2025) picks a different, minimax-optimal polynomial per
# iteration: aggressive first steps, then gentler ones that land closer to 1.
POLAR_EXPRESS = [
    (8.1566, -22.4833, 15.8788),
    (4.0429, -2.8089, 0.5000),
    (3.8917, -2.7725, 0.5061),
    (3.2858, -2.3681, 0.4645),
    (2.3465, -1.7098, 0.4232),
]
COEFFICIENTS = {"quintic": QUINTIC, "polar_express": POLAR_EXPRESS}
# --8<-- [end:coefficients]


def coefficient_schedule(name: str, steps: int) -> list[tuple[float, float, float]]:
    if name not in COEFFICIENTS:
        raise UserError(f"unknown Newton-Schulz coefficients {name!r}; choose {' or '.join(COEFFICIENTS)}")
    if steps < 1:
        raise UserError(f"ns_steps must be >= 1, got {steps}")
    table = COEFFICIENTS[name]
    return [table[min(i, len(table) - 1)] for i in range(steps)]  # longer runs repeat the last


# --8<-- [start:orthogonalize]
def newton_schulz(X: torch.Tensor, schedule: list, A: torch.Tensor | None = None) -> torch.Tensor:
    """The textbook iteration on X (K, m, n), m <= n: every step multiplies the whole X.

    ``A``, if given, is X X^T already computed (by the AOL preconditioner) for the first step.
    """
    for a, b, c in schedule:
        A = X @ X.mT if A is None else A                     # (K, m, m)
        B = torch.baddbmm(A, A, A, beta=b, alpha=c)          # (K, m, m)  b A + c A^2
        X = torch.baddbmm(X, B, X, beta=a)                   # (K, m, n)  a X + B X
        A = None
    return X


GRAM_RESTART = 2   # the step after which Gram Newton-Schulz rebuilds X and X X^T once (0: never)


def gram_newton_schulz(X: torch.Tensor, schedule: list, restart: int = GRAM_RESTART,
                       A: torch.Tensor | None = None) -> torch.Tensor:
    """The same iteration carried out on m x m matrices (Gram Newton-Schulz, Dao lab 2026).

    Every step multiplies X on the left by a polynomial P of A = X X^T, so after k steps
    X_k = Q_k X_0 with Q_k = P_k ... P_1, and all these m x m matrices commute. Track
    Q and A instead of X: Q <- P Q and A_next = X_next X_next^T = P A P = P (P A). Only
    A = X X^T and the product Q X touch the wide (m, n) matrix. A drifts from the true
    X X^T as rounding errors compound, so after step ``restart`` we form X = Q X once and
    start again from it: without the restart (``restart=0``), fp32 lands over ten times
    further from the exact result on ill-conditioned inputs (still ~1e-3, below bf16's
    rounding), at a cost of 2 m^2 n - 3 m^3 extra multiply-adds. ``A`` as in ``newton_schulz``.
    """
    eye = torch.eye(X.size(-2), dtype=X.dtype, device=X.device)
    Q = None
    for i, (a, b, c) in enumerate(schedule):
        if A is None:                                        # the start, and the restart
            X = X if Q is None else Q @ X                    # (K, m, n)
            A, Q = X @ X.mT, None                            # (K, m, m)
        P = torch.baddbmm(A, A, A, beta=b, alpha=c).add_(eye, alpha=a)   # (K, m, m)  a I + b A + c A^2
        Q = P if Q is None else P @ Q                        # (K, m, m)
        last = i == len(schedule) - 1
        A = None if last or i + 1 == restart else P @ (P @ A)    # (K, m, m)  the next X X^T
    return Q @ X                                             # (K, m, n)


def ns_macs(method: str, m: int, n: int, steps: int, restart: int = GRAM_RESTART) -> int:
    """Multiply-adds of one (m, n) matrix's orthogonalisation, m <= n, by either method."""
    if method == "standard":
        return steps * (2 * m * m * n + m ** 3)              # A, A^2, B X each step
    restarts = 1 if 0 < restart < steps else 0
    # X X^T at the start and at the restart, Q X at the restart and at the end; per step
    # A^2 and P Q (not when Q is fresh) and P (P A) (not before the last step or the restart).
    return (2 + 2 * restarts) * m * m * n + (4 * steps - 3 - 3 * restarts) * m ** 3


def pick_method(method: str, m: int, n: int, steps: int, restart: int = GRAM_RESTART) -> str:
    """``auto`` -> whichever does fewer multiply-adds: Gram exactly when n > 1.5 m (s >= 3).

    (With or without the restart: the restart's 2 m^2 n costs what it saves in m^3 terms
    exactly when n = 1.5 m.)
    """
    if method not in ("auto", "standard", "gram"):
        raise UserError(f"unknown Newton-Schulz method {method!r}; choose auto, standard or gram")
    if method != "auto":
        return method
    return "gram" if ns_macs("gram", m, n, steps, restart) < ns_macs("standard", m, n, steps) else "standard"


def aol_precondition(X: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Turbo-Muon's start (Boissin et al., 2025): rescale row i of X by 1/sqrt(sum_j |A_ij|).

    With A = X X^T and D that diagonal scaling, D X has every singular value <= 1 (the
    almost-orthogonal-layer bound of Prach & Lampert, 2022: no row sum of |D A D| exceeds 1),
    like the Frobenius scaling, but it scales each row by its own size, so the small
    singular values start far closer to 1 and one Newton-Schulz iteration can be dropped.
    The first iteration needs (D X)(D X)^T = D A D, which costs only an elementwise product.
    Note that the result approximates the orthogonal factor of D X, not of X: like
    nanochat's MuonEq row equilibration, it equalises the rows first.
    """
    A = X @ X.mT                                                          # (K, m, m)
    s = A.abs().sum(dim=-1, keepdim=True).clamp_min_(1e-30).rsqrt_()      # (K, m, 1)
    return X * s, A.mul_(s).mul_(s.mT)                                    # (K, m, n), (K, m, m)


PRECONDITIONERS = ("frobenius", "aol")


def iteration_schedule(coefficients: str, steps: int, precondition: str) -> list:
    """The (a, b, c) of every iteration run. AOL takes the place of the first iteration."""
    if precondition not in PRECONDITIONERS:
        raise UserError(f"unknown Newton-Schulz preconditioner {precondition!r}; choose frobenius or aol")
    if precondition == "aol" and steps < 2:
        raise UserError(f"ns_precondition = aol replaces the first of ns_steps iterations: ns_steps must be >= 2, "
                        f"got {steps}")
    schedule = coefficient_schedule(coefficients, steps)
    # The first coefficients exist to grow tiny singular values fast; after AOL they start
    # near 1 already, so the schedule continues from its second entry.
    return schedule[1:] if precondition == "aol" else schedule


def orthogonalize(G: torch.Tensor, steps: int = 5, coefficients: str = "polar_express",
                  method: str = "auto", precondition: str = "frobenius", restart: int = GRAM_RESTART) -> torch.Tensor:
    """Approximate U V^T of each matrix in G (..., rows, cols) by Newton-Schulz iterations."""
    tall = G.size(-2) > G.size(-1)
    X = G.mT if tall else G                                  # (..., m, n) with m <= n: A is m x m
    lead, (m, n) = X.shape[:-2], X.shape[-2:]
    X = X.reshape(-1, m, n)                                  # (K, m, n): one batch dim for baddbmm
    schedule = iteration_schedule(coefficients, steps, precondition)
    A = None
    if precondition == "aol":
        X, A = aol_precondition(X)
    else:
        # Scale so every singular value is <= 1, inside the region where the polynomials converge.
        X = X / (X.norm(dim=(-2, -1), keepdim=True) * 1.01 + 1e-6)
    # Gram pays off for the MLP's 4:1 matrices, not for the square attention ones.
    method = pick_method(method, m, n, len(schedule), restart)
    X = gram_newton_schulz(X, schedule, restart, A) if method == "gram" else newton_schulz(X, schedule, A)
    X = X.reshape(*lead, m, n)
    return X.mT.contiguous() if tall else X                  # later elementwise steps run faster on contiguous memory
# --8<-- [end:orthogonalize]


def check_muon_group(group: dict) -> None:
    shapes = {tuple(p.shape) for p in group["params"]}
    if len(shapes) != 1 or len(next(iter(shapes))) != 2:
        raise UserError(f"a muon group holds 2-D matrices of one shape (they are stacked); got shapes {sorted(shapes)}")
    if not 0 <= group["momentum"] < 1 or not group["lr"] >= 0 or not group["weight_decay"] >= 0:
        raise UserError(f"muon group: momentum must be in [0, 1), lr and weight_decay >= 0 "
                        f"(got {group['momentum']}, {group['lr']}, {group['weight_decay']})")
    iteration_schedule(group["ns_coefficients"], group["ns_steps"], group["ns_precondition"])
    pick_method(group["ns_method"], 1, 1, group["ns_steps"])   # raises on an unknown method
    if not isinstance(group["gram_restart"], int) or group["gram_restart"] < 0:
        raise UserError(f"gram_restart is the step after which Gram Newton-Schulz restarts (0: never); "
                        f"got {group['gram_restart']!r}")


# --8<-- [start:muon_step]
@torch.no_grad()
def muon_group_step(group: dict, state: dict) -> None:
    """One Muon step for a group of same-shape matrices, stacked into one (K, r, c) tensor."""
    params = group["params"]
    if all(p.grad is None for p in params):
        return
    K, (r, c) = len(params), params[0].shape
    s = state[params[0]]                      # the stack's state lives with its first matrix
    if not s:
        s["momentum_buffer"] = torch.zeros((K, r, c), device=params[0].device)        # (K, r, c) fp32
        if group["normuon"]:                  # one second moment per row (tall) or column (wide)
            s["second_moment"] = torch.zeros((K, r, 1) if r >= c else (K, 1, c), device=params[0].device)
    mu = group["momentum"]
    buf = s["momentum_buffer"]
    G = torch.empty_like(buf)                 # (K, r, c): the stack Newton-Schulz reads
    for p, b, out in zip(params, buf.unbind(0), G.unbind(0)):   # (r, c) views; no stacked copy of the grads
        g = p.grad.float() if p.grad is not None else torch.zeros_like(b)
        b.lerp_(g, 1 - mu)                    # buf = mu*buf + (1-mu)*g
        torch.lerp(g, b, mu, out=out)         # Nesterov: look one momentum step ahead
    U = orthogonalize(G, group["ns_steps"], group["ns_coefficients"], group.get("ns_method", "auto"),
                      group.get("ns_precondition", "frobenius"),
                      group.get("gram_restart", GRAM_RESTART))     # (K, r, c), singular values ~1
    scales = [None] * K
    # Muon+ (nanochat, 2026): set every update's Frobenius norm to sqrt(min(r, c)), the norm of
    # an exact orthogonal factor, whatever the iteration actually reached.
    target = min(r, c) ** 0.5 if group.get("muon_plus", False) else None
    if group["normuon"]:
        # NorMuon: rows (or columns) that keep getting large updates are damped by their
        # running RMS d, then the update is rescaled to keep its norm. Both are one factor
        # per row, computed from the row norms alone (|U / d|^2 = sum_i |U_i|^2 / d_i^2), so
        # U is read once here and the factor is applied inside the weight update below.
        dim = -1 if r >= c else -2
        sq = torch.linalg.vector_norm(U, dim=dim, keepdim=True).square_()  # (K, r, 1) or (K, 1, c)
        v = s["second_moment"]                                            # same shape
        v.lerp_(sq / U.size(dim), 1 - group["beta2"])                      # running mean of U^2
        d = v.sqrt().add_(1e-10)
        norm = target or sq.sum(dim=(-2, -1), keepdim=True).sqrt_()       # (K, 1, 1)  |U|
        norm_after = (sq / d.square()).sum(dim=(-2, -1), keepdim=True).sqrt_()   # |U / d|
        scales = (norm / (norm_after + 1e-10) / d).unbind(0)              # K x (r, 1) or (1, c)
    elif target:
        scales = (target / (U.norm(dim=(-2, -1), keepdim=True) + 1e-10)).unbind(0)   # K x (1, 1)
    lr = group["lr"] * max(1.0, r / c) ** 0.5  # tall matrices (c_fc) take longer steps
    wd = group["weight_decay"]
    for p, u, scale in zip(params, U.unbind(0), scales):   # (r, c) each, written into the weights in place
        w = p if p.dtype == torch.float32 else p.float()
        if wd and group["cautious"]:
            # Cautious decay: only shrink coordinates where the update already pushes toward 0
            # (NorMuon's factor is positive: it never changes the sign of u).
            w.addcmul_(w, (u * w).ge_(0), value=-lr * wd)                # w -= lr*wd * w * [u*w >= 0]
        elif wd:
            w.mul_(1 - lr * wd)
        if scale is None:
            w.add_(u, alpha=-lr)
        else:
            w.addcmul_(u, scale, value=-lr)                                # w -= lr * u * NorMuon's factor
        if w is not p:
            p.copy_(w)
# --8<-- [end:muon_step]


MUON_DEFAULTS = dict(lr=0.02, momentum=0.95, ns_steps=5, ns_coefficients="polar_express", ns_method="auto",
                     ns_precondition="frobenius", gram_restart=GRAM_RESTART, muon_plus=False, normuon=True,
                     beta2=0.9, cautious=True, weight_decay=0.0)
ADAMW_DEFAULTS = dict(lr=1e-3, betas=(0.9, 0.95), eps=1e-10, weight_decay=0.0)


class MuonAdamW(torch.optim.Optimizer):
    """One optimizer, two kinds of param groups: ``kind="muon"`` (same-shape matrices) and ``kind="adamw"``.

    Every group carries its own hyperparameters; the training loop may change ``lr``,
    ``momentum`` and ``weight_decay`` of any group before any step. The state holds only
    tensors, ints and the group dicts (floats, strings, tuples), so checkpoints load with
    ``torch.load(weights_only=True)`` and a restored optimizer continues bit for bit.
    """

    def __init__(self, param_groups: list[dict]):
        groups = []
        for g in param_groups:
            kind = g.get("kind")
            if kind not in ("muon", "adamw"):
                raise UserError(f"each param group needs kind 'muon' or 'adamw', got {kind!r}")
            defaults = MUON_DEFAULTS if kind == "muon" else ADAMW_DEFAULTS
            groups.append({**defaults, **g, "params": list(g["params"])})
        super().__init__(groups, {})
        for g in self.param_groups:
            if g["kind"] == "muon":
                check_muon_group(g)
            else:
                g["betas"] = tuple(g["betas"])
                check_hparams(g)

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            if group["kind"] == "muon":
                muon_group_step(group, self.state)
            else:
                adamw_group_step(group, self.state)
        return loss


def stack_by_shape(params: list[torch.Tensor]) -> list[list[torch.Tensor]]:
    """Same-shape matrices together, in order of first appearance (deterministic)."""
    by_shape: dict[tuple, list] = {}
    for p in params:
        by_shape.setdefault(tuple(p.shape), []).append(p)
    return list(by_shape.values())


if __name__ == "__main__":
    torch.manual_seed(0)
    G = torch.randn(64, 16) @ torch.diag(torch.logspace(0, -2, 16)) @ torch.randn(16, 256)  # (64, 256), rank 16
    print("singular values of G (top 4):", [f"{s:.3g}" for s in torch.linalg.svdvals(G)[:4].tolist()])
    for name in COEFFICIENTS:
        s = torch.linalg.svdvals(orthogonalize(G, 5, name))[:16]
        print(f"after 5 {name} steps: min {s.min():.3f}  max {s.max():.3f}  (the 16 non-zero ones)")
