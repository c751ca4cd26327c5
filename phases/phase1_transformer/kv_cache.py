"""The KV-cache protocol the model's ``forward`` speaks, and a simple reference cache.

During generation each new token needs the keys and values of every earlier token.
Recomputing them every step costs O(T^2) per token; a KV cache stores them instead.
``GPT.forward(idx, kv_cache=cache)`` treats ``idx`` as the *next* tokens after
``cache.get_pos()`` earlier ones, and each attention layer calls
``cache.update(layer, k, v)`` to append its new keys/values and get all of them back.

Phase 1 defines the protocol and ``SimpleKVCache``, a readable reference that grows by
concatenation; Phase 6 (``phases/phase6_inference/kv_cache.py``) replaces it with a
preallocated, batched cache whose rows may sit at different positions, and which must
give the same logits. What it leaves out: preallocation, batching over different
positions, window-aware eviction.
"""
from __future__ import annotations

from typing import Protocol

import torch


class KVCache(Protocol):
    prev_embedding: torch.Tensor | None  # (B, 1, C): previous token's normed embedding, for smear

    def get_pos(self) -> int | torch.Tensor:
        """How many tokens are cached already (the position of the next token).

        An int when every row is at the same position; a (B,) long tensor when rows sit at
        different positions (Phase 6's batched cache): the model then offsets rotary angles and
        masks attention per row, and ``prev_embedding`` is zero for rows at position 0.
        """

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Append k, v (B, T, Hkv, D) for ``layer``; return all keys/values so far (B, Tk, Hkv, D)."""

    def advance(self, n: int) -> None:
        """Called once per forward, after the last layer: ``n`` new tokens are now cached."""

    def save_embeddings(self, x: torch.Tensor) -> None:
        """Called by smear with the new tokens' normed embeddings x (B, T, C), before smear.

        A cache keeps at least the last one (it becomes ``prev_embedding``); Phase 6's keeps all,
        so that it can be rolled back to any position.
        """


class SimpleKVCache:
    """A list of (k, v) per layer, grown with ``torch.cat``: correct, simple, not fast."""

    def __init__(self, n_layer: int):
        self.keys: list[torch.Tensor | None] = [None] * n_layer
        self.values: list[torch.Tensor | None] = [None] * n_layer
        self.pos = 0
        self.prev_embedding = None

    def get_pos(self) -> int:
        return self.pos

    def update(self, layer, k, v):
        if self.keys[layer] is None:
            self.keys[layer], self.values[layer] = k, v
        else:
            self.keys[layer] = torch.cat([self.keys[layer], k], dim=1)      # (B, Tk, Hkv, D)
            self.values[layer] = torch.cat([self.values[layer], v], dim=1)
        return self.keys[layer], self.values[layer]

    def advance(self, n: int) -> None:
        self.pos += n

    def save_embeddings(self, x: torch.Tensor) -> None:
        self.prev_embedding = x[:, -1:]                                       # (B, 1, C)
