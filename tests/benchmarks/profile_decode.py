"""Where a batch-1 decode step's time goes: the matrix multiplies, attention, the rest.

Explains bench_inference.py's MBU figure. One prefill of a ``--context``-token prompt, 3
warm-up steps, then ``--steps`` decode steps of Phase 6's engine (greedy, one row) under
``torch.profiler``; it splits the operators' self CPU time into ``aten::mm`` (the weight
reads: every matmul weight once per step), attention (SDPA) and every other operator, and
reports the wall time per step beside it (the difference is Python and dispatch). CPU,
float32, random weights (speed does not depend on them). Configurations as in
bench_inference.py: ``d6`` (default) and ``quick`` (the smoke test).

Run: ``python tests/benchmarks/profile_decode.py [--config d6|quick] [--steps 32] [--context 512]``.
Last line of stdout: one JSON object. What it leaves out: batches above 1, GPUs.
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

from bench_inference import configs, synthetic_tokenizer  # noqa: E402
from phases.phase1_transformer.model import GPT  # noqa: E402
from phases.phase6_inference.engine import Engine  # noqa: E402


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", choices=("d6", "quick"), default="d6")
    p.add_argument("--steps", type=int, default=32)
    p.add_argument("--context", type=int, default=512)
    args = p.parse_args(argv)
    cfg = configs()[args.config]
    context = min(args.context, cfg.sequence_len - args.steps - 8)
    engine = Engine(GPT.build(cfg, seed=0).eval(), synthetic_tokenizer(cfg.vocab_size), stop_tokens=())
    prompt = [engine.tokenizer.bos_token_id] + [300 + i % 200 for i in range(context - 1)]
    cache = engine.new_cache(1, context + args.steps + 8)
    tok = [int(engine.prefill(cache, 0, prompt).argmax())]
    for _ in range(3):
        tok = [int(engine.decode(cache, [0], tok)[0].argmax())]
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        t0 = time.perf_counter()
        for _ in range(args.steps):
            tok = [int(engine.decode(cache, [0], tok)[0].argmax())]
        wall = (time.perf_counter() - t0) / args.steps
    events = prof.key_averages()
    per_step = lambda keep: sum(e.self_cpu_time_total for e in events if keep(e.key)) / args.steps / 1e3  # noqa: E731
    ops = per_step(lambda k: True)
    mm = per_step(lambda k: k == "aten::mm")
    attention = per_step(lambda k: "scaled_dot_product" in k)
    result = {"config": args.config, "context": context, "steps": args.steps, "wall_ms": wall * 1e3,
              "operators_ms": ops, "mm_ms": mm, "attention_ms": attention, "other_ops_ms": ops - mm - attention,
              "outside_operators_ms": wall * 1e3 - ops, "threads": torch.get_num_threads(),
              "torch": torch.__version__, "dtype": "float32"}
    print(f"{args.config}, context {context}, batch 1: {wall * 1e3:.2f} ms per step (wall); operators "
          f"{ops:.2f} ms = matmuls {mm:.2f} + attention {attention:.2f} + other {ops - mm - attention:.2f}; "
          f"outside operators (Python, dispatch, profiler) {wall * 1e3 - ops:.2f} ms")
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
