"""Ablation of Phase 1's architectural switches at the demo size, on the embedded corpus.

For each variant — nanochat's full configuration, then one switch turned off at a time
(value embeddings, residual scalars, smear + backout, QK-norm + softcap) and the sliding
window pattern "SSSL" instead of "L" — and for each seed:

1. **equal steps**: train ``--steps`` optimizer steps and record the final validation bpb
   and the mean step time;
2. **equal wall time**: train again with ``num_iterations`` chosen so that the variant's
   step time × iterations equals the baseline's time for ``--steps`` steps (a full
   schedule, warmup to warmdown, in the same compute time). Step times come from an
   *interleaved* timing (every variant's model takes one training step in turn, best of
   ``--time-rounds``), so load from other processes falls on all variants alike. When the
   iterations come out equal to ``--steps``, the run would repeat the equal-steps run
   bit for bit (same seed, same data), so that result is reused.

The table shows mean ± half-range over the seeds. The last line is one JSON object with
every run. This is a measurement; it is run by hand (it takes ~20 runs), not in CI.

The runs use Phase 2's loop and AdamW on the demo's model (``ablation_demo_adamw.toml``: the
demo configuration as it was before Phase 3 moved the demo to MuonAdamW), so the table
measures the architecture with the optimizer held fixed.

Run: ``python tests/benchmarks/ablate_architecture.py [--steps 200] [--seeds 0 1]``
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from phases.phase1_transformer.model import GPT  # noqa: E402
from phases.phase2_training.config import load_config  # noqa: E402
from phases.phase2_training.plan import derive  # noqa: E402
from phases.phase2_training.recipe import make_adamw  # noqa: E402
from phases.phase2_training.train import train  # noqa: E402

VARIANTS = {
    "baseline (all on, L)": {},
    "no value embeddings": {"value_embeds": "false"},
    "no residual scalars": {"resid_scalars": "false"},
    "no smear, no backout": {"smear": "false", "backout": "false"},
    "no QK-norm, no softcap": {"qk_norm": "false", "softcap": "0"},
    "windows SSSL": {"window_pattern": "SSSL"},
}


def run(config: Path, overrides: dict, tmp: str, name: str) -> dict:
    cfg = load_config(config, {**overrides, "run_dir": f"{tmp}/{name}", "save_every": "0", "eval_every": "0",
                               "sample_tokens": "1"})
    result = train(cfg, show_progress=False, out=open(os.devnull, "w"))
    return {"val_bpb": result.val_bpb, "steps": result.step, "train_s": result.train_time,
            "step_s": result.train_time / max(1, result.step)}


def step_times(config: Path, names: list[str], rounds: int, vocab_size: int) -> dict[str, float]:
    """Seconds per optimizer step of each variant, timed in turn on random tokens (best of rounds)."""
    import time
    setups = {}
    for name in names:
        cfg = load_config(config, VARIANTS[name])
        plan = derive(cfg, vocab_size)
        model = GPT.build(plan.model, device="cpu", seed=0)
        opt = make_adamw(model, cfg, plan)
        x = torch.randint(0, vocab_size, (cfg.device_batch_size, cfg.sequence_len))
        setups[name] = (model, opt, x, plan.grad_accum)
    best = {name: float("inf") for name in names}
    for r in range(rounds + 1):                      # round 0 warms up
        for name, (model, opt, x, accum) in setups.items():
            t0 = time.perf_counter()
            for _ in range(accum):
                model(x, targets=x).backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            if r:
                best[name] = min(best[name], time.perf_counter() - t0)
    return best


def summary(values: list[float]) -> str:
    mean = statistics.fmean(values)
    half = (max(values) - min(values)) / 2
    return f"{mean:.4f} ± {half:.4f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", type=Path, default=Path(__file__).with_name("ablation_demo_adamw.toml"),
                    help="a Phase 2 config (default: the demo's model with Phase 2's AdamW settings)")
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), help="names from the table")
    ap.add_argument("--time-rounds", type=int, default=5, help="interleaved timing rounds (best of)")
    args = ap.parse_args()
    from phases.phase2_training.train import load_tokenizer
    vocab = load_tokenizer(load_config(args.config))[0].vocab_size
    times = step_times(args.config, args.variants, args.time_rounds, vocab)
    print("[timing] " + ", ".join(f"{n}: {t:.3f}s" for n, t in times.items()), file=sys.stderr, flush=True)
    results: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        for i, name in enumerate(args.variants):
            for seed in args.seeds:
                base = {**VARIANTS[name], "seed": str(seed), "num_iterations": str(args.steps)}
                r = run(args.config, base, tmp, f"{i}-{seed}-steps")
                results.setdefault(name, {}).setdefault("steps", []).append(r)
                print(f"[{name} seed {seed}] equal steps: bpb {r['val_bpb']:.4f}, {r['step_s']:.3f}s/step",
                      file=sys.stderr, flush=True)
        baseline_time = args.steps * times[args.variants[0]]
        for i, name in enumerate(args.variants):
            iters = max(1, round(baseline_time / times[name]))
            for k, seed in enumerate(args.seeds):
                if iters == args.steps:  # the same run as above, bit for bit
                    results[name].setdefault("time", []).append(results[name]["steps"][k])
                    continue
                base = {**VARIANTS[name], "seed": str(seed), "num_iterations": str(iters)}
                r = run(args.config, base, tmp, f"{i}-{seed}-time")
                results[name].setdefault("time", []).append(r)
                print(f"[{name} seed {seed}] equal time: {iters} steps, bpb {r['val_bpb']:.4f}",
                      file=sys.stderr, flush=True)
    print(f"\nAblation at the demo size ({args.config.name}), {args.steps} steps, seeds {args.seeds}, "
          f"CPU fp32, {torch.get_num_threads()} threads")
    print("| variant | val bpb, equal steps | step time vs baseline | steps in equal time | val bpb, equal time |")
    print("|---|---|---|---|---|")
    for name in args.variants:
        s, t = results[name]["steps"], results[name]["time"]
        print(f"| {name} | {summary([r['val_bpb'] for r in s])} | {times[name] / times[args.variants[0]]:.3f} | "
              f"{t[0]['steps']} | {summary([r['val_bpb'] for r in t])} |")
    print(json.dumps({"steps": args.steps, "seeds": args.seeds, "step_s": times, "results": results}))


if __name__ == "__main__":
    main()
