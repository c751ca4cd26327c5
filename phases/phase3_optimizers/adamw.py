"""AdamW from scratch: Adam's two moment estimates, bias correction, decoupled weight decay.

For every parameter p with gradient g, one step t (1-based) does::

    p   <- p * (1 - lr * wd)                 decoupled decay: shrinks p, never touches m or v
    m   <- beta1 * m + (1 - beta1) * g       first moment (a running mean of g)
    v   <- beta2 * v + (1 - beta2) * g^2     second moment (a running mean of g^2)
    p   <- p - lr / (1 - beta1^t) * m / (sqrt(v / (1 - beta2^t)) + eps)

The division by sqrt(v) makes the step size per coordinate roughly ``lr`` whatever the
gradient's scale; the bias corrections undo the zero initialisation of m and v in the
first steps. Every hyperparameter is read from the param group at each step, so the
training loop can change lr, betas or weight decay between steps without rebuilding
anything. The optimizer subclasses ``torch.optim.Optimizer`` only for its bookkeeping
(param groups, ``zero_grad``, ``state_dict``); the arithmetic is ours.

What it leaves out: AMSGrad, fused/foreach kernels, sparse gradients, ``capturable`` mode.

Run: ``python -m phases.phase3_optimizers.adamw`` fits a small regression and prints the loss.
"""
from __future__ import annotations

import math

import torch

from phases.common.console import UserError


# --8<-- [start:adamw_update]
@torch.no_grad()
def adamw_update(p: torch.Tensor, g: torch.Tensor, m: torch.Tensor, v: torch.Tensor, step: int,
                 lr: float, beta1: float, beta2: float, eps: float, wd: float) -> None:
    """One AdamW step of one tensor, in place. ``step`` counts from 1."""
    if wd:
        p.mul_(1 - lr * wd)                      # decoupled: the decay is not scaled by 1/sqrt(v)
    m.lerp_(g, 1 - beta1)                        # m = beta1*m + (1-beta1)*g
    v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
    bias1 = 1 - beta1 ** step                    # m and v start at 0: divide the bias out
    bias2 = 1 - beta2 ** step
    denom = v.sqrt().div_(math.sqrt(bias2)).add_(eps)
    p.addcdiv_(m, denom, value=-lr / bias1)
# --8<-- [end:adamw_update]


def check_hparams(group: dict) -> None:
    """Clear errors for hyperparameters that would silently produce garbage."""
    lr, (b1, b2), eps, wd = group["lr"], group["betas"], group["eps"], group["weight_decay"]
    if not lr >= 0:
        raise UserError(f"AdamW learning rate must be >= 0, got {lr}")
    if not (0 <= b1 < 1 and 0 <= b2 < 1):
        raise UserError(f"AdamW betas must be in [0, 1), got ({b1}, {b2})")
    if not eps > 0 or not wd >= 0:
        raise UserError(f"AdamW eps must be > 0 and weight_decay >= 0, got eps={eps}, weight_decay={wd}")


class AdamW(torch.optim.Optimizer):
    """AdamW with per-group ``lr``, ``betas``, ``eps``, ``weight_decay`` (read every step).

    The update runs in float32 whatever the parameter dtype (state is kept in float32),
    so bf16 parameters do not lose small updates to rounding in the moments.
    """

    def __init__(self, params, lr: float = 1e-3, betas: tuple = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.01):
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay)
        super().__init__(params, defaults)
        for group in self.param_groups:
            check_hparams(group)

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            adamw_group_step(group, self.state)
        return loss


def adamw_group_step(group: dict, state: dict) -> None:
    """Update every parameter of one group (also used by MuonAdamW for its adamw groups)."""
    beta1, beta2 = group["betas"]
    for p in group["params"]:
        if p.grad is None:
            continue
        s = state[p]
        if not s:                               # lazily: parameters without grads get no state
            s["step"] = 0                       # a plain int: checkpoints stay weights_only-loadable
            s["exp_avg"] = torch.zeros_like(p, dtype=torch.float32)
            s["exp_avg_sq"] = torch.zeros_like(p, dtype=torch.float32)
        s["step"] += 1
        if p.dtype == torch.float32:
            adamw_update(p, p.grad, s["exp_avg"], s["exp_avg_sq"], s["step"], group["lr"],
                         beta1, beta2, group["eps"], group["weight_decay"])
        else:                                   # bf16 weights: do the math in fp32, cast back once
            p32 = p.float()
            adamw_update(p32, p.grad.float(), s["exp_avg"], s["exp_avg_sq"], s["step"], group["lr"],
                         beta1, beta2, group["eps"], group["weight_decay"])
            p.copy_(p32)


if __name__ == "__main__":
    torch.manual_seed(0)
    X = torch.randn(256, 8)                      # (N, 8)
    w_true = torch.randn(8, 1)                   # (8, 1)
    y = X @ w_true                               # (N, 1)
    model = torch.nn.Linear(8, 1, bias=False)
    opt = AdamW(model.parameters(), lr=0.05, weight_decay=0.0)
    for i in range(201):
        loss = torch.nn.functional.mse_loss(model(X), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if i % 50 == 0:
            print(f"step {i:3d}  mse {loss.item():.6f}")
