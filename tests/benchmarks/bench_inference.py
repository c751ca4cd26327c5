"""Inference benchmark: the Phase 6 engine's prefill and decode on CPU, next to its peers.

What it measures, in one process, on CPU in float32 (random weights: speed does not depend
on them; greedy decoding so every run does the same work):

1. **The memory bandwidth** of this machine: a large tensor copy (256 MiB, best of 5; read +
   write bytes / time), at the start and after each configuration; the highest is used.
   Decoding is memory-bound, so this is the ceiling MBU is measured against.
2. **Prefill**: tokens/s of one forward over a prompt of 128, 512 and 1024 tokens (batch 1).
3. **Decode**: time per output token (TPOT, the median of ``--steps`` steps after 2 warm-up
   steps; ``--rounds`` rounds with the implementations alternating, the lowest median kept,
   so that other processes' load falls on all alike) at batch 1, 8 and 32 and contexts of 128, 512 and 1024 tokens, for
   - **ours**: ``Engine.generate`` (one prefill copied to the batch rows, then each step one
     batched decode forward plus the engine's own sampling and bookkeeping), timed between
     the steps it yields: what a user of the engine gets;
   - **ours, compiled** (``--compile``): the same with ``Engine(compile=True)`` (a static-shape
     decode step over ``KVCache.static_view`` through ``torch.compile``), at context 512;
   - **no cache**: Phase 1's ``GPT.generate`` (the whole sequence recomputed per token), batch 1;
   - **peer**: ``llms_from_scratch.kv_cache.qwen3.Qwen3Model`` (Sebastian Raschka's KV-cache
     model: RoPE, RMSNorm, QK-norm, a cache grown by ``torch.cat``) at the same width, depth,
     heads, head_dim and vocabulary, its SwiGLU hidden size chosen so that its matmul weights
     equal ours (2 x 4C x C = 3 x C x H), driven the way its own generate loop does (forward,
     argmax, feed). The package's GPT-2 KV-cache model (``kv_cache.gpt2``) is tried too; it
     fails at decode (its causal mask is sliced along the wrong axis), which the output records.
4. **MBU** = (weight bytes + KV bytes read) per step / TPOT / measured bandwidth, nanochat
   ``infer_bench``'s formula, with the bytes a step really reads: every matmul weight once
   (the lm_head included), one embedding row per token, and each row's keys and values at
   context + steps/2. (``infer_bench`` counts weights "as stored", embedding tables
   included; the JSON gives that variant as ``mbu_b1_stored_weights``: for a model whose
   value embeddings are most of its parameters it exceeds 100%, which is why it is not the
   headline.)
5. **Conversation TTFT**: time to the first token of turn 5 of a chat (user turns of about
   120 tokens, replies of 40), with ``Session`` keeping the cache (only the new turn is
   prefilled) vs a fresh prefill of the whole conversation.

Configurations: ``demo`` = ``preset("cpu-demo")`` (depth 4, width 256, vocab 8192);
``d6`` = depth 6, width 384, 6 heads of 64, vocab 32768 (nanochat's runcpu size); ``quick`` =
depth 2, width 128, vocab 512 (the smoke test, ``--quick``).

Targets (d6, eager, context 512 unless said): batch-1 decode MBU >= 50%; >= 1.5x the peer's
batch-1 decode tokens/s; batch-8 throughput >= 4x batch 1; batch-1 TPOT at context 1024
within 1.5x of context 128; turn-5 TTFT with reuse <= 1/3 of re-prefill.

It prints markdown tables (hardware, load average, dtype stated), PASS/FAIL per target, and
as the **last line of stdout** one JSON object. Progress goes to stderr. Exit status 0
whether or not targets are met: this is a measurement, not a test.

Run from the repository root:

    python tests/benchmarks/bench_inference.py                 # demo and d6 (~5-10 minutes on 2 cores)
    python tests/benchmarks/bench_inference.py --compile       # + torch.compile of the decode step (slow to compile)
    python tests/benchmarks/bench_inference.py --configs d6 --steps 64
    python tests/benchmarks/bench_inference.py --quick         # seconds (the smoke test)

What it leaves out: GPUs (bf16 and CUDA graphs: none in this session), sampling other than
greedy, batches of different prompt lengths (each row's position is its own; the cost per
step is the same), prefill of several prompts at once.
"""
from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT))  # benchmark the code next to this file, whatever else is installed

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402

from phases.common.console import cpu_model  # noqa: E402
from phases.phase0_tokenizer.bpe import SPECIAL_TOKENS, BPETokenizer  # noqa: E402
from phases.phase1_transformer.config import GPTConfig, preset  # noqa: E402
from phases.phase1_transformer.model import GPT  # noqa: E402
from phases.phase6_inference.engine import Engine, SamplingParams  # noqa: E402
from phases.phase6_inference.session import Session  # noqa: E402

NOT_INSTALLED = "not installed"
HEADLINE, CTX = "d6", 512
TARGETS = {"mbu_b1": 0.5, "ratio_vs_peer_b1": 1.5, "b8_over_b1": 4.0, "ctx1024_over_ctx128": 1.5,
           "turn5_ttft_ratio": 1 / 3}


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def configs() -> dict[str, GPTConfig]:
    return {"demo": preset("cpu-demo"),
            "d6": GPTConfig.from_depth(6, vocab_size=32768, sequence_len=512, head_dim=64, window_pattern="L"),
            "quick": GPTConfig.from_depth(2, vocab_size=512, sequence_len=64, head_dim=64, window_pattern="L")}


def synthetic_tokenizer(vocab_size: int) -> BPETokenizer:
    """A byte-level BPE of exactly ``vocab_size`` ids: merges of byte pairs (any id decodes)."""
    n = vocab_size - 256 - len(SPECIAL_TOKENS)
    return BPETokenizer([(i // 256, i % 256) for i in range(n)])


# -- the machine ------------------------------------------------------------------------------------

def bandwidth(mib: int = 256, repeats: int = 5) -> float:
    """Bytes/s of a large tensor copy (read + write), best of ``repeats``."""
    src = torch.ones(mib * 2 ** 20 // 4)
    dst = torch.empty_like(src)
    dst.copy_(src)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        dst.copy_(src)
        best = min(best, time.perf_counter() - t0)
    return 2 * src.numel() * 4 / best


def environment() -> dict:
    def version(dist):
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            return None
    return {"cpu": cpu_model(), "cores": os.cpu_count(), "threads": torch.get_num_threads(),
            "torch": torch.__version__, "python": platform.python_version(),
            "llms_from_scratch": version("llms-from-scratch")}


# -- bytes a decode step reads ---------------------------------------------------------------------

def matmul_bytes(model: nn.Module) -> int:
    return sum(m.weight.numel() * m.weight.element_size() for m in model.modules() if isinstance(m, nn.Linear))


def embedding_row_bytes(model: nn.Module) -> int:
    return sum(m.weight.size(1) * m.weight.element_size() for m in model.modules() if isinstance(m, nn.Embedding))


def kv_read_bytes(model: GPT, context: float) -> float:
    """Keys and values one row reads per step at ``context`` (each layer capped at its window)."""
    cfg = model.config
    per_pos = 2 * cfg.n_kv_head * cfg.head_dim * 4
    return sum(per_pos * min(context, w) for w in model.windows)


# -- the peer --------------------------------------------------------------------------------------

def peer_status() -> str | None:
    try:
        import llms_from_scratch.kv_cache.qwen3  # noqa: F401
    except Exception:  # noqa: BLE001
        return NOT_INSTALLED
    return None


def build_peer(cfg: GPTConfig, context: int) -> nn.Module:
    from llms_from_scratch.kv_cache.qwen3 import Qwen3Model
    hidden = round(2 * cfg.mlp_ratio * cfg.n_embd / 3)        # 3 C H = 2 (4C) C: the same matmul weights
    torch.manual_seed(0)
    return Qwen3Model({"vocab_size": cfg.vocab_size, "context_length": context, "emb_dim": cfg.n_embd,
                       "n_heads": cfg.n_head, "n_layers": cfg.n_layer, "hidden_dim": hidden, "head_dim": cfg.head_dim,
                       "qk_norm": True, "n_kv_groups": cfg.n_kv_head, "rope_base": cfg.rope_base,
                       "dtype": torch.float32}).eval()


def gpt2_peer_status(cfg: GPTConfig) -> str:
    """Try the package's GPT-2 KV-cache model: prefill 4 tokens, decode 1."""
    try:
        from llms_from_scratch.kv_cache.gpt2 import GPTModel
        from llms_from_scratch.kv_cache.utils import KVCache as PeerCache
        m = GPTModel({"vocab_size": cfg.vocab_size, "context_length": 16, "emb_dim": cfg.n_embd,
                      "n_heads": cfg.n_head, "n_layers": cfg.n_layer, "drop_rate": 0.0, "qkv_bias": False}).eval()
        cache = PeerCache(cfg.n_layer)
        with torch.inference_mode():
            m(torch.zeros(1, 4, dtype=torch.long), use_cache=True, cache=cache)
            m(torch.zeros(1, 1, dtype=torch.long), use_cache=True, cache=cache)
        return "ok"
    except Exception as e:  # noqa: BLE001
        return f"fails at decode: {type(e).__name__}: {str(e).splitlines()[0][:100]}"


def peer_decode(peer: nn.Module, prompt: list[int], batch: int, steps: int) -> list[float]:
    """The peer's own loop (forward, argmax, feed), one prefill repeated to ``batch`` rows."""
    from llms_from_scratch.kv_cache.utils import KVCache as PeerCache
    cache = PeerCache(len(peer.trf_blocks))
    peer.reset_kv_cache()
    times = []
    with torch.inference_mode():
        logits = peer(torch.tensor([prompt]), cache=cache)
        for i in range(len(peer.trf_blocks)):                 # the prefill, copied to every row
            k, v = cache.get(i)
            cache.update(i, (k.repeat(batch, 1, 1, 1), v.repeat(batch, 1, 1, 1)))
        nxt = logits[:, -1].argmax(-1, keepdim=True).repeat(batch, 1)   # (B, 1)
        for _ in range(steps):
            t0 = time.perf_counter()
            logits = peer(nxt, cache=cache)
            nxt = logits[:, -1].argmax(-1, keepdim=True)
            nxt.tolist()                                       # the token reaches Python, as in a real loop
            times.append(time.perf_counter() - t0)
    return times


# -- ours --------------------------------------------------------------------------------------------

def our_decode(engine: Engine, prompt: list[int], batch: int, steps: int) -> list[float]:
    """Intervals between the steps ``Engine.generate`` yields (the first, with the prefill, dropped)."""
    times, last = [], None
    for _ in engine.generate(prompt, num_samples=batch, max_tokens=steps + 1, temperature=0.0, use_tools=False):
        now = time.perf_counter()
        if last is not None:
            times.append(now - last)
        last = now
    return times


def naive_decode(model: GPT, prompt: list[int], steps: int) -> list[float]:
    times, last = [], time.perf_counter()
    for _ in model.generate(prompt, max_tokens=steps, temperature=0.0):
        now = time.perf_counter()
        times.append(now - last)
        last = now
    return times


def prefill_tok_s(engine: Engine, prompt: list[int], repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        cache = engine.new_cache(1, len(prompt) + 1)
        t0 = time.perf_counter()
        engine.prefill(cache, 0, prompt).tolist()
        best = min(best, time.perf_counter() - t0)
    return len(prompt) / best


def peer_prefill_tok_s(peer: nn.Module, prompt: list[int], repeats: int) -> float:
    from llms_from_scratch.kv_cache.utils import KVCache as PeerCache
    best = float("inf")
    with torch.inference_mode():
        for _ in range(repeats):
            peer.reset_kv_cache()
            t0 = time.perf_counter()
            peer(torch.tensor([prompt]), cache=PeerCache(len(peer.trf_blocks)))[:, -1].tolist()
            best = min(best, time.perf_counter() - t0)
    return len(prompt) / best


# -- conversation TTFT -------------------------------------------------------------------------------

def turn5_ttft(engine: Engine, tok: BPETokenizer, repeats: int, user_tokens: int = 120,
               reply_tokens: int = 40) -> dict:
    """TTFT of turn 5: Session (cache kept) vs a fresh prefill of the whole conversation."""
    gen = torch.Generator().manual_seed(0)
    words = ["alpha", "beta", "gamma", "delta", "omega", "river", "stone", "light", "cloud", "seven"]
    messages = [" ".join(words[int(i)] for i in torch.randint(0, 10, (user_tokens // 3,), generator=gen))
                for _ in range(5)]
    best_reuse, best_fresh, prompt_len, prefilled = float("inf"), float("inf"), 0, 0
    params = SamplingParams(max_tokens=reply_tokens, temperature=0.0, use_tools=False)
    for _ in range(repeats):
        session = Session(engine, params=params, max_len=4096)
        for m in messages[:4]:
            session.send(m).read()
        t0 = time.perf_counter()
        reply = session.send(messages[4])
        next(iter(reply))
        best_reuse = min(best_reuse, time.perf_counter() - t0)
        prompt, prefilled = list(session.tokens[:len(session.tokens) - len(reply.tokens)]), reply.prefilled
        prompt_len = len(prompt)
        t0 = time.perf_counter()
        next(iter(engine.generate(prompt, max_tokens=reply_tokens, temperature=0.0, use_tools=False)))
        best_fresh = min(best_fresh, time.perf_counter() - t0)
    return {"reuse_s": best_reuse, "reprefill_s": best_fresh, "ratio": best_reuse / best_fresh,
            "conversation_tokens": prompt_len, "prefilled_tokens": prefilled}


# -- main ----------------------------------------------------------------------------------------------

def run_config(name: str, cfg: GPTConfig, args, peer_note: str | None, bw: list[float]) -> dict:
    batches, contexts = ((1, 4), (32, 64)) if args.quick else ((1, 8, 32), (128, 512, 1024))
    steps = args.steps
    model = GPT.build(cfg, seed=0).eval()
    tok = synthetic_tokenizer(cfg.vocab_size)
    engine = Engine(model, tok, stop_tokens=())
    gen = torch.Generator().manual_seed(1)
    top_ctx = max(contexts)
    prompt = [tok.bos_token_id] + torch.randint(0, cfg.vocab_size - len(SPECIAL_TOKENS), (top_ctx,), generator=gen).tolist()
    out = {"config": name, "params": sum(p.numel() for p in model.parameters()),
           "matmul_bytes": matmul_bytes(model), "kv_bytes_per_token": model.kv_bytes_per_token(torch.float32),
           "stored_weight_bytes": sum(p.numel() * p.element_size() for p in model.parameters()),
           "prefill": [], "decode": []}
    peer = None if peer_note else build_peer(cfg, top_ctx + steps + 8)
    if peer is not None:
        out["peer_matmul_bytes"] = matmul_bytes(peer)
    for c in contexts:
        p = prompt[:c]
        row = {"context": c, "ours_tok_s": prefill_tok_s(engine, p, args.repeats)}
        if peer is not None:
            row["peer_tok_s"] = peer_prefill_tok_s(peer, p, args.repeats)
        out["prefill"].append(row)
        log(f"{name}: prefill {c}: ours {row['ours_tok_s']:,.0f} tok/s"
            + (f", peer {row['peer_tok_s']:,.0f}" if peer is not None else ""))
    compiled = Engine(model, tok, stop_tokens=(), compile=True) if args.compile and name != "quick" else None
    for c in contexts:
        for b in batches:
            cell = {"context": c, "batch": b}
            kv_row = kv_read_bytes(model, c + steps / 2)
            weights = matmul_bytes(model) + b * embedding_row_bytes(model)
            runs = {"ours": lambda: our_decode(engine, prompt[:c], b, steps + 2)[2:]}
            if peer is not None:
                runs["peer"] = lambda: peer_decode(peer, prompt[:c], b, steps + 2)[2:]
            if b == 1:
                n = 3 if c >= 512 else 4
                runs["nocache"] = lambda: naive_decode(model, prompt[:c], n + 1)[1:]
            if compiled is not None and c == CTX and b in (1, 8):
                t0 = time.perf_counter()
                our_decode(compiled, prompt[:c], b, 2)          # compiles (one graph per cache shape)
                cell["compile_s"] = time.perf_counter() - t0
                runs["compiled"] = lambda: our_decode(compiled, prompt[:c], b, steps + 2)[2:]
            medians: dict[str, list[float]] = {k: [] for k in runs}
            best: dict[str, float] = {}
            for _ in range(args.rounds):                        # kinds alternate: load falls on all alike
                for kind, fn in runs.items():
                    times = fn()
                    medians[kind].append(statistics.median(times))
                    best[kind] = min(best.get(kind, float("inf")), min(times))
            for kind in runs:
                tpot = min(medians[kind])                       # the least disturbed round
                cell[kind] = {"tpot_ms": tpot * 1e3, "best_ms": best[kind] * 1e3, "tok_s": b / tpot,
                              "mbu": (weights + b * kv_row) / tpot / max(bw)}
            cell["bytes_per_step"] = weights + b * kv_row
            out["decode"].append(cell)
            log(f"{name}: decode B={b} ctx={c}: " + ", ".join(
                f"{k} {cell[k]['tpot_ms']:.1f} ms ({cell[k]['tok_s']:,.0f} tok/s, MBU {cell[k]['mbu']:.0%})"
                for k in runs))
    out["session"] = turn5_ttft(engine, tok, args.repeats, user_tokens=30 if args.quick else 120,
                                reply_tokens=8 if args.quick else 40)
    log(f"{name}: turn-5 TTFT reuse {out['session']['reuse_s'] * 1e3:.1f} ms vs re-prefill "
        f"{out['session']['reprefill_s'] * 1e3:.1f} ms")
    return out


def find(result: dict, context: int, batch: int) -> dict | None:
    return next((c for c in result["decode"] if c["context"] == context and c["batch"] == batch), None)


def markdown(env: dict, bw: list[float], loads: list, results: list[dict], peer_note, gpt2_note) -> str:
    lines = ["## Inference benchmark: CPU, float32, greedy decoding", "",
             f"- CPU: {env['cpu']} ({env['cores']} cores), torch threads {env['threads']}; torch {env['torch']}, "
             f"Python {env['python']}; peer llms-from-scratch {env['llms_from_scratch'] or NOT_INSTALLED}",
             f"- load average (1 min) at start / end: {loads[0]:.2f} / {loads[-1]:.2f}",
             f"- memory bandwidth (256 MiB copy, read + write): **{max(bw) / 1e9:.1f} GB/s** (samples "
             + ", ".join(f"{b / 1e9:.1f}" for b in bw) + ")",
             f"- peer: `llms_from_scratch.kv_cache.qwen3.Qwen3Model` ({peer_note or 'ok'}); "
             f"`kv_cache.gpt2.GPTModel`: {gpt2_note}", ""]
    for r in results:
        lines += [f"### {r['config']}: {r['params']:,} parameters, {r['matmul_bytes'] / 2**20:.1f} MiB of matmul "
                  f"weights read per step, {r['kv_bytes_per_token']:,} KV bytes per token", "",
                  "| prefill tokens | ours tok/s | peer tok/s |", "|---|---|---|"]
        for p in r["prefill"]:
            lines.append(f"| {p['context']} | {p['ours_tok_s']:,.0f} | "
                         f"{p.get('peer_tok_s', 0):,.0f} |" if "peer_tok_s" in p else
                         f"| {p['context']} | {p['ours_tok_s']:,.0f} | - |")
        lines += ["", "| context | batch | ours ms/token-step | ours tok/s | ours MBU | compiled tok/s | "
                      "peer tok/s | ours / peer | no cache tok/s | MiB read / step |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for c in r["decode"]:
            o = c["ours"]
            p, n, k = c.get("peer"), c.get("nocache"), c.get("compiled")
            lines.append(
                f"| {c['context']} | {c['batch']} | {o['tpot_ms']:.1f} | {o['tok_s']:,.0f} | {o['mbu']:.0%} | "
                + (f"{k['tok_s']:,.0f} (MBU {k['mbu']:.0%}, compile {c['compile_s']:.0f} s)" if k else "-") + " | "
                + (f"{p['tok_s']:,.0f}" if p else "-") + " | "
                + (f"{o['tok_s'] / p['tok_s']:.2f}x" if p else "-") + " | "
                + (f"{n['tok_s']:,.1f}" if n else "-") + f" | {c['bytes_per_step'] / 2**20:.1f} |")
        s = r["session"]
        lines += ["", f"Turn 5 of a conversation ({s['conversation_tokens']} tokens so far): TTFT "
                      f"{s['reuse_s'] * 1e3:.1f} ms with the session's cache ({s['prefilled_tokens']} tokens "
                      f"prefilled) vs {s['reprefill_s'] * 1e3:.1f} ms re-prefilling everything: "
                      f"ratio {s['ratio']:.2f}.", ""]
    return "\n".join(lines)


def summarize(results: list[dict], headline: str, ctx: int, bw: float) -> dict:
    r = next((x for x in results if x["config"] == headline), None)
    if r is None:
        return {}
    b1, b8, c128, c1024 = find(r, ctx, 1), find(r, ctx, 8), find(r, min(c["context"] for c in r["decode"]), 1), \
        find(r, max(c["context"] for c in r["decode"]), 1)
    s = {"decode_tok_s_b1": b1["ours"]["tok_s"], "decode_tok_s_b8": b8["ours"]["tok_s"] if b8 else None,
         "tpot_ms_b1": b1["ours"]["tpot_ms"], "mbu_b1": b1["ours"]["mbu"],
         "mbu_b1_stored_weights": (r["stored_weight_bytes"] + kv_read_bytes_of(r, b1)) / (b1["ours"]["tpot_ms"] / 1e3) / bw,
         "peer_decode_tok_s_b1": b1["peer"]["tok_s"] if "peer" in b1 else None,
         "ratio_vs_peer_b1": b1["ours"]["tok_s"] / b1["peer"]["tok_s"] if "peer" in b1 else None,
         "b8_over_b1": b8["ours"]["tok_s"] / b1["ours"]["tok_s"] if b8 else None,
         "ctx1024_over_ctx128": c1024["ours"]["tpot_ms"] / c128["ours"]["tpot_ms"],
         "speedup_vs_nocache_512": b1["nocache"]["tpot_ms"] / b1["ours"]["tpot_ms"] if "nocache" in b1 else None,
         "turn5_ttft_ratio": r["session"]["ratio"],
         "prefill_tok_s": next(p["ours_tok_s"] for p in r["prefill"] if p["context"] == ctx) if any(
             p["context"] == ctx for p in r["prefill"]) else r["prefill"][-1]["ours_tok_s"]}
    if "compiled" in b1:
        s["decode_tok_s_b1_compiled"] = b1["compiled"]["tok_s"]
        s["mbu_b1_compiled"] = b1["compiled"]["mbu"]
        s["compile_s_b1"] = b1.get("compile_s")
    if b8 and "compiled" in b8:
        s["decode_tok_s_b8_compiled"] = b8["compiled"]["tok_s"]
    return s


def kv_read_bytes_of(result: dict, cell: dict) -> float:
    return cell["bytes_per_step"] - result["matmul_bytes"]


def targets(s: dict, quick: bool) -> dict:
    if quick or not s:
        return {k: None for k in TARGETS} | {"all": None}
    t = {"mbu_b1": s["mbu_b1"] >= TARGETS["mbu_b1"],
         "ratio_vs_peer_b1": None if s["ratio_vs_peer_b1"] is None else s["ratio_vs_peer_b1"] >= 1.5,
         "b8_over_b1": s["b8_over_b1"] >= 4.0,
         "ctx1024_over_ctx128": s["ctx1024_over_ctx128"] <= 1.5,
         "turn5_ttft_ratio": s["turn5_ttft_ratio"] <= 1 / 3}
    t["all"] = all(v is True for v in t.values())
    return t


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="Prefill/decode speed, MBU and conversation TTFT of the Phase 6 "
                                            "engine vs llms-from-scratch's KV-cache model and no cache (CPU, fp32).")
    p.add_argument("--configs", default=None, help="comma-separated among demo, d6, quick (default demo,d6)")
    p.add_argument("--steps", type=int, default=None, help="timed decode steps per cell (default 32; 4 with --quick)")
    p.add_argument("--repeats", type=int, default=None, help="repeats of prefill/TTFT timings (best of; default 3)")
    p.add_argument("--rounds", type=int, default=None,
                   help="rounds per decode cell, the implementations alternating; the lowest median counts "
                        "(default 2; 1 with --quick)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--compile", action="store_true", help="also time Engine(compile=True) at context 512, batch 1 and 8")
    p.add_argument("--skip-peer", action="store_true")
    p.add_argument("--quick", action="store_true", help="tiny config, few steps (the smoke test; targets not evaluated)")
    args = p.parse_args(argv)
    args.steps = args.steps or (4 if args.quick else 32)
    args.repeats = args.repeats or (1 if args.quick else 3)
    args.rounds = args.rounds or (1 if args.quick else 2)
    if args.threads:
        torch.set_num_threads(args.threads)
    names = (args.configs or ("quick" if args.quick else "demo,d6")).split(",")
    known = configs()
    if any(n not in known for n in names):
        print(f"unknown config in {names}; choose among {', '.join(known)}", file=sys.stderr)
        return 2
    t_start = time.perf_counter()
    env = environment()
    loads = [os.getloadavg()[0]]
    peer_note = "skipped" if args.skip_peer else peer_status()
    gpt2_note = gpt2_peer_status(known[names[0]]) if not peer_note else peer_note
    log(f"{env['cpu']}, {env['threads']} threads, load {loads[0]:.2f}; peer: {peer_note or 'qwen3 kv_cache'}")
    bw = [bandwidth(64 if args.quick else 256)]
    log(f"bandwidth {bw[0] / 1e9:.1f} GB/s")
    results = []
    for name in names:
        results.append(run_config(name, known[name], args, peer_note, bw))
        bw.append(bandwidth(64 if args.quick else 256))
        for r in results[-1]["decode"]:                          # MBU against the best bandwidth seen
            w = r["bytes_per_step"]
            for kind in ("ours", "peer", "nocache", "compiled"):
                if kind in r:
                    r[kind]["mbu"] = w / (r[kind]["tpot_ms"] / 1e3) / max(bw)
    loads.append(os.getloadavg()[0])
    headline = "quick" if args.quick else HEADLINE
    s = summarize(results, headline, 32 if args.quick else CTX, max(bw))
    t = targets(s, args.quick)
    print(markdown(env, bw, loads, results, peer_note, gpt2_note))
    if not args.quick and s:
        word = {True: "PASS", False: "FAIL", None: "n/a"}
        print(f"### Targets ({headline}, eager, context {CTX})\n")
        print(f"- batch-1 MBU >= 50%: {s['mbu_b1']:.0%} -> {word[t['mbu_b1']]}")
        ratio = s["ratio_vs_peer_b1"]
        print(f"- >= 1.5x the peer at batch 1: {'-' if ratio is None else f'{ratio:.2f}x'} -> {word[t['ratio_vs_peer_b1']]}")
        print(f"- batch 8 >= 4x batch 1: {s['b8_over_b1']:.2f}x -> {word[t['b8_over_b1']]}")
        print(f"- TPOT at 1024 <= 1.5x TPOT at 128: {s['ctx1024_over_ctx128']:.2f}x -> {word[t['ctx1024_over_ctx128']]}")
        print(f"- turn-5 TTFT reuse <= 1/3 of re-prefill: {s['turn5_ttft_ratio']:.2f} -> {word[t['turn5_ttft_ratio']]}")
        print(f"- all: {word[t['all']]}\n")
    else:
        print("(quick run: targets are not evaluated)\n")
    wall = time.perf_counter() - t_start
    print(f"wall time: {wall:.0f} s")
    print(json.dumps({**s, "targets_met": t, "bandwidth_bytes_s": max(bw), "bandwidth_samples": bw,
                      "load_avg_start": loads[0], "load_avg_end": loads[-1], "hardware": env, "dtype": "float32",
                      "quick": args.quick, "compile": args.compile, "peer": peer_note or "llms_from_scratch.kv_cache.qwen3",
                      "gpt2_peer": gpt2_note, "steps": args.steps, "results": results, "wall_s": wall}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
