"""Benchmark: the demo configuration trained for a fixed wall-clock budget.

Trains ``examples/cpu_demo.toml`` (or ``--config``) the way the demo does (``phases.phase5_data.pretrain``:
MuonAdamW, the packed loader) for ``--seconds`` of training time
(evaluation excluded) and reports tokens/s, MFU (against the matmul peak measured in the
same run on this machine) and the validation bits per byte reached. The schedule is the
config's own, scaled so that the run's planned iterations fit the budget: the first 20
steps are timed, then ``num_iterations`` is set from the measured step time, and the run
starts again from step 0 with that horizon (so warmup and warmdown both happen).

Last line of output: one JSON object with ``tok_per_s``, ``mfu``, ``val_bpb``, ``seconds``
and the details (hardware, torch, config, iterations).

Run: ``python tests/benchmarks/bench_train.py [--seconds 300] [--config FILE]``
What it leaves out: GPUs (run it on one with ``--set device=cuda``), multi-process runs.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from phases.common.console import cpu_model  # noqa: E402
from phases.phase2_training.config import parse_overrides  # noqa: E402
from phases.phase5_data.pretrain import load_config  # noqa: E402  (the demo config has every phase's keys)
from phases.phase5_data.pretrain import pretrain as train  # noqa: E402  (the demo as `make demo` runs it)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", type=Path, default=REPO / "examples" / "cpu_demo.toml")
    ap.add_argument("--seconds", type=float, default=300.0, help="training-time budget")
    ap.add_argument("--probe-steps", type=int, default=20, help="steps timed to size the horizon")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = ap.parse_args()
    overrides = parse_overrides(args.set)
    with tempfile.TemporaryDirectory() as tmp:
        probe_cfg = load_config(args.config, {**overrides, "run_dir": f"{tmp}/probe", "eval_every": "0",
                                              "num_iterations": str(args.probe_steps), "save_every": "0",
                                              "sample_tokens": "1"})
        probe = train(probe_cfg, show_progress=False, out=open(os.devnull, "w"))
        step_time = probe.train_time / probe.step
        iterations = max(args.probe_steps, int(args.seconds / step_time))
        cfg = load_config(args.config, {**overrides, "run_dir": f"{tmp}/run", "num_iterations": str(iterations),
                                        "max_seconds": str(args.seconds), "save_every": "0"})
        t0 = time.perf_counter()
        result = train(cfg, show_progress=True)
        wall = time.perf_counter() - t0
    tokens = result.step * (cfg.device_batch_size * cfg.sequence_len)
    report = {
        "tok_per_s": tokens / result.train_time, "mfu": result.mfu, "val_bpb": result.val_bpb,
        "seconds": result.train_time, "wall_seconds": wall, "steps": result.step, "planned_steps": iterations,
        "tokens": tokens, "config": str(args.config.relative_to(REPO)) if args.config.is_relative_to(REPO) else str(args.config),
        "hardware": {"cpu": cpu_model(), "threads": torch.get_num_threads(),
                     "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None},
        "torch": torch.__version__, "dtype": "float32" if not torch.cuda.is_available() else "auto",
        "samples": result.samples,
    }
    print(f"\n| config | steps | tokens | train s | tok/s | MFU (last step) | val bpb |\n|---|---|---|---|---|---|---|\n"
          f"| {report['config']} | {result.step} | {tokens:,} | {result.train_time:.0f} | "
          f"{report['tok_per_s']:,.0f} | {100 * result.mfu:.1f}% | {result.val_bpb:.4f} |")
    print(f"hardware: {report['hardware']['cpu']}, {report['hardware']['threads']} threads, torch {torch.__version__}")
    print(json.dumps(report))


if __name__ == "__main__":
    main()
