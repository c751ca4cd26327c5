r"""The arithmetic of policy-gradient RL for language models, from REINFORCE to DAPO.

For a prompt, sample a *group* of ``N`` completions, score each with a reward ``r_i``
(here: 1 if its ``####`` answer is right, else 0), and push up the log-probability of
the tokens of completions that did better than their group:

    advantage     A_i = r_i - mean(r)                       (GRPO divides by std(r) too)
    ratio         rho_t = pi(y_t) / pi_old(y_t)             (1 when on-policy)
    per token     l_t = -min(rho_t A_i, clip(rho_t, 1 - eps, 1 + eps_high) A_i) + beta KL_t
    loss          sum of l_t over every supervised token / number of those tokens   (DAPO)

The switches, and where each method sits:

- ``scale_rewards``: ``"none"`` (Dr. GRPO, nanochat), ``"group"`` (GRPO: divide by the
  group's std), ``"batch"`` (by the std of every reward in the batch);
- ``clip_eps`` / ``clip_eps_high``: PPO's trust region, which matters only when one batch
  of samples is used for several updates (``old_logp`` given); on-policy the ratio is
  exactly 1 and its gradient is the gradient of ``log pi``: REINFORCE with a baseline;
- ``beta``: a KL penalty to a frozen reference model (GRPO's k3 estimator
  ``exp(ref - logp) - (ref - logp) - 1``), 0 = no reference model at all (nanochat, TRL);
- ``normalise``: ``"token"`` (DAPO: every token of the batch weighs the same) or
  ``"sequence"`` (GRPO: mean over each completion's tokens, then over completions, which
  gives each token of a short answer more weight: short right answers are pushed up more,
  long wrong answers pushed down less — Dr. GRPO's length bias).

nanochat's ``chat_rl.py`` is the point (no std, on-policy, no KL, token-level): the
defaults here. A group whose rewards are all equal has all advantages 0 and contributes
no gradient, whatever the switches.

What it leaves out: value functions (PPO's critic), reward models, DPO.
Run: ``python -m phases.phase8_sft.grpo`` works one hand-made group through the formulas.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

SCALES = ("none", "group", "batch")
NORMALISATIONS = ("token", "sequence")


# --8<-- [start:advantages]
def advantages(rewards: torch.Tensor, scale: str = "none", eps: float = 1e-4) -> torch.Tensor:
    """(G, N) rewards of G groups of N samples -> (G, N) advantages: reward minus its group's mean."""
    if scale not in SCALES:
        raise ValueError(f"scale_rewards must be one of {SCALES}, got {scale!r}")
    rewards = rewards.double()
    adv = rewards - rewards.mean(dim=-1, keepdim=True)                 # (G, N): the group is the baseline
    if scale == "group":
        adv = adv / (rewards.std(dim=-1, keepdim=True, unbiased=False) + eps)
    elif scale == "batch":
        adv = adv / (rewards.std(unbiased=False) + eps)
    return adv.float()
# --8<-- [end:advantages]


@dataclass
class LossStats:
    tokens: int           # supervised (sampled) tokens in the loss
    mean_ratio: float     # 1.0 on-policy
    clipped: float        # share of tokens whose ratio was clipped
    kl: float             # mean k3 estimate of KL(pi || ref); 0 without a reference


# --8<-- [start:policy_loss]
def policy_loss(logp: torch.Tensor, mask: torch.Tensor, adv: torch.Tensor, old_logp: torch.Tensor | None = None,
                ref_logp: torch.Tensor | None = None, clip_eps: float = 0.2, clip_eps_high: float | None = None,
                beta: float = 0.0, normalise: str = "token") -> tuple[torch.Tensor, LossStats]:
    """The loss to minimise for (B, T) token log-probs ``logp`` of B completions.

    ``mask`` (B, T): 1 on sampled completion tokens (not the prompt, not forced tool output,
    not padding); ``adv`` (B,): each completion's advantage.
    """
    if normalise not in NORMALISATIONS:
        raise ValueError(f"normalise must be one of {NORMALISATIONS}, got {normalise!r}")
    mask = mask.to(logp.dtype)
    old = logp.detach() if old_logp is None else old_logp          # on-policy: ratio 1, gradient of log p
    ratio = torch.exp(logp - old)                                  # (B, T)
    a = adv.to(logp.dtype)[:, None]                                # (B, 1)
    high = clip_eps if clip_eps_high is None else clip_eps_high
    clipped_ratio = ratio.clamp(1 - clip_eps, 1 + high)
    per_token = -torch.minimum(ratio * a, clipped_ratio * a)       # (B, T): PPO's pessimistic bound
    kl = torch.zeros_like(logp)
    if beta and ref_logp is not None:
        d = ref_logp - logp
        kl = torch.exp(d) - d - 1                                  # (B, T) k3: >= 0, unbiased
        per_token = per_token + beta * kl
    n = mask.sum()
    if normalise == "token":                                       # DAPO: every token counts the same
        loss = (per_token * mask).sum() / n.clamp(min=1)
    else:                                                          # GRPO: per completion, then mean
        loss = ((per_token * mask).sum(1) / mask.sum(1).clamp(min=1)).mean()
    with torch.no_grad():
        stats = LossStats(int(n.item()), float((ratio * mask).sum() / n.clamp(min=1)),
                          float((((ratio - clipped_ratio).abs() > 0).to(mask.dtype) * mask).sum() / n.clamp(min=1)),
                          float((kl * mask).sum() / n.clamp(min=1)))
    return loss, stats
# --8<-- [end:policy_loss]


def token_logprobs(model, x: torch.Tensor, y: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """(B, T) log-probability of each target under ``model`` sampled at ``temperature``; 0 where y is -1.

    The policy that picked the tokens is the model's softmax at the sampling temperature, so that
    is the distribution whose log-probabilities the loss (and its ratio) must use.
    """
    logits = model(x).float()                                      # (B, T, V), softcapped
    logp = torch.log_softmax(logits / temperature, dim=-1)         # (B, T, V)
    picked = logp.gather(-1, y.clamp(min=0)[..., None])[..., 0]    # (B, T)
    return picked * (y >= 0)


if __name__ == "__main__":
    rewards = torch.tensor([[1.0, 0.0, 0.0, 1.0], [1.0, 1.0, 1.0, 1.0]])
    for scale in SCALES:
        print(f"scale={scale:5s} advantages:", advantages(rewards, scale).tolist())
    logp = torch.log(torch.full((4, 3), 0.5, requires_grad=True))
    logp.retain_grad()
    loss, st = policy_loss(logp, torch.ones(4, 3), advantages(rewards)[0])
    loss.backward()
    print(f"loss {loss.item():.3f}, d loss / d log p per completion: {logp.grad[:, 0].tolist()}, {st}")
