"""The pieces of a transformer block: RMSNorm, rotary embeddings, attention, MLP.

Shapes use B = batch, T = new tokens in this call, Tk = keys attended to (T, or more
with a KV cache), H = query heads, Hkv = key/value heads, D = head_dim, C = n_embd.
Activations keep nanochat's (B, T, H, D) layout until attention itself.

- ``rms_norm``: RMSNorm *without* a learnable scale (nanochat's choice).
- ``Rotary``: precomputed cos/sin tables; ``apply_rotary`` rotates channel pairs
  (i, i + D/2) by a position-dependent angle, so q.k depends on relative position only.
- ``CausalSelfAttention``: q/k/v projections, optional value-embedding gate, RoPE,
  QK-norm, grouped-query attention, sliding windows; runs through
  ``F.scaled_dot_product_attention`` (SDPA) or, for teaching and for attention maps,
  through ``explicit_attention`` (softmax(q k^T / sqrt(D)) with the mask written out).
- ``MLP``: Linear -> ReLU^2 -> Linear at 4x width. ``Block``: pre-norm residual block.
- ``Linear``: fp32 master weights, cast to the activations' dtype in forward.
- ``softcap_cross_entropy``: the loss on softcapped logits in one autograd node (fewer and
  cheaper passes over the (N, V) logits than tanh followed by ``F.cross_entropy``).

What it leaves out: FlashAttention-3 kernels (nanochat loads them on Hopper; SDPA picks
a fused kernel by itself here), dropout (none in nanochat), biases (none).
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from phases.phase1_transformer.config import GPTConfig


def rms_norm(x: torch.Tensor) -> torch.Tensor:
    # x / sqrt(mean(x^2) + eps) over the last dim; no learnable gain
    return F.rms_norm(x, (x.size(-1),))


class Linear(nn.Linear):
    """A bias-free Linear whose fp32 weight is cast to the input dtype (bf16 on GPUs)."""

    def __init__(self, in_features: int, out_features: int):
        super().__init__(in_features, out_features, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight
        return F.linear(x, w if w.dtype == x.dtype else w.to(x.dtype))  # no cast call at all in fp32


# --8<-- [start:rotary]
def rotary_tables(head_dim: int, max_len: int, base: float, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin of shape (max_len, head_dim // 2): angle = position * base^(-2i/D)."""
    inv_freq = base ** (-torch.arange(0, head_dim, 2, dtype=torch.float32, device=device) / head_dim)  # (D/2,)
    positions = torch.arange(max_len, dtype=torch.float32, device=device)                           # (max_len,)
    angles = torch.outer(positions, inv_freq)                                                       # (max_len, D/2)
    return angles.cos(), angles.sin()


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate pairs (x[..., i], x[..., i + D/2]) of x (B, T, H, D) by the angles in cos/sin.

    cos/sin are (T, D/2), the same positions for every row, or (B, T, D/2), a position per row.
    """
    d = x.size(-1) // 2
    x1, x2 = x[..., :d], x[..., d:]                        # (B, T, H, D/2) each
    cos, sin = cos.unsqueeze(-2), sin.unsqueeze(-2)        # (T, 1, D/2) or (B, T, 1, D/2): broadcast over H
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)
# --8<-- [end:rotary]


def attention_mask(t_q: int, t_k: int, window: int, device=None) -> torch.Tensor:
    """Boolean (t_q, t_k) mask, True = may attend. Queries are the *last* t_q of t_k positions.

    Query at absolute position p may see key position j iff j <= p (causal) and
    p - j <= window (the sliding window: ``window`` previous tokens plus itself).
    """
    q_pos = torch.arange(t_k - t_q, t_k, device=device)[:, None]  # (t_q, 1)
    k_pos = torch.arange(t_k, device=device)[None, :]             # (1, t_k)
    return (k_pos <= q_pos) & (q_pos - k_pos <= window)


# --8<-- [start:row_mask]
def row_attention_mask(start: torch.Tensor, t_q: int, t_k: int, window: int) -> torch.Tensor:
    """Boolean (B, 1, t_q, t_k) mask for rows whose t_q new tokens start at positions ``start`` (B,).

    Rows of one batch may sit at different positions (Phase 6's KV cache): row b's query t
    is at position start[b] + t and sees key j iff j <= start[b] + t and start[b] + t - j <= window.
    Keys past a row's own end (another row is longer) are thereby hidden too.
    """
    q_pos = start[:, None, None, None] + torch.arange(t_q, device=start.device)[:, None]  # (B, 1, t_q, 1)
    k_pos = torch.arange(t_k, device=start.device)                                       # (t_k,)
    return (k_pos <= q_pos) & (q_pos - k_pos <= window)
# --8<-- [end:row_mask]


# --8<-- [start:attend_at]
def attend_at(q, k, v, rows, q_pos, window: int) -> torch.Tensor:
    """Attention for K chosen queries only: q (K, H, D) belongs to row ``rows[i]`` (K,) at
    absolute position ``q_pos[i]``; k, v (B, Hkv, Tk, D) hold every key of every row.

    The queries go into a right-padded (B, Tq, H, D) grid, Tq = most queries of one row, so
    one masked SDPA call serves them all; padding slots sit at position 0 (they see key 0,
    never an empty row). Returns (K, H * D).
    """
    B, K = k.size(0), q.size(0)
    slot = F.one_hot(rows, B).cumsum(0)[torch.arange(K, device=q.device), rows] - 1   # (K,) place in its row
    Tq = int(slot.max()) + 1 if K else 1
    grid = q.new_zeros(B, Tq, *q.shape[1:])                                         # (B, Tq, H, D)
    grid[rows, slot] = q
    pos = torch.zeros(B, Tq, dtype=torch.long, device=q.device)
    pos[rows, slot] = q_pos
    k_pos = torch.arange(k.size(2), device=q.device)                               # (Tk,)
    mask = (k_pos <= pos[..., None]) & (pos[..., None] - k_pos <= window)          # (B, Tq, Tk)
    y = F.scaled_dot_product_attention(grid.transpose(1, 2), k, v, attn_mask=mask[:, None],
                                       enable_gqa=True)                            # (B, H, Tq, D)
    return y.transpose(1, 2)[rows, slot].reshape(K, q.size(1) * q.size(2))        # (K, H * D)
# --8<-- [end:attend_at]


# --8<-- [start:explicit]
def explicit_attention(q, k, v, mask):
    """Attention written out. q (B, H, T, D), k and v (B, Hkv, Tk, D), mask (T, Tk) bool.

    Returns the output (B, H, T, D) and the attention weights (B, H, T, Tk).
    """
    groups = q.size(1) // k.size(1)
    if groups > 1:  # grouped-query attention: each k/v head serves `groups` query heads
        k = k.repeat_interleave(groups, dim=1)               # (B, H, Tk, D)
        v = v.repeat_interleave(groups, dim=1)
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))  # (B, H, T, Tk)
    scores = scores.masked_fill(~mask, float("-inf"))         # no peeking at the future / beyond the window
    weights = scores.softmax(dim=-1)                          # each row sums to 1
    return weights @ v, weights                               # (B, H, T, D), (B, H, T, Tk)
# --8<-- [end:explicit]


class CausalSelfAttention(nn.Module):
    def __init__(self, config: GPTConfig, layer_idx: int):
        super().__init__()
        self.layer_idx = layer_idx
        self.n_head, self.n_kv_head, self.head_dim = config.n_head, config.n_kv_head, config.head_dim
        self.qk_norm, self.qk_scale = config.qk_norm, config.qk_scale
        C = config.n_embd
        self.c_q = Linear(C, self.n_head * self.head_dim)
        self.c_k = Linear(C, self.n_kv_head * self.head_dim)
        self.c_v = Linear(C, self.n_kv_head * self.head_dim)
        self.c_proj = Linear(C, C)
        # The value-embedding gate reads the first 12 channels: 3 * sigmoid(.) in (0, 3) per kv head.
        self.ve_gate = Linear(12, self.n_kv_head) if config.has_value_embed(layer_idx) else None
        self.explicit = False      # True: use explicit_attention and keep the weights
        self.last_weights = None   # (B, H, T, Tk) after an explicit forward

    # --8<-- [start:attention_forward]
    def forward(self, x, cos, sin, window: int, ve=None, kv_cache=None, keep=None):
        B, T, C = x.shape
        xq, q_cos, q_sin = x, cos, sin
        if keep is not None:  # queries only at the positions (rows, cols) whose output is wanted
            xq = x[keep][None]                                      # (1, K, C)
            q_cos, q_sin = (t[keep[1]] if t.dim() == 2 else t[keep] for t in (cos, sin))  # (K, D/2)
        q = self.c_q(xq).view(*xq.shape[:2], self.n_head, self.head_dim)  # (B, T, H, D), or (1, K, H, D)
        k = self.c_k(x).view(B, T, self.n_kv_head, self.head_dim)   # (B, T, Hkv, D)
        v = self.c_v(x).view(B, T, self.n_kv_head, self.head_dim)   # (B, T, Hkv, D)
        if ve is not None:  # value embedding, gated per kv head
            gate = 3 * torch.sigmoid(self.ve_gate(x[..., :12]))     # (B, T, Hkv)
            v = v + gate.unsqueeze(-1) * ve.view(B, T, self.n_kv_head, self.head_dim)
        q, k = apply_rotary(q, q_cos, q_sin), apply_rotary(k, cos, sin)
        if self.qk_norm:  # unit-RMS q and k keep attention logits bounded; 1.2 sharpens them
            q, k = rms_norm(q) * self.qk_scale, rms_norm(k) * self.qk_scale
        start = 0
        if kv_cache is not None:  # write this call's k, v into the cache; get every key so far
            start = kv_cache.get_pos()                              # int, or (B,) when rows differ
            k, v = kv_cache.update(self.layer_idx, k, v)            # (B, Tk, Hkv, D)
        if keep is not None:
            rows, cols = keep
            q_pos = cols + (start[rows] if torch.is_tensor(start) else start)     # (K,) absolute positions
            return self.c_proj(attend_at(q[0], k.transpose(1, 2), v.transpose(1, 2), rows, q_pos, window))
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)  # (B, heads, time, D)
        Tk = k.size(2)
        if torch.is_tensor(start):  # rows at their own positions: a causal/window mask per row
            mask = row_attention_mask(start, T, Tk, window)          # (B, 1, T, Tk)
            if self.explicit:
                y, self.last_weights = explicit_attention(q, k, v, mask)
            else:
                y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=True)
        elif self.explicit:
            y, self.last_weights = explicit_attention(q, k, v, attention_mask(T, Tk, window, x.device))
        elif Tk == T and window >= T:  # plain causal: SDPA's fused kernel, no mask tensor
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
        elif T == 1:  # one new token: it sees the last window + 1 keys, no mask needed
            if window < Tk - 1:
                k, v = k[:, :, -(window + 1):], v[:, :, -(window + 1):]
            y = F.scaled_dot_product_attention(q, k, v, enable_gqa=True)
        else:  # sliding window or chunk against a cache: an explicit boolean mask
            mask = attention_mask(T, Tk, window, x.device)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=True)
        y = y.transpose(1, 2).reshape(B, T, C)                        # (B, T, C)
        return self.c_proj(y)
    # --8<-- [end:attention_forward]


class MLP(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        hidden = config.mlp_ratio * config.n_embd
        self.c_fc = Linear(config.n_embd, hidden)
        self.c_proj = Linear(hidden, config.n_embd)

    def forward(self, x):
        h = self.c_fc(x)                                     # (B, T, 4C)
        if h.requires_grad:                                  # ReLU^2: sparse like ReLU, smoother above 0
            return self.c_proj(F.relu(h).square())
        return self.c_proj(F.relu_(h).square_())             # no autograd: in place, no (B, T, 4C) copies


class Block(nn.Module):
    def __init__(self, config: GPTConfig, layer_idx: int):
        super().__init__()
        self.attn = CausalSelfAttention(config, layer_idx)
        self.mlp = MLP(config)

    def forward(self, x, cos, sin, window: int, ve=None, kv_cache=None, keep=None):
        # keep = (rows, cols): every position's keys and values, but the output (K, C) only there
        h = self.attn(rms_norm(x), cos, sin, window, ve, kv_cache, keep)  # pre-norm: the residual stays clean
        x = x + h if keep is None else x[keep] + h
        x = x + self.mlp(rms_norm(x))
        return x


def softcap(z: torch.Tensor, cap: float, inplace: bool = False) -> torch.Tensor:
    """cap * tanh(z / cap), written as cap * (2 sigmoid(2 z / cap) - 1): the same function, and on a
    CPU a sigmoid costs half a tanh (decoding applies it to B x 32,768 logits every step).
    ``inplace`` (no autograd) overwrites z: the same operations in the same order, so the same
    bits, without three fresh (N, V) tensors (scoring applies it to thousands of rows at once)."""
    if inplace:
        return z.mul_(2.0 / cap).sigmoid_().mul_(2.0 * cap).sub_(cap)
    return torch.sigmoid(z * (2.0 / cap)) * (2.0 * cap) - cap


# --8<-- [start:softcap_ce]
class SoftcapCrossEntropy(torch.autograd.Function):
    """Per-token loss of cap * tanh(z / cap) against targets, with a hand-written backward.

    Written out instead of ``F.cross_entropy(cap * tanh(z / cap))`` because, over a 32k
    vocabulary, the loss walks (N, V) logits several times and costs a large share of a
    CPU step. Three choices make it cheap, eager and under ``torch.compile`` alike:

    - tanh through a sigmoid: tanh(z / cap) = 1 - 2r with r = sigmoid(-2 z / cap), and
      tanh's derivative 1 - t^2 = 4 r (1 - r). The forward keeps only r; the backward
      needs no tanh (CPU tanh kernels are slow next to sigmoid and exp).
    - no max in the log-sum-exp: the softcap bounds every logit to (-cap, cap), and
      exp(cap) <= e^30 for cap <= 30 is far from fp32's overflow.
    - the one-hot subtracted afterwards, at N positions: the big (N, V) gradient stays
      one elementwise expression, which inductor fuses into a single loop.
    """

    @staticmethod
    def forward(ctx, z, targets, cap: float):
        r = z.mul(-2.0 / cap).sigmoid_()                          # (N, V); t = tanh(z/cap) = 1 - 2r
        lse = r.mul(-2.0 * cap).add_(cap).exp_().sum(dim=-1).log_()   # (N,) log-sum-exp of the logits
        valid = targets >= 0                                      # (N,) ignore_index = -1
        safe = targets.clamp(min=0)
        picked = (1 - 2 * r.gather(1, safe[:, None]).squeeze(1)) * cap   # (N,) logit of the target
        ctx.save_for_backward(r, lse, safe, valid)
        ctx.cap = cap
        return (lse - picked) * valid                             # (N,) 0 where ignored

    @staticmethod
    def backward(ctx, grad):                                      # grad: (N,)
        r, lse, safe, valid = ctx.saved_tensors
        g = (grad * valid).mul_(4)[:, None]                       # (N, 1); the 4 of 4 r (1 - r)
        d = r.mul(-2.0 * ctx.cap).add_(ctx.cap - lse[:, None]).exp_()   # (N, V) softmax
        d.mul_(r).addcmul_(d, r, value=-1).mul_(g)                # softmax * (1 - t^2) * grad
        r_t = r.gather(1, safe[:, None])                          # (N, 1) r at the targets
        d.scatter_add_(1, safe[:, None], -(r_t * (1 - r_t) * g))  # minus the one-hot, same factors
        return d, None, None


def softcap_cross_entropy(z: torch.Tensor, targets: torch.Tensor, cap: float,
                          reduction: str = "mean") -> torch.Tensor:
    """Cross-entropy of cap * tanh(z / cap); z (N, V) fp32, targets (N,) with -1 = ignore."""
    if cap > 30:
        raise ValueError(f"softcap {cap} is too large for the max-free log-sum-exp (use <= 30)")
    per_token = SoftcapCrossEntropy.apply(z, targets, cap)       # (N,)
    if reduction == "none":
        return per_token
    if reduction == "sum":
        return per_token.sum()
    return per_token.sum() / (targets >= 0).sum()                # mean over counted tokens (nan if none)
# --8<-- [end:softcap_ce]
