"""Validation bits per byte, and samples from fixed prompts.

**Bits per byte (bpb)** is nanochat's validation metric: the summed cross-entropy (in
nats) of every target token, divided by ln 2 times the number of UTF-8 bytes those
targets stand for. Unlike loss per token it does not depend on the tokenizer, so models
with different vocabularies compare fairly. Special tokens (``<|bos|>`` …) have 0 bytes
and are left out of both sums, as are ignored targets (-1).

**Samples**: greedy continuations of a few fixed prompts, the quickest way to see what a
model has learned.

What it leaves out: CORE and the chat evaluations (Phase 7).
"""
from __future__ import annotations

import math
from typing import Iterable

import torch

SAMPLE_PROMPTS = ("Return the", "The following", "Parameters\n----------\n", "This function", "import ")


def token_byte_lengths(tok, device="cpu") -> torch.Tensor:
    """(V,) int64: the UTF-8 byte length of every token; 0 for special tokens."""
    lengths = [0 if tok.is_special(i) else len(tok.token_bytes(i)) for i in range(tok.vocab_size)]
    return torch.tensor(lengths, dtype=torch.int64, device=device)


# --8<-- [start:bpb]
@torch.no_grad()
def evaluate_bpb(model, batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
                 token_bytes: torch.Tensor) -> tuple[float, float, float]:
    """Return (bpb, total_nats, total_bytes) over ``batches`` of (inputs, targets)."""
    total_nats = torch.zeros((), dtype=torch.float64)
    total_bytes = torch.zeros((), dtype=torch.int64)
    for x, y in batches:
        nats = model(x, targets=y, loss_reduction="none").double()   # (B, T) loss per target
        nbytes = token_bytes[y.clamp(min=0)] * (y >= 0)               # (B, T): 0 for ignored/special
        total_nats += (nats * (nbytes > 0)).sum().cpu()
        total_bytes += nbytes.sum().cpu()
    if total_bytes.item() == 0:
        return float("nan"), 0.0, 0.0
    # in float64 throughout: (python float) * (int64 tensor) would silently give float32
    return (total_nats / (math.log(2) * total_bytes.double())).item(), total_nats.item(), float(total_bytes.item())
# --8<-- [end:bpb]


def sample(model, tok, prompts: Iterable[str] = SAMPLE_PROMPTS, max_tokens: int = 24,
           temperature: float = 0.8, top_k: int = 50, seed: int = 0) -> list[tuple[str, str]]:
    """Continuations [(prompt, continuation), ...], sampled with a fixed seed (reproducible).

    Not greedy by default: a small, young model's argmax falls into loops ("the the the"), a
    property of greedy decoding rather than of what the model learned (Holtzman et al., 2019).
    ``temperature=0`` gives the greedy continuation.
    """
    was_training = model.training
    model.eval()
    out = []
    try:
        for prompt in prompts:
            ids = tok.encode(prompt, prepend="<|bos|>")
            new = list(model.generate(ids, max_tokens=max_tokens, temperature=temperature, top_k=top_k,
                                      seed=seed))
            out.append((prompt, tok.decode(new)))
    finally:
        model.train(was_training)
    return out
