"""Benchmark: AdamW only vs MuonAdamW (and each refinement) at the CPU demo size.

Every variant trains the demo configuration (``examples/cpu_demo.toml`` + ``--set``) on the
embedded corpus through Phase 3's ``train``:

1. **equal steps**: ``--steps`` optimizer steps each -> final validation bpb, mean step
   time, and the mean time of ``optimizer.step()`` (measured around the call);
2. **equal wall time**: the time full MuonAdamW needed for ``--steps`` steps is the budget;
   every other variant gets as many steps as fit in it (a complete schedule in the same
   compute). On a shared machine the load changes between runs, so step times of different
   runs are not compared directly: all variants run the same forward/backward, and only the
   optimizer's *share* of each run's step differs, so the budget is
   ``steps x (1 - share_variant) / (1 - share_muon)`` steps. A variant within 3% of
   ``--steps`` keeps its equal-steps result (marked ``=``) instead of training again.

``--sweep`` instead trains short runs over a grid of matrix learning rates (Muon's
``matrix_lr``, AdamW's ``adamw_matrix_lr``) and prints the best of each: how the demo's
learning rates were chosen. ``--quick`` runs everything on a tiny model and corpus
(seconds; the smoke test uses it).

Last line of output: one JSON object with ``bpb_adamw``, ``bpb_muon``, ``optimizer_ms``,
``step_ms``, ``optimizer_share``, every run, the settings and the hardware.

``--seeds 42 43 44`` trains every run once per seed and reports the mean and the min–max
spread, so a refinement's effect can be told from seed noise.

Run: ``python tests/benchmarks/bench_optim.py --steps 150 [--seeds 42 43] [--set key=value ...]``
What it leaves out: GPUs; error bars beyond the min–max of the seeds given.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
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
from phases.phase2_training import train as p2train  # noqa: E402
from phases.phase3_optimizers import recipe as p3recipe  # noqa: E402

VARIANTS = {   # "muon" is the demo's own setting (examples/cpu_demo.toml); the others change one thing
    "adamw": {"optimizer": "adamw"},
    "muon": {},
    "muon, NorMuon off": {"normuon": "false"},
    "muon, no cautious wd": {"cautious_wd": "false"},
    "muon, quintic NS": {"ns_coefficients": "quintic"},
    "muon, Gram restart": {"gram_restart": "2"},
    "muon, Muon+": {"muon_plus": "true"},
    "muon, AOL (Turbo-Muon, 4 NS)": {"ns_precondition": "aol"},
}
QUICK = {"depth": "2", "aspect_ratio": "32", "head_dim": "32", "sequence_len": "32", "device_batch_size": "4",
         "total_batch_size": "128", "reference_batch_size": "128", "eval_tokens": "2048", "warmup_steps": "2",
         "muon_momentum_warmup": "4"}


def run(config: Path | None, overrides: dict, run_dir: str) -> dict:
    """One training run; returns val bpb, steps, time per step and time per optimizer step."""
    cfg = p3recipe.load_config(config, {**overrides, "run_dir": run_dir, "save_every": "0", "eval_every": "0",
                                        "sample_tokens": "1"})
    opt_times: list[float] = []

    def timed_optimizer(model, cfg, plan):
        opt = p3recipe.make_optimizer(model, cfg, plan)
        inner = opt.step

        def step(*args, **kwargs):
            t0 = time.perf_counter()
            out = inner(*args, **kwargs)
            opt_times.append(time.perf_counter() - t0)
            return out
        opt.step = step
        return opt
    recipe = dataclasses.replace(p3recipe.recipe(), make_optimizer=timed_optimizer)
    result = p2train.train(cfg, show_progress=False, out=open(os.devnull, "w"), recipe=recipe)
    steady = opt_times[2:] or opt_times                     # the first steps allocate state
    return {"val_bpb": result.val_bpb, "steps": result.step, "train_s": result.train_time,
            "step_ms": 1000 * result.train_time / max(1, result.step), "optimizer_ms": 1000 * statistics.fmean(steady)}


def run_seeds(config: Path | None, overrides: dict, run_dir: str, seeds: list[int]) -> dict:
    """The same run once per seed: the mean of every figure, and each seed's bpb."""
    per_seed = {seed: run(config, {**overrides, "seed": str(seed)}, f"{run_dir}-seed{seed}") for seed in seeds}
    bpbs = [r["val_bpb"] for r in per_seed.values()]
    mean = {k: statistics.fmean(r[k] for r in per_seed.values()) for k in ("val_bpb", "train_s", "step_ms",
                                                                           "optimizer_ms")}
    return {**mean, "steps": next(iter(per_seed.values()))["steps"], "bpb_min": min(bpbs), "bpb_max": max(bpbs),
            "per_seed_bpb": {str(k): r["val_bpb"] for k, r in per_seed.items()}}


def spread(r: dict) -> str:
    return f" ({r['bpb_min']:.4f}–{r['bpb_max']:.4f})" if len(r["per_seed_bpb"]) > 1 else ""


def sweep(config, base: dict, tmp: str, steps: int, grids: dict, seeds: list[int]) -> dict:
    table = {}
    for variant, (key, values) in grids.items():
        for lr in values:
            r = run_seeds(config, {**base, **VARIANTS[variant], key: str(lr), "num_iterations": str(steps)},
                          f"{tmp}/sweep-{variant}-{lr}", seeds)
            table.setdefault(variant, {})[lr] = r["val_bpb"]
            print(f"[sweep] {variant:6s} {key}={lr:<8g} val bpb {r['val_bpb']:.4f}{spread(r)}", file=sys.stderr,
                  flush=True)
    best = {v: min(t, key=t.get) for v, t in table.items()}
    print("\n| optimizer | LR key | " + " | ".join("value -> bpb" for _ in range(max(map(len, table.values())))) + " |")
    for variant, t in table.items():
        cells = " | ".join(f"{lr:g} -> {bpb:.4f}" + (" **best**" if lr == best[variant] else "") for lr, bpb in t.items())
        print(f"| {variant} | {grids[variant][0]} | {cells} |")
    return {"sweep": {v: {str(k): b for k, b in t.items()} for v, t in table.items()},
            "best": {v: best[v] for v in table}, "steps": steps, "seeds": seeds}


def tiny_world(tmp: str) -> dict:
    from phases.phase0_tokenizer.bpe import BPETokenizer
    from phases.phase0_tokenizer.corpus import build_embedded_corpus
    from phases.phase0_tokenizer.shards import iter_texts
    info = build_embedded_corpus(Path(tmp) / "data", packages=(), stdlib_modules=("json", "textwrap"),
                                 shard_chars=100_000, show_progress=False)
    BPETokenizer.train(iter_texts(info.out_dir, "train"), vocab_size=512).save(Path(tmp) / "tokenizer")
    return {"data_dir": str(info.out_dir), "tokenizer_dir": str(Path(tmp) / "tokenizer")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", type=Path, default=REPO / "examples" / "cpu_demo.toml")
    ap.add_argument("--steps", type=int, default=150, help="optimizer steps of the equal-steps runs")
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config overrides, all runs")
    ap.add_argument("--sweep", action="store_true", help="sweep the matrix learning rates instead")
    ap.add_argument("--sweep-steps", type=int, default=100)
    ap.add_argument("--seeds", type=int, nargs="+", default=[42],
                    help="train every run once per seed and report the mean (and the min-max spread)")
    ap.add_argument("--muon-lrs", type=float, nargs="+", default=[0.16, 0.32, 0.64],
                    help="matrix_lr values (the config key, before the dial's batch scaling)")
    ap.add_argument("--adamw-lrs", type=float, nargs="+", default=[0.032, 0.064, 0.128, 0.256],
                    help="adamw_matrix_lr values (the config key, before the dial's batch scaling)")
    ap.add_argument("--quick", action="store_true", help="a tiny model and corpus: seconds (smoke test)")
    args = ap.parse_args()
    base = parse_overrides(args.set)
    if "adamw" not in args.variants or "muon" not in args.variants:
        ap.error("--variants must include adamw and muon (the two the report compares)")
    report: dict = {"settings": {"config": str(args.config), "set": base, "steps": args.steps, "quick": args.quick,
                                 "seeds": args.seeds}}
    with tempfile.TemporaryDirectory() as tmp:
        if args.quick:
            base = {**QUICK, **tiny_world(tmp), **base}
            args.steps, args.sweep_steps = min(args.steps, 8), min(args.sweep_steps, 4)
            torch.set_num_threads(1)                     # tiny matrices: threads only add noise
        if args.sweep:
            report.update(sweep(args.config, base, tmp, args.sweep_steps,
                                {"muon": ("matrix_lr", args.muon_lrs), "adamw": ("adamw_matrix_lr", args.adamw_lrs)},
                                args.seeds))
        else:
            runs: dict = {}
            order = ["muon"] + [v for v in args.variants if v != "muon"]   # Muon's time sets the budget
            for i, name in enumerate(order):
                r = run_seeds(args.config, {**base, **VARIANTS[name], "num_iterations": str(args.steps)}, f"{tmp}/s{i}",
                              args.seeds)
                runs[name] = {"equal_steps": r}
                print(f"[{name}] {args.steps} steps: bpb {r['val_bpb']:.4f}{spread(r)}, {r['step_ms']:.0f} ms/step, "
                      f"optimizer {r['optimizer_ms']:.1f} ms", file=sys.stderr, flush=True)
            budget = runs["muon"]["equal_steps"]["train_s"]
            share = {n: r["equal_steps"]["optimizer_ms"] / r["equal_steps"]["step_ms"] for n, r in runs.items()}
            for i, name in enumerate(order):
                iters = max(1, round(args.steps * (1 - share[name]) / (1 - share["muon"])))
                if name == "muon" or abs(iters - args.steps) <= 0.03 * args.steps:
                    runs[name]["equal_time"] = {**runs[name]["equal_steps"], "reused": True}
                    continue
                r = run_seeds(args.config, {**base, **VARIANTS[name], "num_iterations": str(iters)}, f"{tmp}/t{i}",
                              args.seeds)
                runs[name]["equal_time"] = {**r, "reused": False}
                print(f"[{name}] equal time: {iters} steps, bpb {r['val_bpb']:.4f}{spread(r)}",
                      file=sys.stderr, flush=True)
            seeds = f"mean of {len(args.seeds)} seeds (min–max)" if len(args.seeds) > 1 else f"seed {args.seeds[0]}"
            print(f"\n| variant | val bpb, {args.steps} steps, {seeds} | ms/step | optimizer ms (share) | "
                  f"val bpb, equal time | steps in Muon's time |\n|---|---|---|---|---|---|")
            for name in order:
                s, t = runs[name]["equal_steps"], runs[name]["equal_time"]
                print(f"| {name} | {s['val_bpb']:.4f}{spread(s)} | {s['step_ms']:.0f} | {s['optimizer_ms']:.1f} "
                      f"({s['optimizer_ms'] / s['step_ms']:.1%}) | {t['val_bpb']:.4f}{' =' if t['reused'] else ''} "
                      f"| {t['steps']} |")
            m, a = runs["muon"], runs["adamw"]
            report.update({
                "bpb_adamw": a["equal_steps"]["val_bpb"], "bpb_muon": m["equal_steps"]["val_bpb"],
                "bpb_adamw_equal_time": a["equal_time"]["val_bpb"], "bpb_muon_equal_time": m["equal_time"]["val_bpb"],
                "optimizer_ms": m["equal_steps"]["optimizer_ms"], "step_ms": m["equal_steps"]["step_ms"],
                "optimizer_share": m["equal_steps"]["optimizer_ms"] / m["equal_steps"]["step_ms"],
                "budget_s": budget, "runs": runs,
            })
            report["targets_met"] = {
                "muon_beats_adamw_equal_steps": report["bpb_muon"] < report["bpb_adamw"],
                "muon_beats_adamw_equal_time": report["bpb_muon_equal_time"] < report["bpb_adamw_equal_time"],
                "optimizer_under_15pct": report["optimizer_share"] < 0.15,
            }
    report["hardware"] = {"cpu": cpu_model(), "threads": torch.get_num_threads()}
    report["torch"] = torch.__version__
    print(json.dumps(report))


if __name__ == "__main__":
    main()
