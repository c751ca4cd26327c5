"""The engine's KV cache: preallocated, batched, written in place, a position per row.

Decoding one token needs the keys and values of every earlier token. This cache keeps
them in preallocated tensors, ``k[layer]`` and ``v[layer]`` of shape
``(B, n_kv_head, T_max, head_dim)`` per layer in the compute dtype: head-major, the layout
``F.scaled_dot_product_attention`` reads (nanochat's FlashAttention-3 kernel wants
``(B, T_max, H, D)``; on a CPU, SDPA over that strided layout measured 1.8x slower at
batch 8). New keys are *written into* them at each row's position (never ``torch.cat``:
that would copy the whole cache every step). The model never sees the layout: a view hands
it ``(B, T, Hkv, D)`` tensors, as Phase 1's protocol says.

Each row has its own position, ``pos: (B,) long``: rows of one batch may sit at different
positions (different prompts, a request admitted while others are mid-reply). The model
reads the cache through a **view** of some rows (``cache.view(rows)``), which speaks
Phase 1's protocol (``phases/phase1_transformer/kv_cache.py``): ``get_pos`` returns one
int when the rows agree and a ``(B,)`` tensor when they do not (then the model offsets
rotary angles and builds causal/window masks per row).

For smear (the previous token's embedding mixed into the current one) the cache also
keeps each cached token's normed embedding, ``emb: (B, T_max, n_embd)``, so a row can be
rolled back to *any* position and still know its previous token's embedding.

Row operations: ``reset(rows)`` frees rows; ``truncate(row, pos)`` rolls a row back
(regenerate, edit); ``copy_prefix(src, dsts, length)`` copies one prefill out to N
sample rows (or a shared prompt prefix to other rows); ``bytes_used`` /
``bytes_per_token`` / ``bytes_allocated`` report memory.

What it leaves out: paged blocks (vLLM's PagedAttention: memory on demand instead of
``T_max`` per row), eviction of tokens outside every window, quantised (int8/fp8) caches.

Run: ``python -m phases.phase6_inference.kv_cache`` prints what a cache costs for the
CPU demo model and for nanochat's d20.
"""
from __future__ import annotations

from typing import Iterable, Sequence

import torch


def _rows(rows: int | Iterable[int] | None, batch: int) -> list[int]:
    if rows is None:
        return list(range(batch))
    out = [rows] if isinstance(rows, int) else [int(r) for r in rows]
    for r in out:
        if not 0 <= r < batch:
            raise IndexError(f"row {r} is out of range for a cache of {batch} rows")
    return out


def check_fits(rows: int, max_len: int, bytes_per_token: int, device) -> None:
    """Refuse, with the figure, a cache of ``rows`` x ``max_len`` tokens larger than ``device``'s
    memory (``generate -n 100000``, RL's ``num_samples=1e6``): an error now, not minutes of swap."""
    from phases.common.console import UserError
    from phases.phase1_transformer.config import gib
    from phases.phase1_transformer.memory import device_memory
    need, have = rows * max_len * bytes_per_token, device_memory(device)
    if have is not None and need > have:
        raise UserError(f"a KV cache of {rows:,} rows x {max_len:,} tokens needs {gib(need)} but {device} has "
                        f"{gib(have)}; ask for fewer samples (rows) or a shorter context")


class KVCache:
    """Keys, values and smear embeddings for ``batch`` rows of up to ``max_len`` tokens."""

    # --8<-- [start:init]
    def __init__(self, n_layer: int, batch: int, max_len: int, n_kv_head: int, head_dim: int,
                 dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu", n_embd: int = 0):
        if min(n_layer, batch, max_len, n_kv_head, head_dim) < 1:
            raise ValueError("n_layer, batch, max_len, n_kv_head and head_dim must be positive")
        shape = (batch, n_kv_head, max_len, head_dim)
        self.k = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(n_layer)]  # L x (B, Hkv, T_max, D)
        self.v = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(n_layer)]
        # smear state: the normed embedding of every cached token (None when the model has no smear)
        self.emb = torch.zeros(batch, max_len, n_embd, dtype=dtype, device=device) if n_embd else None
        self.pos = torch.zeros(batch, dtype=torch.long)                 # (B,) tokens cached per row (CPU)
    # --8<-- [end:init]

    @classmethod
    def for_model(cls, model, batch: int, max_len: int | None = None) -> "KVCache":
        """A cache shaped for ``model`` (a Phase 1 GPT) in its compute dtype, on its device.

        ``max_len`` defaults to the model's ``sequence_len`` and may go up to its rotary
        table (10 x ``sequence_len``).
        """
        cfg = model.config
        max_len = max_len or cfg.sequence_len
        if max_len > model.cos.size(0):
            raise ValueError(f"max_len {max_len} exceeds the model's rotary table ({model.cos.size(0)} positions)")
        check_fits(batch, max_len, model.kv_bytes_per_token(), model.wte.weight.device)
        return cls(cfg.n_layer, batch, max_len, cfg.n_kv_head, cfg.head_dim, dtype=model.compute_dtype,
                   device=model.wte.weight.device, n_embd=cfg.n_embd if cfg.smear else 0)

    # -- sizes -------------------------------------------------------------------------------
    @property
    def n_layer(self) -> int:
        return len(self.k)

    @property
    def batch(self) -> int:
        return self.k[0].size(0)

    @property
    def max_len(self) -> int:
        return self.k[0].size(2)

    @property
    def device(self) -> torch.device:
        return self.k[0].device

    def bytes_per_token(self) -> int:
        """Bytes one cached token of one row takes: K and V of every layer (+ its smear embedding)."""
        _, H, _, D = self.k[0].shape
        kv = 2 * self.n_layer * H * D * self.k[0].element_size()
        return kv + (self.emb.size(-1) * self.emb.element_size() if self.emb is not None else 0)

    def bytes_used(self) -> int:
        """Bytes holding live tokens now: (tokens cached over all rows) x bytes_per_token."""
        return int(self.pos.sum()) * self.bytes_per_token()

    def bytes_allocated(self) -> int:
        """Bytes reserved up front: batch x max_len x bytes_per_token."""
        return self.batch * self.max_len * self.bytes_per_token()

    # -- row operations ----------------------------------------------------------------------
    def view(self, rows: int | Sequence[int] | None = None) -> "CacheView":
        """The rows (all by default) as the object ``GPT.forward(kv_cache=...)`` takes."""
        return CacheView(self, _rows(rows, self.batch))

    def static_view(self) -> "StaticView":
        """Every row over the whole ``max_len``, in tensors only: the view a compiled decode step reads.

        Always the same object for a cache (a compiled step then reuses its graph)."""
        if getattr(self, "_static", None) is None:
            self._static = StaticView(self)
        return self._static

    def reset(self, rows: int | Iterable[int] | None = None) -> None:
        """Forget the rows' tokens (all rows by default); the storage is reused, not cleared."""
        for r in _rows(rows, self.batch):
            self.pos[r] = 0

    def truncate(self, row: int, pos: int) -> None:
        """Roll ``row`` back to its first ``pos`` tokens (regenerate, edit, branch)."""
        (row,) = _rows(row, self.batch)
        if not 0 <= pos <= int(self.pos[row]):
            raise ValueError(f"cannot truncate row {row} to {pos}: it holds {int(self.pos[row])} tokens")
        self.pos[row] = pos

    # --8<-- [start:copy_prefix]
    def copy_prefix(self, src_row: int, dst_rows: int | Iterable[int], length: int | None = None) -> None:
        """Copy the first ``length`` tokens (all of ``src_row``'s by default) of ``src_row`` into ``dst_rows``.

        One prefill, N sample rows: prefill the prompt once into ``src_row``, then copy it.
        The destination rows end up at position ``length``.
        """
        (src,) = _rows(src_row, self.batch)
        dst = [r for r in _rows(dst_rows, self.batch) if r != src]
        n = int(self.pos[src]) if length is None else length
        if not 0 <= n <= int(self.pos[src]):
            raise ValueError(f"row {src} holds {int(self.pos[src])} tokens, cannot copy {n}")
        if dst and n:
            index = torch.tensor(dst, device=self.device)
            for store in self.k + self.v:                             # (B, Hkv, T_max, D)
                store[index, :, :n] = store[src:src + 1, :, :n]
            if self.emb is not None:                                  # (B, T_max, C)
                self.emb[index, :n] = self.emb[src:src + 1, :n]
        for r in dst:
            self.pos[r] = n
    # --8<-- [end:copy_prefix]


class CacheView:
    """Some rows of a ``KVCache``, in the protocol ``GPT.forward`` speaks (Phase 1 ``kv_cache.py``).

    Made by ``KVCache.view(rows)``, used for one forward call: ``get_pos`` gives the rows'
    positions (an int when they agree, else a (B,) tensor on the cache's device),
    ``update`` writes each row's new keys/values at its position and returns the keys/values
    of positions ``0 .. max(pos) + T`` (positions past a row's own end hold stale data; the
    model's per-row mask hides them), ``advance`` moves the positions on.
    """

    def __init__(self, cache: KVCache, rows: list[int]):
        self.cache, self.rows = cache, rows
        self.n = len(rows)
        start = rows[0]
        contiguous = rows == list(range(start, start + self.n))
        self._index = slice(start, start + self.n) if contiguous else torch.tensor(rows, device=cache.device)
        pos = cache.pos.tolist()
        self._pos = [pos[r] for r in rows]
        self._refresh()

    def _refresh(self) -> None:
        same = all(p == self._pos[0] for p in self._pos)
        self._max = max(self._pos)                                       # the furthest row's position
        self._pos_t = None if same else torch.tensor(self._pos, dtype=torch.long, device=self.cache.device)

    # -- the protocol ------------------------------------------------------------------------
    def get_pos(self) -> int | torch.Tensor:
        return self._pos[0] if self._pos_t is None else self._pos_t

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Write k, v (B, T, Hkv, D) at each row's position; return keys/values (B, Tk, Hkv, D)."""
        end = self._max + k.size(1)
        ks, vs = self.cache.k[layer], self.cache.v[layer]               # (B_all, Hkv, T_max, D)
        self._write(ks.transpose(1, 2), k)                              # into a (B_all, T_max, Hkv, D) view
        self._write(vs.transpose(1, 2), v)
        idx = self._index                                               # views, or a gather for scattered rows
        return ks[idx, :, :end].transpose(1, 2), vs[idx, :, :end].transpose(1, 2)   # (B, Tk, Hkv, D)

    def _write(self, store: torch.Tensor, new: torch.Tensor) -> None:
        """Write ``new`` (B, T, ...) into the rows of ``store`` (B_all, T_max, ...) at their positions."""
        T = new.size(1)
        if self._max + T > self.cache.max_len:
            raise ValueError(f"the KV cache holds {self.cache.max_len} tokens per row; "
                             f"this call needs {self._max + T}")
        if self._pos_t is None:                                          # all rows at one position: a slice
            p = self._pos[0]
            store[self._index, p:p + T] = new
        elif T == 1:                                                     # decode: one scatter
            rows = self._index if torch.is_tensor(self._index) else torch.arange(
                self._index.start, self._index.stop, device=store.device)
            store[rows, self._pos_t] = new[:, 0]
        else:                                                            # chunks at different positions
            rows = torch.tensor(self.rows, device=store.device)[:, None]                 # (B, 1)
            store[rows, self._pos_t[:, None] + torch.arange(T, device=store.device)] = new  # (B, T) places

    def advance(self, n: int) -> None:
        if isinstance(self._index, slice):
            self.cache.pos[self._index] += n
        else:
            self.cache.pos[self.rows] += n
        self._pos = [p + n for p in self._pos]
        self._refresh()

    # smear: the previous token's normed embedding per row (zeros for rows at position 0)
    @property
    def prev_embedding(self) -> torch.Tensor | None:
        emb = self.cache.emb
        if emb is None:
            return None
        if self._pos_t is None and self._pos[0] > 0:                     # one position: a slice
            p = self._pos[0]
            return emb[self._index, p - 1:p]                             # (B, 1, C)
        rows = torch.tensor(self.rows, device=emb.device)
        prev = torch.tensor([max(p - 1, 0) for p in self._pos], device=emb.device)
        out = emb[rows, prev].unsqueeze(1)                               # (B, 1, C)
        if min(self._pos) == 0:
            out = out * torch.tensor([float(p > 0) for p in self._pos], dtype=out.dtype,
                                     device=emb.device).view(-1, 1, 1)
        return out

    def save_embeddings(self, x: torch.Tensor) -> None:
        """Keep the new tokens' normed embeddings x (B, T, C), so any position can be rolled back to."""
        if self.cache.emb is not None:
            self._write(self.cache.emb, x)


class StaticView:
    """All rows, all ``max_len`` positions, one new token per row: shapes that never change.

    ``torch.compile`` specialises a graph on shapes and Python values; ``CacheView`` slices
    to the longest row and keeps positions in Python lists, so every step would be a new
    graph. This view keeps the positions in a tensor (the cache's own ``pos``, advanced in
    place), writes with a scatter at those positions and returns the full (B, T_max) keys;
    the model's per-row mask hides everything past each row's end. The price: attention
    reads all ``max_len`` positions, not just the filled ones. Only for T = 1 (decode).
    """

    def __init__(self, cache: KVCache):
        if cache.device.type != "cpu":
            raise ValueError("StaticView keeps positions in the cache's CPU tensor: CPU caches only")
        self.cache = cache
        self.pos = cache.pos                                            # (B,), shared and advanced in place
        self.rows = torch.arange(cache.batch, device=cache.device)

    def get_pos(self) -> torch.Tensor:
        return self.pos

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        ks, vs = self.cache.k[layer], self.cache.v[layer]               # (B, Hkv, T_max, D)
        ks[self.rows, :, self.pos] = k[:, 0]                            # (B, Hkv, D) at each row's position
        vs[self.rows, :, self.pos] = v[:, 0]
        return ks.transpose(1, 2), vs.transpose(1, 2)                   # (B, T_max, Hkv, D) views

    def advance(self, n: int) -> None:
        self.pos += n

    @property
    def prev_embedding(self) -> torch.Tensor | None:
        emb = self.cache.emb
        if emb is None:
            return None
        prev = emb[self.rows, (self.pos - 1).clamp(min=0)]                # (B, C)
        return (prev * (self.pos > 0)[:, None].to(prev.dtype)).unsqueeze(1)

    def save_embeddings(self, x: torch.Tensor) -> None:
        if self.cache.emb is not None:
            self.cache.emb[self.rows, self.pos] = x[:, 0]


if __name__ == "__main__":
    from phases.phase1_transformer.config import preset

    for name in ("cpu-demo", "d20"):
        cfg = preset(name)
        dtype = torch.float32 if name == "cpu-demo" else torch.bfloat16
        with torch.device("meta"):
            cache = KVCache(cfg.n_layer, 1, cfg.sequence_len, cfg.n_kv_head, cfg.head_dim, dtype=dtype,
                            device="meta", n_embd=cfg.n_embd)
        print(f"{name}: {cache.bytes_per_token():,} bytes/token ({dtype}), "
              f"{cache.bytes_allocated() / 2**20:,.1f} MiB for one row of {cfg.sequence_len} tokens")
