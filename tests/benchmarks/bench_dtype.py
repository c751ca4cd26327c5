"""Benchmark: the demo's pretraining in fp32 and in bf16 compute on this CPU, side by side.

``dtype = "auto"`` (Phase 2's ``dtype_probe``) picks bf16 on a CPU only where a short probe
measures it faster. This script measures the claim at full size: the demo configuration
(``examples/cpu_demo.toml``, the packed loader and MuonAdamW, as ``make demo`` trains it) for
``--steps`` optimizer steps with each compute dtype, from the same seed, and reports the
training time per step (evaluation excluded), the speedup of bf16, the validation bits
per byte each run reached, and what the probe decides here.

Last line of output: one JSON object (``bf16_speedup``, the per-dtype figures, hardware, torch).

Run: ``python tests/benchmarks/bench_dtype.py [--steps 40]``
What it leaves out: GPUs (Phase 1's policy runs bf16 there without asking), float16.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from phases.common.console import cpu_model  # noqa: E402
from phases.phase2_training.config import parse_overrides  # noqa: E402
from phases.phase5_data.pretrain import load_config, pretrain  # noqa: E402


def one(config: Path, dtype: str, steps: int, out: Path, extra: dict) -> dict:
    cfg = load_config(config, {"num_iterations": steps, "dtype": dtype, "run_dir": str(out / dtype),
                               "eval_every": steps, "save_every": 0, "sample_every": 0, **extra})
    result = pretrain(cfg, show_progress=False)
    return {"dtype": dtype, "s_per_step": result.train_time / steps, "tok_per_s": result.tok_per_s,
            "val_bpb": result.val_bpb}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=40, help="optimizer steps per dtype (default 40)")
    ap.add_argument("--config", type=Path, default=REPO / "examples" / "cpu_demo.toml")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config overrides")
    args = ap.parse_args()
    extra = parse_overrides(args.set)
    with tempfile.TemporaryDirectory() as tmp:
        runs = [one(args.config, d, args.steps, Path(tmp), extra) for d in ("float32", "bfloat16")]
        from phases.phase1_transformer.model import GPT
        from phases.phase2_training.dtype_probe import choose_cpu_dtype
        from phases.common.paths import tokenizer_dir
        from phases.phase0_tokenizer.bpe import BPETokenizer
        cfg = load_config(args.config, extra)
        vocab = BPETokenizer.load(cfg.tokenizer_dir or tokenizer_dir()).vocab_size
        probe = choose_cpu_dtype(GPT.build(cfg.model_config(vocab), seed=0), rows=2)
    fp32, bf16 = runs
    for r in runs:
        print(f"{r['dtype']:9s} {r['s_per_step'] * 1e3:8.1f} ms/step  {r['tok_per_s']:9.0f} tok/s  "
              f"val bpb after {args.steps} steps {r['val_bpb']:.4f}")
    speedup = fp32["s_per_step"] / bf16["s_per_step"]
    print(f"bf16 speedup {speedup:.2f}x on {cpu_model()}, {torch.get_num_threads()} threads; "
          f"the probe (dtype = auto) here: {probe.describe()}")
    print(json.dumps({"benchmark": "bench_dtype", "bf16_speedup": round(speedup, 3), "steps": args.steps,
                      "runs": runs, "probe_choice": str(probe.dtype).removeprefix("torch."),
                      "probe_fp32_ms": round(probe.fp32_s * 1e3, 1),
                      "probe_bf16_ms": round(probe.bf16_s * 1e3, 1) if probe.bf16_s else None,
                      "hardware": cpu_model(), "threads": torch.get_num_threads(), "torch": torch.__version__,
                      "config": str(args.config), "overrides": extra}))


if __name__ == "__main__":
    main()
