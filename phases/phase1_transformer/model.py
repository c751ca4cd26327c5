"""The GPT: token ids in, next-token logits (and the loss) out — nanochat's modern architecture.

    ids (B, T) -> embedding -> RMSNorm -> [smear] -> x0
              -> L x ( [x = resid_l * x + x0_l * x0]; x += attn(norm x); x += mlp(norm x) )
              -> [backout] -> RMSNorm -> lm_head -> [softcap] -> logits (B, T, V)

Compared with GPT-2 (2019): rotary position embeddings instead of learned ones, RMSNorm
without weights instead of LayerNorm, QK-norm, ReLU^2 instead of GELU, no biases, an
untied lm_head, a logit softcap, optional grouped-query attention and sliding windows,
plus nanochat's later additions (value embeddings, per-layer residual scalars, smear,
backout), each behind a ``GPTConfig`` switch. The lesson explains each one.

``GPT.build(config, device)`` constructs the model on the meta device (no memory, no
time), then materialises it and initialises every parameter as nanochat does.
Accounting lives on the model: ``param_counts``, ``estimate_flops``, ``kv_bytes_per_token``.
``generate`` is the naive reference (full recompute each step) that Phase 6's engine
must match; ``attention_maps`` returns every layer's attention weights.

What it leaves out: FP8 matmuls, FlashAttention-3, fused cross-entropy.

Run: ``python -m phases.phase1_transformer.model`` builds a tiny model and prints its
accounting and a forward pass's shapes.
"""
from __future__ import annotations

from typing import Iterator

import torch
import torch.nn as nn
import torch.nn.functional as F

from phases.phase1_transformer.config import GPTConfig, compute_dtype
from phases.phase1_transformer.layers import (Block, Linear, rms_norm, rotary_tables, softcap,
                                              softcap_cross_entropy)
from phases.phase1_transformer.sampling import check_knobs, sample_next

ROTARY_HEADROOM = 10  # rotary tables cover 10 x sequence_len positions (long generations)


class GPT(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.config = config
        V, C, L = config.vocab_size, config.n_embd, config.n_layer
        kv_dim = config.n_kv_head * config.head_dim
        self.wte = nn.Embedding(V, C)
        self.blocks = nn.ModuleList([Block(config, i) for i in range(L)])
        self.lm_head = Linear(C, config.padded_vocab_size)  # untied from wte
        self.value_embeds = nn.ModuleDict(
            {str(i): nn.Embedding(V, kv_dim) for i in range(L) if config.has_value_embed(i)})
        self._ve_keys = [str(i) if config.has_value_embed(i) else None for i in range(L)]
        if config.resid_scalars:
            self.resid_lambdas = nn.Parameter(torch.ones(L))
            self.x0_lambdas = nn.Parameter(torch.zeros(L))
        if config.smear:
            self.smear_gate = Linear(24, 1)
            self.smear_lambda = nn.Parameter(torch.zeros(1))
        if config.backout:
            self.backout_lambda = nn.Parameter(torch.zeros(1))
        cos, sin = rotary_tables(config.head_dim, ROTARY_HEADROOM * config.sequence_len, config.rope_base)
        self.register_buffer("cos", cos, persistent=False)  # (10T, D/2), recomputed, never saved
        self.register_buffer("sin", sin, persistent=False)
        self.windows = config.window_sizes()
        self.compute_dtype = torch.float32
        if self.wte.weight.device.type != "meta":
            self.init_weights()

    # -- construction ---------------------------------------------------------------
    @classmethod
    def build(cls, config: GPTConfig, device: str | torch.device = "cpu",
              dtype: torch.dtype | None = None, seed: int | None = None) -> "GPT":
        """Build on the meta device, materialise on ``device``, initialise; pick the compute dtype."""
        with torch.device("meta"):
            model = cls(config)            # shapes only: no memory, no random numbers
        model.to_empty(device=device)      # allocate (uninitialised) storage
        if seed is not None:
            torch.manual_seed(seed)
        model.init_weights()
        model.compute_dtype = dtype or compute_dtype(device)
        return model

    # --8<-- [start:init]
    @torch.no_grad()
    def init_weights(self) -> None:
        cfg = self.config
        C, L = cfg.n_embd, cfg.n_layer
        s = 3 ** 0.5 * C ** -0.5  # uniform(-s, s) has the std of N(0, 1/C)
        nn.init.normal_(self.wte.weight, mean=0.0, std=0.8)
        nn.init.normal_(self.lm_head.weight, mean=0.0, std=0.001)  # near-uniform first predictions
        for block in self.blocks:
            attn, mlp = block.attn, block.mlp
            for lin in (attn.c_q, attn.c_k, attn.c_v):
                nn.init.uniform_(lin.weight, -s, s)
            nn.init.uniform_(mlp.c_fc.weight, -0.4 * s, 0.4 * s)
            nn.init.zeros_(attn.c_proj.weight)  # every block starts as the identity on the residual
            nn.init.zeros_(mlp.c_proj.weight)
            if attn.ve_gate is not None:
                nn.init.uniform_(attn.ve_gate.weight, 0.0, 0.02)  # gates start a little above 1.5
        for emb in self.value_embeds.values():
            nn.init.uniform_(emb.weight, -s, s)
        frac = torch.arange(L, dtype=torch.float32) / max(1, L - 1)  # 0 .. 1 over the layers
        if cfg.resid_scalars:
            self.resid_lambdas.copy_(1.15 - 0.10 * frac)  # 1.15 at the bottom, 1.05 at the top
            self.x0_lambdas.copy_(0.20 - 0.15 * frac)     # 0.20 down to 0.05
        if cfg.smear:
            nn.init.uniform_(self.smear_gate.weight, 0.0, 0.02)
            self.smear_lambda.zero_()                      # smear starts switched off
        if cfg.backout:
            self.backout_lambda.fill_(0.2)
        cos, sin = rotary_tables(cfg.head_dim, self.cos.size(0), cfg.rope_base, device=self.cos.device)
        self.cos.copy_(cos)
        self.sin.copy_(sin)
    # --8<-- [end:init]

    # -- the forward pass --------------------------------------------------------------
    # --8<-- [start:forward]
    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None, kv_cache=None,
                loss_reduction: str = "mean", last_only: bool = False, keep=None) -> torch.Tensor:
        cfg, dtype = self.config, self.compute_dtype
        if keep is not None and targets is not None:
            raise ValueError("keep= returns logits at chosen positions; it takes no targets")
        B, T = idx.shape
        T0 = 0 if kv_cache is None else kv_cache.get_pos()  # position of idx[:, 0]: int, or (B,) per row
        cos, sin = self._rotary(T0, T)                      # (T, D/2), or (B, T, D/2) per row

        x = self.embed(idx)                                 # (B, T, C)
        if cfg.smear:
            x = self._smear(x, kv_cache)
        x0 = x                                              # kept for the x0 residual
        x_mid = x
        for i, block in enumerate(self.blocks):
            if cfg.resid_scalars:
                x = self.resid_lambdas[i].to(dtype) * x + self.x0_lambdas[i].to(dtype) * x0
            key = self._ve_keys[i]
            ve = self.value_embeds[key](idx).to(dtype) if key is not None else None  # (B, T, Hkv*D)
            # keep=(rows, cols): logits (K, V) there only; the last block's queries and MLP too (README §1)
            x = block(x, cos, sin, self.windows[i], ve, kv_cache,
                      keep if i == cfg.n_layer - 1 else None)             # (B, T, C); (K, C) after keep
            if i == cfg.n_layer // 2:
                x_mid = x
        if cfg.backout:  # remove part of the mid-network residual: "what the lower half already said"
            x = x - self.backout_lambda.to(dtype) * (x_mid[keep] if x_mid.dim() > x.dim() else x_mid)
        if kv_cache is not None:
            kv_cache.advance(T)
        if last_only and targets is None:  # generation needs the next-token logits only
            x = x[:, -1:]

        logits = self.lm_head(rms_norm(x))[..., :cfg.vocab_size].float()   # (B, T, V), fp32
        if targets is not None and cfg.softcap:  # the same loss, fused (layers.softcap_cross_entropy)
            loss = softcap_cross_entropy(logits.reshape(-1, cfg.vocab_size), targets.reshape(-1),
                                         cfg.softcap, reduction=loss_reduction)
            return loss if loss_reduction != "none" else loss.view(B, T)      # scalar or (B, T)
        if cfg.softcap:  # smoothly bound logits to (-softcap, softcap): cap * tanh(logits / cap)
            logits = softcap(logits, cfg.softcap, inplace=keep is not None and not logits.requires_grad)
        if targets is None:
            return logits
        loss = F.cross_entropy(logits.reshape(-1, cfg.vocab_size), targets.reshape(-1),
                               ignore_index=-1, reduction=loss_reduction)
        return loss if loss_reduction != "none" else loss.view(B, T)          # scalar or (B, T)
    # --8<-- [end:forward]

    def embed(self, idx: torch.Tensor) -> torch.Tensor:
        """Token ids (B, T) -> normed embeddings (B, T, C) in the compute dtype (before smear)."""
        return rms_norm(self.wte(idx).to(self.compute_dtype))

    # --8<-- [start:rotary_rows]
    def _rotary(self, T0, T: int) -> tuple[torch.Tensor, torch.Tensor]:
        """cos/sin for positions T0 .. T0 + T - 1: (T, D/2), or (B, T, D/2) when T0 is a (B,) tensor."""
        if torch.is_tensor(T0):  # rows at their own positions (Phase 6's cache checks the table's end)
            positions = T0[:, None] + torch.arange(T, device=T0.device)                 # (B, T)
            return self.cos[positions].to(self.compute_dtype), self.sin[positions].to(self.compute_dtype)
        if T0 + T > self.cos.size(0):
            raise ValueError(f"sequence of {T0 + T} tokens exceeds the rotary table ({self.cos.size(0)})")
        return self.cos[T0:T0 + T].to(self.compute_dtype), self.sin[T0:T0 + T].to(self.compute_dtype)
    # --8<-- [end:rotary_rows]

    def _smear(self, x: torch.Tensor, kv_cache) -> torch.Tensor:
        """x_t += smear_lambda * sigmoid(W x_t[:24]) * x_{t-1}: a cheap look at the previous token."""
        pos = 0 if kv_cache is None else kv_cache.get_pos()
        if torch.is_tensor(pos) or pos > 0:  # the cache knows each row's previous token (zeros at 0)
            prev = torch.cat([kv_cache.prev_embedding, x[:, :-1]], dim=1)  # (B, T, C)
        else:
            prev = F.pad(x[:, :-1], (0, 0, 1, 0))                           # t = 0 has no previous token
        if kv_cache is not None:
            kv_cache.save_embeddings(x)                                      # before smear, as nanochat
        gate = torch.sigmoid(self.smear_gate(x[..., :24]))                  # (B, T, 1)
        return x + self.smear_lambda.to(x.dtype) * gate * prev

    # -- accounting -------------------------------------------------------------------------
    def param_counts(self) -> dict[str, int]:
        """Parameters by component (nanochat's grouping); 'total' is their sum."""
        scalars = sum(p.numel() for n, p in self.named_parameters()
                      if n in ("resid_lambdas", "x0_lambdas", "smear_lambda", "backout_lambda")
                      or n.startswith("smear_gate"))
        counts = {
            "wte": self.wte.weight.numel(),
            "value_embeds": sum(e.weight.numel() for e in self.value_embeds.values()),
            "lm_head": self.lm_head.weight.numel(),
            "transformer_matrices": sum(p.numel() for p in self.blocks.parameters()),
            "scalars": scalars,
        }
        counts["total"] = sum(counts.values())
        return counts

    def num_matmul_params(self) -> int:
        """Weights used in matrix multiplies (every Linear); embedding lookups excluded."""
        return sum(m.weight.numel() for m in self.modules() if isinstance(m, nn.Linear))

    # --8<-- [start:flops]
    def estimate_flops(self) -> float:
        """Training FLOPs per token: 6 per matmul weight (fwd 2 + bwd 4) + attention scores.

        Attention (QK^T and AV, forward and backward) costs 12 * H * D * (keys seen) per
        token per layer; with a sliding window a token sees at most ``window`` keys (PaLM's
        accounting, as nanochat's estimate).
        """
        cfg = self.config
        attn = sum(12 * cfg.n_head * cfg.head_dim * min(w, cfg.sequence_len) for w in self.windows)
        return 6 * self.num_matmul_params() + attn
    # --8<-- [end:flops]

    def kv_bytes_per_token(self, dtype: torch.dtype | None = None) -> int:
        """Bytes a KV cache stores per token: keys and values, every layer."""
        cfg = self.config
        itemsize = torch.empty((), dtype=dtype or self.compute_dtype).element_size()
        return cfg.n_layer * 2 * cfg.n_kv_head * cfg.head_dim * itemsize

    # -- inspection and the naive reference generator ------------------------------------
    @torch.no_grad()
    def attention_maps(self, idx: torch.Tensor) -> list[torch.Tensor]:
        """Attention weights of every layer, (B, H, T, T) each, from the explicit path."""
        attns = [block.attn for block in self.blocks]
        for a in attns:
            a.explicit = True
        try:
            self.forward(idx)
            return [a.last_weights.float() for a in attns]
        finally:
            for a in attns:
                a.explicit, a.last_weights = False, None

    # --8<-- [start:generate]
    @torch.inference_mode()
    def generate(self, tokens: list[int], max_tokens: int, temperature: float = 1.0,
                 top_k: int | None = None, seed: int = 42, top_p: float | None = None) -> Iterator[int]:
        """Yield ``max_tokens`` new tokens, recomputing the whole sequence every step (batch 1).

        The reference Phase 6's cached engine must match token for token. temperature 0 =
        greedy; top_k None or 0 and top_p None or 1 = no filtering (``sampling.py``).
        """
        if not tokens:
            raise ValueError("generate needs at least one prompt token (e.g. <|bos|>)")
        check_knobs(temperature, top_k, top_p)
        device = self.wte.weight.device
        rng = torch.Generator(device=device).manual_seed(seed)
        ids = torch.tensor([tokens], dtype=torch.long, device=device)          # (1, T)
        for _ in range(max_tokens):
            logits = self.forward(ids)[:, -1, :]                                 # (1, V)
            nxt = sample_next(logits, temperature, top_k, top_p, generator=rng)  # (1,)
            ids = torch.cat([ids, nxt[:, None]], dim=1)                          # (1, T+1)
            yield int(nxt.item())
    # --8<-- [end:generate]


def trace_shapes(model: GPT, idx: torch.Tensor) -> list[str]:
    """Run one forward pass and report each module's output shape, in call order."""
    lines: list[str] = []
    hooks = []
    for name, module in model.named_modules():
        if name and (name.count(".") <= 3 or name.endswith(("c_q", "c_k", "c_v"))) and not name.startswith("value_embeds."):
            def hook(mod, inputs, output, name=name):
                if isinstance(output, torch.Tensor):
                    lines.append(f"{name:<28} {type(mod).__name__:<20} -> {tuple(output.shape)}")
            hooks.append(module.register_forward_hook(hook))
    try:
        logits = model(idx)
    finally:
        for h in hooks:
            h.remove()
    lines.append(f"{'logits':<28} {'':<20} -> {tuple(logits.shape)}")
    return lines


if __name__ == "__main__":
    from phases.phase1_transformer.config import preset

    cfg = preset("cpu-demo")
    model = GPT.build(cfg, seed=0)
    print(cfg.describe())
    print("\nparameters:", {k: f"{v:,}" for k, v in model.param_counts().items()})
    print(f"training FLOPs/token: {model.estimate_flops():,.0f}; KV-cache bytes/token "
          f"(fp32): {model.kv_bytes_per_token():,}")
    idx = torch.randint(0, cfg.vocab_size, (2, 8))
    print("\nshapes for ids of shape (B=2, T=8), first block only:")
    for line in trace_shapes(model, idx):
        if not line.startswith("blocks.") or line.startswith("blocks.0"):
            print("  " + line)
    with torch.no_grad():
        print(f"\nloss at initialisation: {model(idx, targets=idx).item():.4f} "
              f"(ln V = {torch.log(torch.tensor(float(cfg.vocab_size))).item():.4f})")
