"""Benchmark: Phase 9's server under load, continuous batching on and off.

A load generator on 127.0.0.1 keeps ``c`` clients busy (each sends its next streamed
``/v1/completions`` request as soon as the last one ends) for c = 1, 4, 16, 32, against
the server started twice in a child process: with continuous batching (``--max-batch 32``)
and without (``--no-batching``: one request at a time, the others wait in the queue). Per
level it measures the aggregate output tokens/s (tokens received / wall time), time to
first token (TTFT, from sending to the first streamed token) and time per output token
(TPOT, the mean gap between a request's tokens after the first), at p50 and p99, and the
number of failed requests.

The model is the CPU demo run (``--run``, default ``cpu_demo``) when it exists, else a
freshly initialised model of the same size (``examples/cpu_demo.toml``'s depth 4, width
256; speed does not depend on the weights). Prompts are a fixed list, ``max_tokens`` 64,
temperature 0.8 with a fixed seed per request, so both modes serve the same work.

Targets (the issue): aggregate tok/s at c=16 >= 4x c=1; 0 errors; TTFT p99 at c=16 < 1 s.
Last line of stdout: one JSON object with ``tok_s_c1``, ``tok_s_c16``, ``batching_speedup_c16``
(batching on / off at c=16), ``ttft_p99_c16_ms``, ``errors`` and every other figure, plus the
hardware and the machine's load average before the run (the machine may be shared).
``--quick`` (the smoke test): a tiny random model, c = 1 and 4, a few short requests.

Run: ``python tests/benchmarks/bench_serving.py [--quick] [--run RUN] [--threads N]``
What it leaves out: GPUs, prompts longer than the demo's 256-token context, several server processes.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

PROMPTS = ["The history of the", "def parse(text):\n    ", "In mathematics, a group is", "Python is a",
           "The following example shows how", "import os\nimport sys\n", "A list is a sequence of",
           "Return the number of", "This module provides", "The function takes two arguments"]


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q / 100 * (len(s) - 1))))]


# -- the server, in a child process -------------------------------------------------------------
def serve(args) -> None:
    """Child process: build or load the model and serve it until killed."""
    import torch
    if args.threads:
        torch.set_num_threads(args.threads)
    from phases.phase9_serving.serve import Background
    from phases.phase9_serving.server import Settings, create_app
    model, tok, name = build_model(args.run, args.quick)
    settings = Settings(model_name=name, max_batch=args.max_batch, max_queue=256, temperature=0.8, top_k=50,
                        default_max_tokens=64, prefix_reuse=not args.no_prefix_reuse)
    srv = Background(create_app(model, tok, settings), port=args.port)
    print(json.dumps({"url": srv.url, "model": name, "params": sum(p.numel() for p in model.parameters()),
                      "threads": torch.get_num_threads()}), flush=True)
    while True:
        time.sleep(3600)


def build_model(run: str, quick: bool):
    from phases.phase0_tokenizer.bpe import BPETokenizer
    from phases.phase1_transformer.config import GPTConfig
    from phases.phase1_transformer.model import GPT
    if not quick:
        try:
            from phases.phase2_training.load import load_model
            model, tok, _ = load_model(run)
            return model, tok, f"{run} (trained)"
        except Exception:
            pass
    tok = BPETokenizer.train([" ".join(PROMPTS) * 20], vocab_size=300)
    if quick:
        cfg = GPTConfig.from_depth(2, vocab_size=tok.vocab_size, sequence_len=128, aspect_ratio=32, head_dim=32)
    else:   # examples/cpu_demo.toml's model; its vocabulary is the tokenizer's (the lm_head is smaller)
        cfg = GPTConfig.from_depth(4, vocab_size=tok.vocab_size, sequence_len=256, aspect_ratio=64, head_dim=64,
                                   value_embeds=False, resid_scalars=False, window_pattern="L")
    model = GPT.build(cfg, seed=0)
    return model, tok, "random init " + ("tiny" if quick else "demo-size")


def start_server(args, batching: bool, prefix_reuse: bool = True):
    cmd = [sys.executable, __file__, "--_serve", "--run", args.run, "--max-batch", str(32 if batching else 1)]
    cmd += [] if prefix_reuse else ["--no-prefix-reuse"]
    cmd += ["--quick"] if args.quick else []
    cmd += ["--threads", str(args.threads)] if args.threads else []
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, cwd=REPO)
    info = json.loads(proc.stdout.readline())
    return proc, info


# -- the load generator --------------------------------------------------------------------------
def one_request(url: str, prompt: str, max_tokens: int, seed: int) -> dict:
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=300)
    body = json.dumps({"prompt": prompt, "max_tokens": max_tokens, "stream": True, "seed": seed,
                       "stream_options": {"include_usage": True}})
    t0 = time.perf_counter()
    conn.request("POST", "/v1/completions", body=body, headers={"Content-Type": "application/json"})
    r = conn.getresponse()
    if r.status != 200:
        conn.close()
        return {"ok": False, "status": r.status}
    first = last = None
    tokens = 0
    for line in r:
        if not line.startswith(b"data: ") or line.startswith(b"data: [DONE]"):
            continue
        chunk = json.loads(line[6:])
        if chunk.get("error"):
            conn.close()
            return {"ok": False, "status": "error event"}
        if chunk.get("usage"):
            tokens = chunk["usage"]["completion_tokens"]
        elif chunk["choices"] and chunk["choices"][0]["text"]:
            last = time.perf_counter()
            first = first or last
    conn.close()
    if first is None:
        return {"ok": tokens > 0, "tokens": tokens, "ttft": None, "tpot": None, "status": 200}
    tpot = (last - first) / (tokens - 1) if tokens > 1 else None
    return {"ok": True, "tokens": tokens, "ttft": first - t0, "tpot": tpot, "status": 200}


def load_level(url: str, clients: int, requests: int, max_tokens: int) -> dict:
    results: list[dict] = []
    lock = threading.Lock()
    counter = iter(range(requests))

    def client():
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                return
            try:
                res = one_request(url, PROMPTS[i % len(PROMPTS)], max_tokens, seed=i)
            except Exception as e:    # counted as an error, never hidden
                res = {"ok": False, "status": repr(e)}
            with lock:
                results.append(res)

    t0 = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    ok = [r for r in results if r["ok"]]
    ttft = [r["ttft"] * 1000 for r in ok if r["ttft"] is not None]
    tpot = [r["tpot"] * 1000 for r in ok if r["tpot"] is not None]
    return {"clients": clients, "requests": len(results), "errors": len(results) - len(ok),
            "tokens": sum(r["tokens"] for r in ok), "wall_s": wall, "tok_s": sum(r["tokens"] for r in ok) / wall,
            "ttft_p50_ms": pct(ttft, 50), "ttft_p99_ms": pct(ttft, 99),
            "tpot_p50_ms": pct(tpot, 50), "tpot_p99_ms": pct(tpot, 99)}


def counters(url: str) -> dict[str, float]:
    """The server's prompt-token counters from /metrics."""
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    conn.request("GET", "/metrics")
    text = conn.getresponse().read().decode()
    conn.close()
    out = {}
    for name in ("prompt_tokens_total", "prefix_reused_tokens_total"):
        line = next(x for x in text.splitlines() if x.startswith("mini_nanochat_" + name + " "))
        out[name] = float(line.split()[-1])
    return out


def conversation_ttft(url: str, turns: int, system_repeats: int) -> list[float]:
    """TTFT (ms) of each turn of one conversation, sent whole each time as a chat client does."""
    host, port = url.removeprefix("http://").split(":")
    messages = [{"role": "system", "content": "You are a helpful assistant. " * system_repeats}]
    out = []
    for t in range(turns):
        messages.append({"role": "user", "content": PROMPTS[t % len(PROMPTS)]})
        conn = http.client.HTTPConnection(host, int(port), timeout=300)
        body = json.dumps({"messages": messages, "max_tokens": 20, "temperature": 0, "stream": True})
        t0 = time.perf_counter()
        conn.request("POST", "/v1/chat/completions", body=body, headers={"Content-Type": "application/json"})
        r = conn.getresponse()
        if r.status != 200:
            raise RuntimeError(f"chat turn {t + 1}: HTTP {r.status} {r.read()[:200]!r}")
        first, text = None, ""
        for line in r:
            if line.startswith(b"data: {"):
                delta = json.loads(line[6:])["choices"][0]["delta"].get("content")
                if delta:
                    first = first or time.perf_counter()
                    text += delta
        conn.close()
        out.append(((first or time.perf_counter()) - t0) * 1000)
        messages.append({"role": "assistant", "content": text})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="smoke test: tiny model, c = 1 and 4, short requests")
    ap.add_argument("--run", default="cpu_demo", help="the run to serve (default cpu_demo; random init if absent)")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads in the server (default 1: the load generator needs the other core)")
    ap.add_argument("--max-tokens", type=int, default=0, help="tokens per request (default 64; --quick 8)")
    ap.add_argument("--_serve", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--max-batch", type=int, default=32, help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--no-prefix-reuse", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args._serve:
        return serve(args)
    from phases.common.console import cpu_model
    load_before = os.getloadavg()
    levels = (1, 4) if args.quick else (1, 4, 16, 32)
    max_tokens = args.max_tokens or (8 if args.quick else 64)
    table: dict[str, dict[int, dict]] = {}
    info = {}
    turns = 3 if args.quick else 5
    prefix: dict[str, list[float]] = {}
    for mode in ("on", "off", "no-reuse"):
        proc, info = start_server(args, batching=mode != "off", prefix_reuse=mode != "no-reuse")
        try:
            one_request(info["url"], PROMPTS[0], 4, seed=0)                  # warm-up
            if mode != "no-reuse":
                table[mode] = {c: load_level(info["url"], c, max(2 * c, 4) + (0 if args.quick else 4), max_tokens)
                               for c in levels}
            if mode != "off":
                before = counters(info["url"])
                prefix[mode] = [min(x) for x in zip(*(conversation_ttft(info["url"], turns, 1 if args.quick else 6)
                                                         for _ in range(3)))]
                after = counters(info["url"])
                prefix[mode + " tokens"] = [after[k] - before[k] for k in ("prompt_tokens_total",
                                                                          "prefix_reused_tokens_total")]
        finally:
            proc.kill()
            proc.wait()
    print(f"model: {info['model']} ({info['params']:,} parameters, float32, CPU: {cpu_model()}, "
          f"{info['threads']} torch threads); {max_tokens} tokens per request; load average before: "
          f"{load_before[0]:.2f}")
    print("\n| batching | clients | requests | tok/s | TTFT p50 ms | TTFT p99 ms | TPOT p50 ms | TPOT p99 ms | errors |")
    print("|---|---|---|---|---|---|---|---|---|")
    for mode in ("on", "off"):
        for c, r in table[mode].items():
            print(f"| {mode} | {c} | {r['requests']} | {r['tok_s']:,.1f} | {r['ttft_p50_ms']:.0f} | "
                  f"{r['ttft_p99_ms']:.0f} | {r['tpot_p50_ms']:.1f} | {r['tpot_p99_ms']:.1f} | {r['errors']} |")
    print(f"\nTTFT of each turn of a {turns}-turn chat (ms, best of 3; the whole history is sent each turn):")
    print(f"  prefix reuse on:  {', '.join(f'{x:.0f}' for x in prefix['on'])}")
    print(f"  prefix reuse off: {', '.join(f'{x:.0f}' for x in prefix['no-reuse'])}  (re-prefill, as nanochat)")
    prompt, reused = prefix["on tokens"]
    print(f"  prompt tokens of those chats: {prompt:.0f}, of which {reused:.0f} came from the cache "
          f"({reused / max(prompt, 1):.0%}) with reuse on, 0 with it off")
    on, off = table["on"], table["off"]
    top = levels[-1] if args.quick else 16
    report = {f"tok_s_c{c}": on[c]["tok_s"] for c in levels}
    report |= {f"tok_s_off_c{c}": off[c]["tok_s"] for c in levels}
    report |= {"tok_s_c16": on[top]["tok_s"], "batching_speedup_c16": on[top]["tok_s"] / off[top]["tok_s"],
               "scaling_c16_over_c1": on[top]["tok_s"] / on[1]["tok_s"],
               "ttft_p50_c16_ms": on[top]["ttft_p50_ms"], "ttft_p99_c16_ms": on[top]["ttft_p99_ms"],
               "tpot_p50_c16_ms": on[top]["tpot_p50_ms"], "tpot_p99_c16_ms": on[top]["tpot_p99_ms"],
               "errors": sum(r["errors"] for t in table.values() for r in t.values()),
               "chat_ttft_ms_reuse": prefix["on"], "chat_ttft_ms_no_reuse": prefix["no-reuse"],
               "chat_prompt_tokens": prefix["on tokens"][0], "chat_reused_tokens": prefix["on tokens"][1],
               "levels": {m: list(t.values()) for m, t in table.items()}, "model": info["model"],
               "params": info["params"], "max_tokens": max_tokens, "quick": args.quick, "dtype": "float32",
               "hardware": {"cpu": cpu_model(), "threads": info["threads"], "cores": os.cpu_count()},
               "load_avg_before": load_before[0], "load_avg_after": os.getloadavg()[0]}
    report["targets_met"] = {"scaling_4x": report["scaling_c16_over_c1"] >= 4, "no_errors": report["errors"] == 0,
                             "ttft_p99_c16_under_1s": report["ttft_p99_c16_ms"] < 1000}
    print(json.dumps(report))


if __name__ == "__main__":
    main()
