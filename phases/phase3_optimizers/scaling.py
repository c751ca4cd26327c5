"""The depth dial, part two: batch size, horizon, learning rates and weight decay from depth.

Phase 1's dial derives the architecture from ``depth``. nanochat's training script goes
on and derives the training hyperparameters too, by transferring them from a d12
reference run (the muP idea: tune once at a small size, scale by rule):

    N      = scaling parameters: the transformer's matrices + lm_head (embeddings excluded)
    D      = target_param_data_ratio * N            tokens to train on (the horizon)
    D_ref  = target_param_data_ratio * N(d12)       the same for the reference model
    B      = 2 ** round(log2(B_ref * (D / D_ref) ** 0.383))     total batch, tokens
    lr     *= sqrt(B / B_ref)                       every group (AdamW ones also * (d/768)^-0.5)
    wd     = wd_ref * sqrt(B / B_ref) * D_ref / D   Muon's weight decay
    iters  = num_iterations if set, else target_flops / (flops_per_token * B), else D // B

Because D and D_ref use the same ratio, B and wd depend only on N / N(d12).

What it leaves out: measuring the exponents (nanochat took 0.383 from Power Lines,
Bergsma et al. 2025, and the wd rule from arXiv 2405.13698); non-power-of-2 batches.

Run: ``python -m phases.phase3_optimizers.scaling`` prints the table for d12 ... d32.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from phases.common.console import UserError
from phases.phase1_transformer.config import GPTConfig
from phases.phase1_transformer.model import GPT

REFERENCE_DEPTH = 12
REFERENCE_BATCH = 2 ** 19          # B_ref: tokens per step of the d12 reference run
BATCH_EXPONENT = 0.383             # Power Lines: optimal batch grows as D^0.383
REFERENCE_WIDTH = 768              # the AdamW LRs were tuned at d_model = 768


def _meta_model(config: GPTConfig) -> GPT:
    with torch.device("meta"):     # shapes only: no memory, instant even for d32
        return GPT(config)


def scaling_params(config: GPTConfig) -> int:
    """N: every parameter inside the blocks (all their matrices) plus lm_head."""
    model = _meta_model(config)
    return sum(p.numel() for p in model.blocks.parameters()) + model.lm_head.weight.numel()


def flops_per_token(config: GPTConfig) -> float:
    return _meta_model(config).estimate_flops()


def reference_config(config: GPTConfig, aspect_ratio: int, head_dim: int) -> GPTConfig:
    """The d12 model of the same family (vocab, switches, aspect ratio, head size)."""
    ref = GPTConfig.from_depth(REFERENCE_DEPTH, vocab_size=config.vocab_size, sequence_len=config.sequence_len,
                               aspect_ratio=aspect_ratio, head_dim=head_dim)
    return ref.replace(**{k: getattr(config, k) for k in ("window_pattern", "qk_norm", "softcap", "value_embeds",
                                                           "resid_scalars", "smear", "backout", "pad_vocab_to")},
                       n_kv_head=ref.n_head if config.n_kv_head == config.n_head else
                       max(1, ref.n_head * config.n_kv_head // config.n_head))


@dataclass
class Scaling:
    """Every value the dial derived, with where it came from (printed at startup)."""
    params: int                 # N
    ref_params: int             # N(d12)
    ratio: float
    target_tokens: int          # D
    ref_tokens: int             # D_ref
    auto_batch: int             # what the rule gives
    batch: int                  # what the run uses
    batch_source: str           # "auto" or "set"
    iterations: int
    iterations_source: str      # "num_iterations", "target_flops" or "ratio"
    lr_batch_scale: float       # sqrt(B / B_ref)
    dmodel_scale: float         # (d_model / 768) ** -0.5, AdamW groups only
    weight_decay: float         # Muon's, scaled
    reference_batch: int = REFERENCE_BATCH

    def describe(self) -> str:
        return "\n".join([
            "depth dial (Phase 3 auto-scaling, reference d12):",
            f"  scaling params N    {self.params:,} (blocks + lm_head); N(d12) {self.ref_params:,}",
            f"  horizon D           {self.target_tokens:,} tokens = ratio {self.ratio:g} x N"
            f" (D_ref {self.ref_tokens:,})",
            f"  total batch B       {self.batch:,} tokens ({self.batch_source}; rule gives "
            f"2^round(log2({self.reference_batch:,} x (D/D_ref)^{BATCH_EXPONENT})) = {self.auto_batch:,})",
            f"  iterations          {self.iterations:,} (from {self.iterations_source})",
            f"  LR batch scale      sqrt(B/B_ref) = {self.lr_batch_scale:.4g}",
            f"  AdamW width scale   (d_model/{REFERENCE_WIDTH})^-0.5 = {self.dmodel_scale:.4g}",
            f"  Muon weight decay   {self.weight_decay:.4g} = wd x sqrt(B/B_ref) x D_ref/D",
        ])


# --8<-- [start:scale]
def auto_batch_size(tokens: float, ref_tokens: float, ref_batch: int = REFERENCE_BATCH) -> int:
    """Power Lines: the best batch grows as the horizon ** 0.383, rounded to a power of 2."""
    return 2 ** round(math.log2(ref_batch * (tokens / ref_tokens) ** BATCH_EXPONENT))


def scale(params: int, ref_params: int, ratio: float, weight_decay: float = 0.0, total_batch_size: int = -1,
          num_iterations: int = -1, target_flops: float = -1.0, flops_per_token: float = 0.0,
          ref_batch: int = REFERENCE_BATCH, target_tokens: float = -1.0, width: int = REFERENCE_WIDTH) -> Scaling:
    """nanochat's rules on the numbers alone (N, N(d12)); -1 means "derive it".

    Horizon D: ``target_tokens`` if given, else ``ratio`` x N; D_ref = ``ratio`` x N(d12).
    Iterations: ``num_iterations`` > ``target_flops`` (needs ``flops_per_token``) > D // B.
    """
    if ratio <= 0:
        raise UserError(f"target_param_data_ratio must be > 0 (it sets the horizon D), got {ratio}")
    if ref_batch < 1:
        raise UserError(f"reference_batch_size must be >= 1, got {ref_batch}")
    d, d_ref = int(target_tokens if target_tokens > 0 else ratio * params), ratio * ref_params
    auto = auto_batch_size(d, d_ref, ref_batch)
    batch = total_batch_size if total_batch_size > 0 else auto
    if num_iterations > 0:
        iters, source = num_iterations, "num_iterations"
    elif target_flops > 0:
        iters, source = round(target_flops / (flops_per_token * batch)), "target_flops"
    else:
        iters, source = d // batch, "ratio"
    if iters < 1:
        raise UserError(f"the horizon gives {iters} iterations at batch {batch:,}; "
                        "raise target_param_data_ratio / target_flops or set num_iterations")
    return Scaling(params=params, ref_params=ref_params, ratio=ratio, target_tokens=d, ref_tokens=int(d_ref),
                   auto_batch=auto, batch=batch, batch_source="set" if total_batch_size > 0 else "auto",
                   iterations=iters, iterations_source=source,
                   lr_batch_scale=math.sqrt(batch / ref_batch),
                   dmodel_scale=(width / REFERENCE_WIDTH) ** -0.5,
                   weight_decay=weight_decay * math.sqrt(batch / ref_batch) * d_ref / d,
                   reference_batch=ref_batch)


def depth_scaling(model: GPTConfig, reference: GPTConfig, ratio: float, weight_decay: float,
                  total_batch_size: int = -1, num_iterations: int = -1, target_flops: float = -1.0,
                  ref_batch: int = REFERENCE_BATCH) -> Scaling:
    """``scale`` for a model and its d12 reference: N counted on the real GPT (meta device)."""
    return scale(scaling_params(model), scaling_params(reference), ratio, weight_decay, total_batch_size,
                 num_iterations, target_flops, flops_per_token(model) if target_flops > 0 else 0.0, ref_batch,
                 width=model.n_embd)
# --8<-- [end:scale]


def table(depths=(12, 16, 20, 24, 26, 32), ratio: float = 12.0, vocab_size: int = 32768) -> list[dict]:
    """The derived values at nanochat's defaults (all switches on, head_dim 128, T = 2048)."""
    rows = []
    for depth in depths:
        cfg = GPTConfig.from_depth(depth, vocab_size=vocab_size)
        ref = GPTConfig.from_depth(REFERENCE_DEPTH, vocab_size=vocab_size)
        s = depth_scaling(cfg, ref, ratio, weight_decay=0.28)
        tokens = s.iterations * s.batch
        rows.append({"depth": depth, "batch": s.batch, "iterations": s.iterations, "tokens": tokens,
                     "weight_decay": s.weight_decay, "lr_batch_scale": s.lr_batch_scale,
                     "flops": tokens * flops_per_token(cfg)})
    return rows


if __name__ == "__main__":
    print("| depth | B (tokens) | iterations | tokens | Muon WD | LR batch-scale | train FLOPs |")
    print("|---|---|---|---|---|---|---|")
    for r in table():
        print(f"| d{r['depth']} | {r['batch']:,} | {r['iterations']:,} | {r['tokens'] / 1e9:.3g}B | "
              f"{r['weight_decay']:.3g} | {r['lr_batch_scale']:.4g} | {r['flops']:.3g} |")
