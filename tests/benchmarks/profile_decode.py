"""Where a decode step's time goes: the matrix multiplies, attention, the rest.

Explains bench_inference.py's MBU figure (batch 1) and its batch-8 speedup (``--batch 8``).
One prefill of a ``--context``-token prompt copied to ``--batch`` rows, 3 warm-up steps,
then ``--steps`` decode steps of Phase 6's engine (greedy) under
``torch.profiler``; it splits the operators' self CPU time into ``aten::mm`` (the weight
reads: every matmul weight once per step), attention (SDPA) and every other operator, and
reports the wall time per step beside it (the difference is Python and dispatch), and the
matmuls' arithmetic rate (2 x matmul weights x batch FLOPs per step over their time). CPU,
float32, random weights (speed does not depend on them). Configurations as in
bench_inference.py: ``d6`` (default) and ``quick`` (the smoke test).

Run: ``python tests/benchmarks/profile_decode.py [--config d6|quick] [--steps 32] [--context 512] [--batch 1]``.
Last line of stdout: one JSON object. What it leaves out: rows at different positions, GPUs.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402
from torch.profiler import ProfilerActivity, profile  # noqa: E402

from bench_inference import configs, matmul_bytes, synthetic_tokenizer  # noqa: E402
from phases.phase1_transformer.model import GPT  # noqa: E402
from phases.phase6_inference.engine import Engine  # noqa: E402


def _best_ms(fn, repeats: int = 30) -> float:
    for _ in range(3):
        fn()
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        for _ in range(repeats):
            fn()
        times.append((time.perf_counter() - t0) / repeats)
    return min(times) * 1e3


@torch.inference_mode()
def output_layer(model, B: int) -> dict:
    """The largest matmul alone, as the model computes it (``F.linear``): at one row and at
    ``B`` rows. Bound by reading its weights, both would take the same time."""
    import torch.nn.functional as F
    W = model.lm_head.weight.detach()                                  # (V, C)
    mib = W.numel() * W.element_size() / 2**20
    out = {"output_layer_mib": mib}
    for name, rows in (("b1", 1), ("batch", B)):
        x = torch.randn(rows, 1, W.shape[1])                            # (rows, 1, C), as in a decode step
        ms = _best_ms(lambda: F.linear(x, W))                           # (rows, 1, V)
        out[f"output_layer_ms_{name}"], out[f"output_layer_gb_s_{name}"] = ms, mib * 2**20 / ms / 1e6
    return out


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", choices=("d6", "quick"), default="d6")
    p.add_argument("--steps", type=int, default=32)
    p.add_argument("--context", type=int, default=512)
    p.add_argument("--batch", type=int, default=1, help="rows decoded together (default 1)")
    args = p.parse_args(argv)
    cfg = configs()[args.config]
    context = min(args.context, cfg.sequence_len - args.steps - 8)
    engine = Engine(GPT.build(cfg, seed=0).eval(), synthetic_tokenizer(cfg.vocab_size), stop_tokens=())
    prompt = [engine.tokenizer.bos_token_id] + [300 + i % 200 for i in range(context - 1)]
    B, rows = args.batch, range(args.batch)
    cache = engine.new_cache(B, context + args.steps + 8)
    tok = [int(engine.prefill(cache, 0, prompt).argmax())] * B
    cache.copy_prefix(0, range(1, B))
    for _ in range(3):
        tok = engine.decode(cache, rows, tok).argmax(-1).tolist()      # (B,)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        t0 = time.perf_counter()
        for _ in range(args.steps):
            tok = engine.decode(cache, rows, tok).argmax(-1).tolist()
        wall = (time.perf_counter() - t0) / args.steps
    events = prof.key_averages()
    per_step = lambda keep: sum(e.self_cpu_time_total for e in events if keep(e.key)) / args.steps / 1e3  # noqa: E731
    ops = per_step(lambda k: True)
    mm = per_step(lambda k: k == "aten::mm")
    attention = per_step(lambda k: "scaled_dot_product" in k)
    head = output_layer(engine.model, B)
    matmul_params = matmul_bytes(engine.model) // 4                     # float32 weights
    gflops = 2 * matmul_params * B / (mm / 1e3) / 1e9
    result = {"config": args.config, "context": context, "batch": B, "steps": args.steps, "wall_ms": wall * 1e3,
              "operators_ms": ops, "mm_ms": mm, "mm_gflop_s": gflops, "attention_ms": attention,
              "other_ops_ms": ops - mm - attention,
              "outside_operators_ms": wall * 1e3 - ops, **head, "threads": torch.get_num_threads(),
              "torch": torch.__version__, "dtype": "float32"}
    print(f"{args.config}, context {context}, batch {B}: {wall * 1e3:.2f} ms per step (wall); operators "
          f"{ops:.2f} ms = matmuls {mm:.2f} ({gflops:.1f} GFLOP/s) + attention {attention:.2f} + other "
          f"{ops - mm - attention:.2f}; "
          f"outside operators (Python, dispatch, profiler) {wall * 1e3 - ops:.2f} ms")
    print(f"the output layer alone ({head['output_layer_mib']:.0f} MiB of weights): "
          f"{head['output_layer_ms_b1']:.2f} ms at 1 row ({head['output_layer_gb_s_b1']:.1f} GB/s), "
          f"{head['output_layer_ms_batch']:.2f} ms at {B} rows ({head['output_layer_gb_s_batch']:.1f} GB/s)")
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
