#!/usr/bin/env python3
"""Model calculator: exact size, memory, training cost and "does it fit?" for any GPT config.

Usage (from the repository root):

    python tools/model_calculator.py --preset d20                     # d12 d20 d24 d26 runcpu-d6 cpu-demo
    python tools/model_calculator.py --preset d20 --gpu H100 --gpus 8 # cost, time, fit on 8 x H100
    python tools/model_calculator.py --depth 16 --n-kv-head 4 --window-pattern L
    python tools/model_calculator.py --preset cpu-demo --batch 8 --dtype fp32
    python tools/model_calculator.py --compare d12 d20 d24 d26 --gpu H100 --gpus 8
    python tools/model_calculator.py --preset d26 --gpu-mem 80 --json

Every number comes from the real ``GPT`` of Phase 1 built on PyTorch's meta device (shapes,
no memory). Parameters are counted on its tensors; activation memory is *measured*: a forward
pass on the meta device, summing the bytes of every tensor autograd saves for backward, with
attention and RMSNorm given the footprint of the fused kernels a GPU runs. That is the eager
(uncompiled) footprint; torch.compile usually saves less. Assumptions (printed too): weights
and grads fp32, activations in the compute dtype (bf16 on CUDA); AdamW = 2 fp32 moments per
parameter; nanochat's Muon = 1 fp32 momentum per block matrix + NorMuon's max(rows, cols) fp32
second moment; optimizer state sharded over GPUs as nanochat does. Left out: CUDA context and
allocator overhead (``--reserve``), optimizer temporaries. Tests load this file by path.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import math
import sys
from pathlib import Path

try:  # run as `python tools/model_calculator.py`: the repo root is not on sys.path
    import phases.phase1_transformer.model  # noqa: F401
except ImportError:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from phases.common.console import UserError, paint, run_command, use_color
from phases.phase1_transformer.config import PRESETS, GPTConfig
from phases.phase1_transformer.model import GPT

GiB = 2 ** 30
DTYPES = {"bf16": torch.bfloat16, "fp32": torch.float32}
# BF16 dense peak FLOPS (nanochat's table) and nominal memory in GiB (vendor figures).
GPUS = {"H100": (989e12, 80), "H100-PCIe": (756e12, 80), "H100-NVL": (835e12, 94),
        "H200": (989e12, 141), "H200-NVL": (836e12, 141), "A100": (312e12, 80), "L40S": (362e12, 48),
        "L4": (121e12, 24), "B200": (2.25e15, 180), "GB200": (2.5e15, 186), "MI300X": (1.3074e15, 192),
        "RTX4090": (165.2e12, 24), "RTX5090": (209.5e12, 32)}
B_REF = 2 ** 19  # nanochat's reference batch (tokens) at d12


# -- the model ------------------------------------------------------------------------------
def make_config(preset: str | None = None, depth: int | None = None, **kw) -> tuple[GPTConfig, dict]:
    """GPTConfig plus the ``from_depth`` arguments that made it (to rebuild its d12 reference)."""
    if preset is not None and depth is not None:
        raise UserError("give --preset or --depth, not both")
    if preset is not None and preset not in PRESETS:
        raise UserError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    args = dict(PRESETS[preset or "d20"]) if depth is None else dict(depth=depth)
    args.update({k: v for k, v in kw.items() if v is not None})
    return GPTConfig.from_depth(**args), args


def meta_model(config: GPTConfig) -> GPT:
    with torch.device("meta"):
        return GPT(config)


def param_report(model: GPT) -> dict:
    """Exact counts by component, nanochat's scaling params, the largest tensor, the Muon split."""
    counts = model.param_counts()
    name, p = max(model.named_parameters(), key=lambda np_: np_[1].numel())
    muon = [p for p in model.blocks.parameters() if p.ndim == 2]
    return dict(counts=counts, scaling_params=counts["transformer_matrices"] + counts["lm_head"],
                matmul_params=model.num_matmul_params(), flops_per_token=model.estimate_flops(),
                largest=dict(name=name, shape=list(p.shape), numel=p.numel()),
                muon_params=sum(p.numel() for p in muon), muon_matrices=len(muon))


# -- memory ---------------------------------------------------------------------------------
def optimizer_state_bytes(model: GPT, kind: str = "muon", world: int = 1) -> dict:
    """Optimizer state on one GPU. kind "adamw": 2 fp32 moments for every parameter; "muon":
    nanochat's MuonAdamW (Muon for every 2-D block matrix, AdamW for the rest). With world > 1
    the state is sharded as nanochat does: AdamW tensors >= 1024 elements by rows, each Muon
    shape group by whole matrices (ceil(K / world) of K matrices per GPU)."""
    if kind not in ("adamw", "muon"):
        raise UserError(f"optimizer kind must be adamw or muon, got {kind!r}")
    muon = [p for p in model.blocks.parameters() if p.ndim == 2] if kind == "muon" else []
    ids, groups = {id(p) for p in muon}, {}
    for p in muon:
        groups[tuple(p.shape)] = groups.get(tuple(p.shape), 0) + 1
    adamw = sum(8 * (p.numel() if world == 1 or p.numel() < 1024 else math.ceil(p.shape[0] / world) * p[0].numel())
                for p in model.parameters() if id(p) not in ids)
    momentum = sum(4 * r * c * math.ceil(k / world) for (r, c), k in groups.items())
    second = sum(4 * max(r, c) * math.ceil(k / world) for (r, c), k in groups.items())
    return dict(adamw_moments=adamw, muon_momentum=momentum, normuon_second_moment=second,
                total=adamw + momentum + second)


class _FusedRMSNorm(torch.autograd.Function):
    """RMSNorm that saves what a fused GPU kernel saves: its input and fp32 1/rms per row."""

    @staticmethod
    def forward(ctx, x, eps):
        rstd = torch.rsqrt(x.float().pow(2).mean(-1, keepdim=True) + eps)
        ctx.save_for_backward(x, rstd)
        return (x.float() * rstd).to(x.dtype)

    @staticmethod
    def backward(ctx, grad):
        x, rstd = ctx.saved_tensors
        xh, g = x.float() * rstd, grad.float()
        return ((g - xh * (g * xh).mean(-1, keepdim=True)) * rstd).to(x.dtype), None


class GPUKernels(TorchFunctionMode):
    """Route rms_norm and SDPA to ops with a fused kernel's saved tensors (q, k, v, out, logsumexp).

    On the meta device PyTorch would otherwise decompose attention into the math path, which
    keeps the whole (B, H, T, T) attention matrix: not what a GPU (or this CPU) does.
    """

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is F.rms_norm:
            x = args[0]
            return _FusedRMSNorm.apply(x, kwargs.get("eps") or torch.finfo(x.dtype).eps)
        if func is F.scaled_dot_product_attention:
            q, k, v = args[:3]
            mask = kwargs.get("attn_mask")
            if mask is not None and mask.dtype == torch.bool:  # what SDPA does before a fused kernel
                mask = torch.zeros(mask.shape, dtype=q.dtype, device=q.device).masked_fill(~mask, float("-inf"))
            return torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(
                q, k, v, 0.0, kwargs.get("is_causal", False), attn_mask=mask, scale=kwargs.get("scale"))[0]
        return func(*args, **kwargs)


def measure_saved(config: GPTConfig, batch: int, seq: int | None = None, dtype: torch.dtype = torch.bfloat16,
                  device: str = "meta", model: GPT | None = None, gpu_kernels: bool | None = None) -> dict:
    """Bytes autograd saves for backward in one training forward pass (loss included).

    Each storage counts once (a tensor saved twice, or two views of one tensor, are one);
    parameters and buffers are left out (they are the weights). "weight_copies" are compute-
    dtype casts of parameters (bf16 copies of the matrices); "logits" are the fp32 (B*T, V)
    tensors the loss keeps: the fused softcap loss keeps one, r = sigmoid(-2 z / cap) (log-softmax's
    output without a softcap). ``device="cpu"`` runs the real model on real tensors.
    """
    seq = seq or config.sequence_len
    if batch < 1 or seq < 1:
        raise UserError(f"batch and sequence length must be >= 1 (got {batch}, {seq})")
    if model is None:
        model = meta_model(config) if device == "meta" else GPT.build(config, device=device, seed=0)
    model.compute_dtype = dtype
    own = {t.untyped_storage()._cdata for t in list(model.parameters()) + list(model.buffers())}
    seen: dict[int, tuple[int, str]] = {}
    keep = []  # hold every saved tensor so no storage address is reused while counting

    def pack(t):
        keep.append(t)
        key = t.untyped_storage()._cdata
        if key not in own and key not in seen:
            base = t._base if t._base is not None else t
            fn = base.grad_fn
            is_copy = (fn is not None and type(fn).__name__ == "ToCopyBackward0"
                       and type(fn.next_functions[0][0]).__name__ == "AccumulateGrad")
            is_logits = ((fn is not None and type(fn).__name__ in ("TanhBackward0", "LogSoftmaxBackward0"))
                         or (t.dim() == 2 and t.shape == (batch * seq, config.vocab_size)))  # the fused loss's
            kind = "weight_copies" if is_copy else "logits" if is_logits else "other"
            seen[key] = (t.untyped_storage().nbytes(), kind)
        return t

    idx = torch.zeros(batch, seq, dtype=torch.long, device=device)
    kernels = GPUKernels() if (device == "meta" if gpu_kernels is None else gpu_kernels) else contextlib.nullcontext()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), kernels:
        model(idx, targets=idx)
    out = {k: sum(n for n, kind in seen.values() if kind == k) for k in ("weight_copies", "logits", "other")}
    out["saved"] = sum(out.values())
    return out


def activation_bytes(config: GPTConfig, batch: int, seq: int | None = None, dtype: torch.dtype = torch.bfloat16,
                     model: GPT | None = None) -> int:
    """Eager activation memory of one training step: saved tensors + two more fp32 logits-sized
    buffers, alive with them inside the loss (the raw logits and the log-sum-exp's temporary)."""
    seq = seq or config.sequence_len
    return measure_saved(config, batch, seq, dtype, model=model)["saved"] + logits_grad_bytes(config, batch, seq)


def logits_grad_bytes(config: GPTConfig, batch: int, seq: int) -> int:
    return 2 * batch * seq * config.vocab_size * 4


def activation_model(config: GPTConfig, dtype: torch.dtype, model: GPT | None = None, batch: int = 2) -> dict:
    """Measure at batch 1 and ``batch`` (>= 2); activations are exactly fixed + b * per_sequence."""
    model = model or meta_model(config)
    b, T = max(2, batch), config.sequence_len
    m1, mb = (measure_saved(config, n, T, dtype, model=model) for n in (1, b))
    a1, ab = (m["saved"] + logits_grad_bytes(config, n, T) for m, n in ((m1, 1), (mb, b)))
    per_seq = (ab - a1) // (b - 1)
    return dict(per_sequence=per_seq, fixed=a1 - per_seq, measured_batch=b,
                measured=dict(mb, logits_grad=logits_grad_bytes(config, b, T)))


def kv_cache_bytes(model: GPT, context: int, batch: int = 1, dtype: torch.dtype = torch.bfloat16) -> int:
    """Keys and values of every layer for ``batch`` sequences of ``context`` tokens (no window eviction)."""
    return batch * context * model.kv_bytes_per_token(dtype)


def fits(static_bytes: int, act_fixed: int, act_per_seq: int, gpu_bytes: float, max_batch: int = 1024) -> int:
    """Largest power-of-two device batch b <= max_batch with static + fixed + b * per_seq <= gpu_bytes; 0 if none."""
    best, b = 0, 1
    while b <= max_batch and static_bytes + act_fixed + b * act_per_seq <= gpu_bytes:
        best, b = b, b * 2
    return best


# -- training cost -------------------------------------------------------------------------------
def training_plan(scaling_params: int, ref_scaling_params: int, flops_per_token: float, ratio: float = 12,
                  tokens: float | None = None, total_batch: int | None = None) -> dict:
    """nanochat's horizon and auto batch: D = ratio * N (or --tokens); B = 2^round(log2(2^19 (D/D_ref)^0.383))
    with D_ref = ratio * N(d12); iterations = D // B; FLOPs = flops/token * B * iterations."""
    if ratio <= 0 or (tokens is not None and tokens <= 0):
        raise UserError("--ratio and --tokens must be positive")
    horizon = tokens if tokens is not None else ratio * scaling_params
    auto = 2 ** round(math.log2(B_REF * (horizon / (ratio * ref_scaling_params)) ** 0.383))
    batch = total_batch or auto
    iters = int(horizon // batch)
    if iters < 1:
        raise UserError(f"the horizon ({horizon:,.0f} tokens) is smaller than one batch ({batch:,} tokens)")
    return dict(horizon=horizon, auto_batch=auto, total_batch=batch, iterations=iters,
                tokens=iters * batch, total_flops=flops_per_token * batch * iters,
                tokens_per_param=iters * batch / scaling_params)


def gpu_spec(name: str) -> tuple[str, float, float]:
    key = {k.lower().replace("-", ""): k for k in GPUS}.get(name.lower().replace("-", "").replace(" ", ""))
    if key is None:
        raise UserError(f"unknown GPU {name!r}; known: {', '.join(GPUS)} (or give --tokens-per-sec / --gpu-mem)")
    return key, *GPUS[key]


# -- the report ------------------------------------------------------------------------------------
SWITCHES = ("value_embeds", "resid_scalars", "smear", "backout", "qk_norm")


def analyse(args, preset: str | None = None) -> dict:
    """Everything the report shows, as plain numbers (what --json prints)."""
    kw = {k: getattr(args, k) for k in ("vocab_size", "head_dim", "aspect_ratio", "n_kv_head", "window_pattern",
                                        "mlp_ratio", "softcap")}
    kw.update(sequence_len=args.seq_len, **{k: False for k in SWITCHES if getattr(args, f"no_{k}")})
    cfg, build = make_config(preset or args.preset, None if preset else args.depth, **kw)
    model, dtype, world, B, T = meta_model(cfg), DTYPES[args.dtype], args.gpus, args.batch, cfg.sequence_len
    # nanochat's d12 reference: the same flags at depth 12 (plain multi-head, as nanochat always builds it)
    ref = make_config(None, 12, **{k: v for k, v in build.items() if k not in ("depth", "n_kv_head")})[0]
    p = param_report(model)
    n = p["counts"]["total"]
    opt = {k: optimizer_state_bytes(model, k, world) for k in ("adamw", "muon")}
    act = activation_model(cfg, dtype, model, B)
    plan = training_plan(p["scaling_params"], param_report(meta_model(ref))["scaling_params"],
                         p["flops_per_token"], args.ratio, args.tokens, args.total_batch_size)
    gpu, context = gpu_spec(args.gpu) if args.gpu else None, args.context or T
    r = dict(preset=preset or args.preset, config=cfg.to_dict(), describe=cfg.describe(), params=p,
             memory=dict(weights=dict(fp32=4 * n, bf16=2 * n), gradients=dict(fp32=4 * n, bf16=2 * n),
                         buffers=sum(b.numel() * b.element_size() for b in model.buffers()),
                         optimizer=opt, compute_dtype=args.dtype, gpus=world),
             activations=dict(act, batch=B, seq=T, total=act["fixed"] + B * act["per_sequence"]),
             kv_cache=dict(bytes_per_token=model.kv_bytes_per_token(dtype), context=context, batch=args.kv_batch,
                           bytes=kv_cache_bytes(model, context, args.kv_batch, dtype)),
             training=dict(plan, ratio=args.ratio, mfu=args.mfu, gpus=world, gpu=gpu and gpu[0]))
    t = r["training"]
    if args.tokens_per_sec:
        t["tokens_per_sec"], t["time_basis"] = args.tokens_per_sec, "--tokens-per-sec"
    elif gpu:
        t["tokens_per_sec"] = gpu[1] * world * args.mfu / p["flops_per_token"]
        t["time_basis"] = f"{world} x {gpu[0]} at {gpu[1] / 1e12:g} TFLOPS bf16 peak x assumed MFU {args.mfu:g}"
    if t.get("tokens_per_sec"):
        t["hours"] = t["tokens"] / t["tokens_per_sec"] / 3600
        if args.dollars_per_gpu_hour:
            t["dollars"] = t["hours"] * world * args.dollars_per_gpu_hour
    mem = args.gpu_mem if args.gpu_mem is not None else (gpu[2] if gpu else None)
    if mem is not None:
        parts = {"weights": 4 * n, "gradients": 4 * n, "buffers": r["memory"]["buffers"],
                 "optimizer": opt["muon"]["total"], "activations": r["activations"]["total"]}
        static = sum(parts.values()) - parts["activations"]
        cap, budget = max(1, t["total_batch"] // (T * world)), (mem - args.reserve) * GiB
        best = fits(static, act["fixed"], act["per_sequence"], budget, cap)
        at1 = dict(parts, activations=act["fixed"] + act["per_sequence"])
        r["fit"] = dict(gpu_mem_gib=mem, reserve_gib=args.reserve, parts=parts, total=sum(parts.values()),
                        fits=sum(parts.values()) <= budget, best_batch=best, max_batch=cap,
                        total_at_best=static + act["fixed"] + best * act["per_sequence"] if best else None,
                        total_at_1=sum(at1.values()), largest_at_1=max(at1, key=at1.get), largest_bytes=max(at1.values()))
    return r


def gib(x: float) -> str:
    """Bytes in the largest binary unit that keeps the number >= 1 (GiB at most)."""
    for unit, size in (("GiB", GiB), ("MiB", 2 ** 20), ("KiB", 2 ** 10)):
        if x >= size:
            return f"{x / size:,.2f} {unit}"
    return f"{x:,.0f} B"


def duration(hours: float) -> str:
    return f"{hours:,.2f} h" if hours >= 1 else f"{hours * 60:.1f} min" if hours >= 1 / 60 else f"{hours * 3600:.0f} s"


def render(r: dict, color: bool) -> str:
    h = lambda s: paint(s, "1", color)  # noqa: E731
    p, c, m, a, t, kv = (r[k] for k in ("params", "params", "memory", "activations", "training", "kv_cache"))
    c, n, w, o, s = p["counts"], p["counts"]["total"], m["weights"], m["optimizer"], a["measured"]
    L = [h(f"== {r['preset'] or 'custom'}: what the config derives"), r["describe"], "",
         h("== parameters (exact: the real GPT built on the meta device)")]
    L += [f"  {k:22s}{c[k]:>16,}  {100 * c[k] / n:6.2f}%" for k in c]
    lg, state = p["largest"], 2 * w["fp32"] + o["muon"]["total"]
    L += [f"  largest tensor        {lg['name']} {tuple(lg['shape'])} = {lg['numel']:,}",
          f"  scaling params N      {p['scaling_params']:>16,}  (transformer matrices + lm_head)",
          f"  matmul params         {p['matmul_params']:>16,}  -> training FLOPs/token {p['flops_per_token']:.4g}",
          f"  value embeddings are {100 * c['value_embeds'] / n:.1f}% of the parameters but table lookups: "
          "they add no matmul FLOPs", "",
          h(f"== memory (optimizer state per GPU of {m['gpus']})"),
          f"  weights               fp32 {gib(w['fp32']):>11}   bf16 {gib(w['bf16']):>11}   (stored fp32 here)",
          f"  gradients             fp32 {gib(w['fp32']):>11}   bf16 {gib(w['bf16']):>11}   (dtype of the weights)",
          f"  buffers (rotary)      {gib(m['buffers'])}",
          f"  optimizer AdamW       {gib(o['adamw']['total'])}  (2 fp32 moments per parameter)",
          f"  optimizer Muon+AdamW  {gib(o['muon']['total'])} = Muon momentum {gib(o['muon']['muon_momentum'])}"
          f" + NorMuon 2nd moment {gib(o['muon']['normuon_second_moment'])} + AdamW {gib(o['muon']['adamw_moments'])}",
          f"    (Muon: 1 fp32 momentum + max(rows, cols) fp32 per block matrix, {p['muon_matrices']} matrices;"
          " AdamW: 2 fp32 moments for the rest)",
          f"  activations           {gib(a['total'])} at batch {a['batch']} x {a['seq']} tokens, {m['compute_dtype']}"
          f" = {gib(a['fixed'])} fixed + {a['batch']} x {gib(a['per_sequence'])} per sequence",
          f"    measured at batch {a['measured_batch']}: saved for backward {gib(s['saved'])} (fp32 logits"
          f" {gib(s['logits'])}, weight copies {gib(s['weight_copies'])}, the rest {gib(s['other'])})"
          f" + 2 fp32 logits gradients {gib(s['logits_grad'])}",
          "    eager footprint (fused attention and RMSNorm, no torch.compile); torch.compile usually saves less",
          f"  KV cache (inference)  {gib(kv['bytes'])} for {kv['batch']} x {kv['context']} tokens"
          f" ({kv['bytes_per_token']:,} B/token in {m['compute_dtype']})",
          f"  weights + grads + Muon+AdamW state = {gib(state)}, {state / w['bf16']:.1f}x the {gib(w['bf16'])}"
          " of bf16 weights inference needs", "",
          h(f"== training cost (nanochat's rules, tokens:params ratio {t['ratio']:g})"),
          f"  horizon               {t['horizon']:,.0f} tokens",
          f"  total batch           {t['total_batch']:,} tokens"
          + (" (auto)" if t["total_batch"] == t["auto_batch"] else f" (auto would be {t['auto_batch']:,})"),
          f"  iterations            {t['iterations']:,} -> {t['tokens']:,} tokens"
          f" = {t['tokens_per_param']:.2f} per scaling param",
          f"  total FLOPs           {t['total_flops']:.3g}"]
    if t.get("hours"):
        L.append(f"  time                  {duration(t['hours'])} at {t['tokens_per_sec']:,.0f} tokens/s"
                 f" ({t['time_basis']})")
        if "dollars" in t:
            L.append(f"  cost                  ${t['dollars']:,.2f} ({t['gpus']} GPUs x {duration(t['hours'])})")
    else:
        L.append("  time                  give --gpu NAME (and --mfu) or --tokens-per-sec")
    if "fit" in r:
        f = r["fit"]
        L += ["", h(f"== does it fit? {f['gpu_mem_gib']:g} GiB per GPU, {f['reserve_gib']:g} GiB reserved"),
              f"  device batch {a['batch']}: {gib(f['total'])} = "
              + " + ".join(f"{k} {gib(v)}" for k, v in f["parts"].items())
              + f" -> {'fits' if f['fits'] else 'does NOT fit'}"]
        if f["best_batch"]:
            accum = t["total_batch"] // (f["best_batch"] * a["seq"] * t["gpus"])
            L.append(f"  suggested --device-batch-size {f['best_batch']} ({gib(f['total_at_best'])}; gradient"
                     f" accumulation {accum} for {t['total_batch']:,} tokens per step)"
                     + (", capped by the total batch" if f["best_batch"] == f["max_batch"] else ""))
        else:
            L.append(f"  does not fit even at batch 1 ({gib(f['total_at_1'])}); the largest part is"
                     f" {f['largest_at_1']} ({gib(f['largest_bytes'])})")
    return "\n".join(L)


COMPARE_ROWS = (
    ("params", lambda r: f"{r['params']['counts']['total'] / 1e6:,.1f}M"),
    ("scaling params N", lambda r: f"{r['params']['scaling_params'] / 1e6:,.1f}M"),
    ("value embeds %", lambda r: f"{100 * r['params']['counts']['value_embeds'] / r['params']['counts']['total']:.1f}"),
    ("FLOPs/token", lambda r: f"{r['params']['flops_per_token']:.3g}"),
    ("weights+grads+opt", lambda r: gib(2 * r["memory"]["weights"]["fp32"] + r["memory"]["optimizer"]["muon"]["total"])),
    ("activations/seq", lambda r: gib(r["activations"]["per_sequence"])),
    ("KV bytes/token", lambda r: f"{r['kv_cache']['bytes_per_token']:,}"),
    ("tokens", lambda r: f"{r['training']['tokens'] / 1e9:.3g}B"),
    ("total batch", lambda r: f"{r['training']['total_batch']:,}"),
    ("iterations", lambda r: f"{r['training']['iterations']:,}"),
    ("train FLOPs", lambda r: f"{r['training']['total_flops']:.3g}"),
    ("time", lambda r: duration(r["training"]["hours"]) if "hours" in r["training"] else "-"),
    ("device batch fits", lambda r: str(r["fit"]["best_batch"] or "no") if "fit" in r else "-"))


def render_compare(rows: list[dict]) -> str:
    table = [("", [r["preset"] for r in rows])] + [(k, [f(r) for r in rows]) for k, f in COMPARE_ROWS]
    width = max(len(x) for _, v in table for x in v) + 2
    return "\n".join(f"{k:18s}" + "".join(f"{x:>{width}}" for x in v) for k, v in table)


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="model_calculator.py", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Exact parameters, memory (weights, grads, optimizer, measured activations, KV cache), "
                    "training cost and 'does it fit?' for the Phase 1 GPT.",
        epilog="examples:\n  %(prog)s --preset d20 --gpu H100 --gpus 8 --dollars-per-gpu-hour 3\n"
               "  %(prog)s --preset cpu-demo --batch 8 --dtype fp32\n  %(prog)s --depth 16 --n-kv-head 4 --gpu-mem 24\n"
               "  %(prog)s --compare d12 d20 d24 d26 --gpu H100 --gpus 8\n  %(prog)s --preset d26 --json\n"
               f"presets: {', '.join(PRESETS)}\nGPUs: {', '.join(GPUS)}")
    add = ap.add_argument_group("model").add_argument
    add("--preset", help="named config (default d20 unless --depth is given)")
    add("--depth", type=int, help="nanochat's dial: width = depth x aspect ratio, rounded up to whole heads")
    for flag, typ, hlp in (("--vocab-size", int, "vocabulary (32768)"), ("--seq-len", int, "sequence length T"),
                           ("--head-dim", int, "head dimension (128)"), ("--aspect-ratio", int, "width per layer (64)"),
                           ("--n-kv-head", int, "key/value heads (GQA)"), ("--window-pattern", str, "e.g. SSSL or L"),
                           ("--mlp-ratio", int, "MLP width multiple (4)"), ("--softcap", float, "logit softcap, 0 = off")):
        add(flag, type=typ, help=hlp)
    for switch in SWITCHES:
        add(f"--no-{switch.replace('_', '-')}", action="store_true", help=f"turn {switch.replace('_', ' ')} off")
    add = ap.add_argument_group("memory").add_argument
    add("--dtype", choices=DTYPES, default="bf16", help="compute dtype of activations and KV cache (bf16)")
    add("--batch", type=int, default=32, help="device batch for activations and the fit (nanochat's default 32)")
    add("--context", type=int, help="KV-cache context in tokens (default: the sequence length)")
    add("--kv-batch", type=int, default=1, help="sequences in the KV cache (1)")
    add = ap.add_argument_group("training cost and fit").add_argument
    add("--ratio", type=float, default=12, help="tokens per scaling param (12; the speedrun uses 8)")
    add("--tokens", type=float, help="training horizon in tokens, instead of --ratio")
    add("--total-batch-size", type=int, help="tokens per optimizer step (default: nanochat's auto rule)")
    add("--gpu", help="GPU for peak FLOPS and memory: " + ", ".join(GPUS))
    add("--gpus", type=int, default=1, help="number of GPUs (1)")
    add("--mfu", type=float, default=0.4, help="assumed model FLOPs utilisation (0.4)")
    add("--tokens-per-sec", type=float, help="measured throughput; used for time instead of --gpu")
    add("--dollars-per-gpu-hour", type=float, help="price per GPU-hour, for a cost line")
    add("--gpu-mem", type=float, help="GiB per GPU (default: the --gpu's nominal memory)")
    add("--reserve", type=float, default=0.0, help="GiB kept free for the CUDA context and allocator (0)")
    add = ap.add_argument_group("output").add_argument
    add("--compare", nargs="+", metavar="PRESET", help="several presets side by side")
    add("--json", action="store_true", help="machine-readable output")
    add("--no-color", dest="color", action="store_false", default=None, help="no ANSI colour")
    add("--color", dest="color", action="store_true", help="force ANSI colour")
    return ap


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    for name in ("batch", "gpus", "kv_batch", "context", "total_batch_size"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            raise UserError(f"--{name.replace('_', '-')} must be >= 1")
    if not 0 < args.mfu <= 1:
        raise UserError(f"--mfu must be in (0, 1], got {args.mfu}")
    if any(v is not None and v <= 0 for v in (args.gpu_mem, args.tokens_per_sec, args.dollars_per_gpu_hour)):
        raise UserError("--gpu-mem, --tokens-per-sec and --dollars-per-gpu-hour must be positive")
    if args.reserve < 0:
        raise UserError("--reserve must be >= 0")
    if args.gpu:
        gpu_spec(args.gpu)  # fail fast, before any model is built
    if args.compare:
        rows = [analyse(args, name) for name in args.compare]
        print(json.dumps(rows, indent=1) if args.json else render_compare(rows))
    else:
        r = analyse(args)
        print(json.dumps(r, indent=1) if args.json else render(r, use_color(force=args.color)))


if __name__ == "__main__":
    sys.exit(run_command(main))
