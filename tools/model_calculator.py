#!/usr/bin/env python3
"""Model calculator: exact size, memory, training cost and "does it fit?" for any GPT config.

Usage (from the repository root):

    python tools/model_calculator.py --preset d20                     # d12 d20 d24 d26 runcpu-d6 cpu-demo
    python tools/model_calculator.py --preset d20 --gpu H100 --gpus 8 # cost, time, fit on 8 x H100
    python tools/model_calculator.py --depth 16 --n-kv-head 4 --window-pattern L
    python tools/model_calculator.py --preset cpu-demo --batch 8 --dtype fp32
    python tools/model_calculator.py --compare d12 d20 d24 d26 --gpu H100 --gpus 8
    python tools/model_calculator.py --preset d26 --gpu-mem 80 --json

Every number comes from the phases: the real ``GPT`` of Phase 1 built on PyTorch's meta device
(shapes, no memory) for the parameter counts, Phase 1's ``memory`` module for the activations
(measured: the bytes every tensor autograd saves in a training forward pass, attention and
RMSNorm with the footprint of a GPU's fused kernels; the eager footprint, torch.compile usually
saves less) and the KV cache, Phase 4's ``zero.state_bytes_per_rank`` for the optimizer state
(MuonAdamW, sharded as ZeRO-2 shards it), Phase 3's ``scaling.scale`` for the horizon and batch,
Phase 2's ``metrics.GPUS`` for peak FLOPS and memory. Weights and grads are fp32, activations in
the compute dtype (bf16 on CUDA). Left out: CUDA context and allocator overhead (``--reserve``),
optimizer temporaries. Tests load this file by path.
"""
from __future__ import annotations

import argparse
import json
import sys

import torch

import _view
from phases.common.console import UserError, duration, run_command, use_color
from phases.phase1_transformer.config import PRESETS, GPTConfig
from phases.phase1_transformer.memory import (GPUKernels, _FusedRMSNorm, activation_bytes,  # noqa: F401
                                              activation_model, kv_cache_bytes, measure_saved, meta_model)
from phases.phase1_transformer.model import GPT
from phases.phase2_training.metrics import GPUS, gpu_spec
from phases.phase3_optimizers.scaling import scale
from phases.phase4_ddp.zero import state_bytes_per_rank

GiB = 2 ** 30
DTYPES = {"bf16": torch.bfloat16, "fp32": torch.float32}


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


def param_report(model: GPT) -> dict:
    """Exact counts by component, nanochat's scaling params, the largest tensor, the Muon split."""
    counts = model.param_counts()
    name, p = max(model.named_parameters(), key=lambda np_: np_[1].numel())
    muon = [p for p in model.blocks.parameters() if p.ndim == 2]
    return dict(counts=counts, scaling_params=counts["transformer_matrices"] + counts["lm_head"],
                matmul_params=model.num_matmul_params(), flops_per_token=model.estimate_flops(),
                largest=dict(name=name, shape=list(p.shape), numel=p.numel()),
                muon_params=sum(p.numel() for p in muon), muon_matrices=len(muon))


def fits(static_bytes: int, act_fixed: int, act_per_seq: int, gpu_bytes: float, max_batch: int = 1024) -> int:
    """Largest power-of-two device batch b <= max_batch with static + fixed + b * per_seq <= gpu_bytes; 0 if none."""
    best, b = 0, 1
    while b <= max_batch and static_bytes + act_fixed + b * act_per_seq <= gpu_bytes:
        best, b = b, b * 2
    return best


# -- training cost -------------------------------------------------------------------------------
def training_plan(scaling_params: int, ref_scaling_params: int, flops_per_token: float, ratio: float = 12,
                  tokens: float | None = None, total_batch: int | None = None) -> dict:
    """Phase 3's depth dial on the numbers (``scaling.scale``): horizon, auto batch, iterations, FLOPs."""
    if ratio <= 0 or (tokens is not None and tokens <= 0):
        raise UserError("--ratio and --tokens must be positive")
    s = scale(scaling_params, ref_scaling_params, ratio, total_batch_size=total_batch or -1,
              target_tokens=tokens if tokens is not None else -1.0)
    return dict(horizon=s.target_tokens, auto_batch=s.auto_batch, total_batch=s.batch, iterations=s.iterations,
                tokens=s.iterations * s.batch, total_flops=flops_per_token * s.batch * s.iterations,
                tokens_per_param=s.iterations * s.batch / scaling_params)


def known_gpu(name: str) -> tuple[str, float, float]:
    spec = gpu_spec(name)
    if spec is None:
        raise UserError(f"unknown GPU {name!r}; known: {', '.join(GPUS)} (or give --tokens-per-sec / --gpu-mem)")
    return spec


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
    opt = {k: state_bytes_per_rank(model, k, world) for k in ("adamw", "muon")}
    act = activation_model(cfg, dtype, model, B)
    plan = training_plan(p["scaling_params"], param_report(meta_model(ref))["scaling_params"],
                         p["flops_per_token"], args.ratio, args.tokens, args.total_batch_size)
    gpu, context = known_gpu(args.gpu) if args.gpu else None, args.context or T
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


gib = _view.size


def hours(h: float) -> str:
    return duration(h * 3600)


def render(r: dict, color: bool) -> str:
    h = lambda s: _view.bold(s, color)  # noqa: E731
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
        L.append(f"  time                  {hours(t['hours'])} at {t['tokens_per_sec']:,.0f} tokens/s"
                 f" ({t['time_basis']})")
        if "dollars" in t:
            L.append(f"  cost                  ${t['dollars']:,.2f} ({t['gpus']} GPUs x {hours(t['hours'])})")
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
    ("time", lambda r: hours(r["training"]["hours"]) if "hours" in r["training"] else "-"),
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
        known_gpu(args.gpu)  # fail fast, before any model is built
    if args.compare:
        rows = [analyse(args, name) for name in args.compare]
        print(json.dumps(rows, indent=1) if args.json else render_compare(rows))
    else:
        r = analyse(args)
        print(json.dumps(r, indent=1) if args.json else render(r, use_color(force=args.color)))


if __name__ == "__main__":
    sys.exit(run_command(main))
