"""Sampling: from the logits at the last position to the next token.

The model gives a score (logit) for every token of the vocabulary; generation turns the
scores of the last position into one chosen token, then feeds it back. How it chooses is
the *decoding strategy*, and three knobs cover what nanochat and the OpenAI API offer:

- **temperature** T: divide the logits by T before the softmax. T < 1 sharpens the
  distribution (more predictable), T > 1 flattens it (more varied); T = 0 means *greedy*:
  always the single most likely token (argmax), no randomness at all.
- **top-k**: keep only the k highest-scoring tokens (0 or None = keep all).
- **top-p** (nucleus sampling, Holtzman et al. 2019): keep the smallest set of most likely
  tokens whose probabilities add up to at least p (1.0 or None = keep all).

Filtered tokens get a logit of -inf, hence probability 0. Every knob may be one number
for the whole batch or one value per row (a (B,) tensor), because Phase 9's server decodes
requests with different settings in one batch.

This is the one sampler of the project: Phase 1's naive ``GPT.generate``, Phase 6's
engine and its explorer, Phase 8's RL rollouts and Phase 9's server all call it, so
"cached == naive" compares the caches, never two samplers.

What it leaves out: repetition/frequency penalties, min-p, beam search.

Run: ``python -m phases.phase1_transformer.sampling`` prints how each knob reshapes a
small distribution.
"""
from __future__ import annotations

from typing import Sequence, Union

import torch

Knob = Union[float, int, None, torch.Tensor]


def _per_row(value: Knob, rows: int, default: float, device, dtype=torch.float32) -> torch.Tensor:
    """A knob as a (B, 1) column: one number for every row, or one per row."""
    if value is None:
        value = default
    t = torch.as_tensor(value, dtype=dtype, device=device)
    if t.ndim == 0:
        t = t.expand(rows)
    if t.shape != (rows,):
        raise ValueError(f"expected one value or {rows} values (one per row), got shape {tuple(t.shape)}")
    return t.reshape(rows, 1)                                              # (B, 1)


def check_knobs(temperature: Knob = 1.0, top_k: Knob = None, top_p: Knob = None) -> None:
    """Raise ValueError for values no sampler accepts (negative temperature, top_p outside (0, 1])."""
    for name, value, ok, rule in (("temperature", temperature, lambda t: (t >= 0).all(), ">= 0"),
                                  ("top_k", top_k, lambda k: ((k >= 0) & (k < 2 ** 63)).all(),
                                   ">= 0 (0 = off) and below 2^63"),
                                  ("top_p", top_p, lambda p: ((p > 0) & (p <= 1)).all(), "in (0, 1]")):
        if value is None:
            continue
        t = torch.as_tensor(value, dtype=torch.float64)
        finite = bool(torch.isfinite(t).all())
        if not finite or not bool(ok(t)):
            raise ValueError(f"{name} must be {rule}{'' if finite else ' and finite'}, got {value}")


# --8<-- [start:filter]
def filter_logits(logits: torch.Tensor, temperature: Knob = 1.0, top_k: Knob = None,
                  top_p: Knob = None) -> torch.Tensor:
    """(B, V) logits -> (B, V) float32 logits / T with the filtered tokens set to -inf.

    Rows with temperature 0 are divided by 1 (their choice is the argmax anyway).
    """
    check_knobs(temperature, top_k, top_p)
    B, V = logits.shape
    device = logits.device
    temp = _per_row(temperature, B, 1.0, device)                           # (B, 1)
    x = logits.float() / torch.where(temp > 0, temp, torch.ones_like(temp))  # (B, V)
    if top_k is not None:
        k = _per_row(top_k, B, 0, device, torch.long).clamp(max=V)          # (B, 1); 0 = off
        if bool((k > 0).any()):
            k_max = int(k.max())
            top = torch.topk(x, k_max, dim=-1).values                      # (B, k_max), descending
            kth = top.gather(1, (k.clamp(min=1) - 1))                      # (B, 1): the k-th largest
            kth = torch.where(k > 0, kth, torch.full_like(kth, float("-inf")))
            x = x.masked_fill(x < kth, float("-inf"))
    if top_p is not None:
        p = _per_row(top_p, B, 1.0, device)                                # (B, 1)
        if bool((p < 1).any()):
            sorted_x, order = torch.sort(x, dim=-1, descending=True)       # (B, V)
            probs = sorted_x.softmax(dim=-1)                               # (B, V)
            before = probs.cumsum(dim=-1) - probs                          # mass of the better tokens
            drop_sorted = before >= p                                      # the first token is always kept
            drop = torch.zeros_like(drop_sorted).scatter(1, order, drop_sorted)  # back to vocab order
            x = x.masked_fill(drop & (p < 1), float("-inf"))
    return x
# --8<-- [end:filter]


def probabilities(logits: torch.Tensor, temperature: Knob = 1.0, top_k: Knob = None,
                  top_p: Knob = None) -> torch.Tensor:
    """(B, V) -> (B, V): the distribution a row samples from; greedy rows put 1 on the argmax."""
    x = filter_logits(logits, temperature, top_k, top_p)
    probs = x.softmax(dim=-1)                                              # (B, V)
    greedy = _per_row(temperature, logits.size(0), 1.0, logits.device) == 0  # (B, 1)
    if bool(greedy.any()):
        onehot = torch.zeros_like(probs).scatter(1, logits.argmax(dim=-1, keepdim=True), 1.0)
        probs = torch.where(greedy, onehot, probs)
    return probs


def entropy(logits: torch.Tensor, temperature: Knob = 1.0, top_k: Knob = None, top_p: Knob = None) -> torch.Tensor:
    """(B, V) -> (B,) entropy in nats of the distribution a row samples from (0 for greedy rows).

    ln V for a uniform guess over V tokens; 0 when one token has all the mass. It measures
    how unsure the model (after the knobs) is *before* choosing; the surprisal -ln p(token)
    of the chosen token says how unexpected the choice was *after*.
    """
    probs = probabilities(logits, temperature, top_k, top_p)               # (B, V)
    logp = torch.where(probs > 0, probs.log(), torch.zeros_like(probs))
    return -(probs * logp).sum(dim=-1)


# --8<-- [start:sample]
def sample_next(logits: torch.Tensor, temperature: Knob = 1.0, top_k: Knob = None, top_p: Knob = None,
                generator: torch.Generator | Sequence[torch.Generator] | None = None) -> torch.Tensor:
    """(B, V) logits -> (B,) int64 next tokens.

    ``generator``: one ``torch.Generator`` for the whole batch, or one per row (then each
    row's draws depend only on its own generator: a row sampled in a batch gets the same
    tokens as alone). Greedy rows (temperature 0) use no randomness.
    """
    B = logits.size(0)
    greedy = _per_row(temperature, B, 1.0, logits.device).squeeze(1) == 0  # (B,)
    choice = logits.argmax(dim=-1)                                         # (B,)
    if bool(greedy.all()):
        return choice
    probs = filter_logits(logits, temperature, top_k, top_p).softmax(dim=-1)  # (B, V)
    if generator is None or isinstance(generator, torch.Generator):
        drawn = torch.multinomial(probs, 1, generator=generator).squeeze(1)  # (B,)
    else:
        if len(generator) != B:
            raise ValueError(f"{len(generator)} generators for {B} rows")
        drawn = torch.stack([torch.multinomial(probs[r:r + 1], 1, generator=g)[0, 0] if not greedy[r] else choice[r]
                             for r, g in enumerate(generator)])          # (B,): each row its own draws
    return torch.where(greedy, choice, drawn)
# --8<-- [end:sample]


if __name__ == "__main__":
    torch.set_printoptions(precision=3, sci_mode=False)
    logits = torch.tensor([[2.0, 1.0, 0.5, 0.0, -1.0]])
    print("logits            ", logits[0].tolist())
    for label, kw in (("T=1", {}), ("T=0.5", {"temperature": 0.5}), ("T=2", {"temperature": 2.0}),
                      ("top-k=2", {"top_k": 2}), ("top-p=0.8", {"top_p": 0.8}), ("greedy (T=0)", {"temperature": 0})):
        print(f"{label:18s}", probabilities(logits, **kw)[0])
