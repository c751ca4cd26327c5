"""Benchmark: what SFT and RL make of the CPU demo's base model, and what packing conversations costs.

1. **Rows** (``rows.py``): the SFT mixture of ``examples/cpu_sft.toml`` packed into rows of
   T + 1 tokens, best-fit with padding (a 100-conversation buffer: nanochat's) against greedy
   (arrival order, padded when the next one does not fit: a buffer of 1), at the demo's T and
   at half of it: row utilisation (supervised tokens / row tokens), fill (non-padding / row
   tokens), and the share of conversations dropped for being longer than a row.
2. **Speed**: tokens/s of the SFT runs (median step of each, from their ``metrics.jsonl``)
   beside pretraining's on the same model and batch, measured in this run (``--speed-steps``
   steps of each, same process), as a ratio: SFT runs pretraining's loop, so it should cost
   the same per token.
3. **Learning**: for each seed, ``sft`` (``examples/cpu_sft.toml``) then ``rl``
   (``examples/cpu_rl.toml``) from the base run; then, on the same ``--problems`` held-out
   arithmetic problems, greedy accuracy with the calculator (``acc``) and pass@1..k from
   ``--k`` samples at temperature 1 (Phase 7's ``run_generative``, the unbiased estimator),
   for the base model (prompted the same way), after SFT and after RL. The wall time of each
   SFT and RL run is reported.

Last line of stdout: one JSON object with ``acc_base``, ``acc_sft``, ``acc_rl`` (means over
seeds) and per seed, ``rl_gain`` (mean and per seed), ``pass_at``, ``row_utilisation``,
``row_utilisation_greedy``, ``dropped_share``, ``sft_tok_per_s``, ``pretrain_tok_per_s``,
``tok_per_s_ratio``, the times, the machine's load average and hardware, ``targets_met``.
``--quick`` builds a tiny world (corpus, tokenizer, a 40-step base model) and runs a few
steps of each, for the smoke test; its figures are not the ones to report.

Run: ``python tests/benchmarks/bench_sft.py [--base cpu_demo] [--seeds 1 2 3] [--quick] [--rows-only]``
(the base run must exist: ``mini-nanochat demo`` trains it). About 30 minutes on 2 cores.
What it leaves out: GPUs, hub data (offline mixture only), TRL (not installed: heavy).
"""
from __future__ import annotations

import argparse
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
from phases.phase2_training.load import load_model  # noqa: E402
from phases.phase2_training.metrics import read_metrics  # noqa: E402
from phases.phase8_sft import mixture as mixtures  # noqa: E402
from phases.phase8_sft import rl as p8rl  # noqa: E402
from phases.phase8_sft import sft as p8sft  # noqa: E402
from phases.phase8_sft.rows import count_rows  # noqa: E402

SFT_TOML, RL_TOML = REPO / "examples" / "cpu_sft.toml", REPO / "examples" / "cpu_rl.toml"


def rows_table(cfg, tok) -> list[dict]:
    train = mixtures.build(cfg.mixture, "train", seed=cfg.seed, show_progress=False)
    out = []
    for T in (cfg.sequence_len, cfg.sequence_len // 2):
        for name, buffer in (("best-fit + padding", cfg.row_buffer), ("greedy + padding", 1)):
            n, st = count_rows(train, tok, T, buffer)
            out.append({"T": T, "packing": name, "rows": n, "utilisation": st.utilisation, "fill": st.fill,
                        "dropped_share": st.dropped_share})
    return out


def print_rows(table: list[dict]) -> None:
    print("\n| T | packing | rows | utilisation (supervised/row tokens) | fill | conversations dropped |")
    print("|---|---|---|---|---|---|")
    for t in table:
        print(f"| {t['T']} | {t['packing']} | {t['rows']:,} | {t['utilisation']:.1%} | {t['fill']:.1%} "
              f"| {t['dropped_share']:.1%} |")


def median_tok_per_s(run_dir) -> float:
    steps = [r["tok_per_s"] for r in read_metrics(run_dir) if r.get("event") == "step"]
    return statistics.median(steps[1:] or steps)            # the first step pays for warm-up


def pretrain_speed(base: str, steps: int, out_dir: Path) -> float:
    """tok/s of pretraining's loop on the base run's model and batch (fresh weights, ``steps`` steps)."""
    from phases.phase2_training.load import read_meta
    from phases.phase5_data.pretrain import load_config, pretrain
    saved = read_meta(base)["train_config"]
    keep = {k: saved[k] for k in p8sft.INHERITED + ("data_dir",) if k in saved}
    cfg = load_config(None, {**keep, "num_iterations": steps, "eval_every": 0, "save_every": 0, "sample_tokens": 1,
                             "eval_tokens": keep.get("device_batch_size", 8) * keep.get("sequence_len", 256),
                             "run_dir": str(out_dir / "pretrain_speed"), "warmup_steps": 0})
    with open(os.devnull, "w") as quiet:
        pretrain(cfg, show_progress=False, out=quiet)
    return median_tok_per_s(out_dir / "pretrain_speed")


def evaluate(run: str, problems: int, k: int, max_tokens: int, seed: int) -> dict:
    model, tok, _ = load_model(run)
    task = mixtures.task_of(mixtures.Entry("arithmetic", problems, 1), "test")
    greedy = p8sft.score(model, tok, [task], max_tokens)["arithmetic"]
    sampled = p8sft.score(model, tok, [task], max_tokens, num_samples=k, temperature=1.0, seed=seed)
    pass_at = {1: sampled["arithmetic"], **{int(key.split("@")[1]): v for key, v in sampled.items() if "@" in key}}
    return {"acc": greedy, "pass_at": pass_at}


def run_pair(base: str, seed: int, out_dir: Path, sft_over: dict, rl_over: dict) -> dict:
    """SFT then RL for one seed; returns both runs' folders and wall times."""
    sft_dir, rl_dir = out_dir / f"sft_seed{seed}", out_dir / f"rl_seed{seed}"
    with open(os.devnull, "w") as quiet:
        t0 = time.perf_counter()
        cfg = p8sft.load_config(SFT_TOML, {"base": base, "seed": seed, "run_dir": str(sft_dir), **sft_over})
        p8sft.sft(cfg, show_progress=False, out=quiet)
        t1 = time.perf_counter()
        cfg = p8rl.load_config(RL_TOML, {"sft": str(sft_dir), "seed": seed, "run_dir": str(rl_dir), **rl_over})
        p8rl.rl(cfg, show_progress=False, out=quiet)
        t2 = time.perf_counter()
    return {"seed": seed, "sft_dir": str(sft_dir), "rl_dir": str(rl_dir), "sft_s": t1 - t0, "rl_s": t2 - t1}


def quick_world(tmp: Path) -> str:
    """A tiny corpus, tokenizer and 40-step base run (the smoke test's world); returns the run folder."""
    from phases.phase0_tokenizer.bpe import BPETokenizer
    from phases.phase0_tokenizer.corpus import build_embedded_corpus
    from phases.phase0_tokenizer.shards import iter_texts
    from phases.phase5_data.pretrain import load_config, pretrain
    info = build_embedded_corpus(tmp / "data", packages=(), stdlib_modules=("json", "textwrap"), show_progress=False)
    BPETokenizer.train(iter_texts(info.out_dir, "train"), vocab_size=512).save(tmp / "tokenizer")
    cfg = load_config(None, dict(depth=2, aspect_ratio=32, head_dim=32, sequence_len=128, device_batch_size=4,
                                 total_batch_size=512, num_iterations=40, warmup_steps=2, eval_every=0,
                                 eval_tokens=1024, save_every=0, sample_tokens=2, data_dir=str(info.out_dir),
                                 tokenizer_dir=str(tmp / "tokenizer"), run_dir=str(tmp / "base"), matrix_lr=0.32,
                                 embedding_lr=0.6, unembedding_lr=0.05, tokenizer_threads=1, doc_buffer=64))
    with open(os.devnull, "w") as quiet:
        pretrain(cfg, show_progress=False, out=quiet)
    return str(tmp / "base")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--base", default="cpu_demo", help="the pretrained run (default cpu_demo: `mini-nanochat demo`)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--problems", type=int, default=200, help="held-out arithmetic problems (default 200)")
    ap.add_argument("--k", type=int, default=8, help="samples per problem for pass@k (default 8)")
    ap.add_argument("--speed-steps", type=int, default=20, help="pretraining steps timed for the speed ratio")
    ap.add_argument("--out", type=Path, help="where the runs go (default: a temporary folder)")
    ap.add_argument("--quick", action="store_true", help="a tiny world and a few steps: the smoke test")
    ap.add_argument("--rows-only", action="store_true",
                    help="only part 1 (packing: seconds, no training); its table and one JSON line")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench_sft_"))
    out_dir = args.out or tmp
    sft_over: dict = {}
    rl_over: dict = {}
    base = args.base
    if args.quick:
        base = quick_world(tmp)
        args.seeds, args.problems, args.k, args.speed_steps = args.seeds[:1], 8, 2, 3
        sft_over = {"mixture": "arithmetic:200, identity:40", "num_iterations": 6, "eval_every": 0, "eval_tasks": "",
                    "val_per_task": 10, "eval_tokens": 2048}
        rl_over = {"num_iterations": 2, "examples_per_step": 2, "num_samples": 4, "max_new_tokens": 8,
                   "eval_every": 0, "eval_task": "arithmetic:4", "pass_k": 2}
    load = os.getloadavg()[0]
    cfg = p8sft.load_config(SFT_TOML, {"base": base, **sft_over})
    tok = load_model(base)[1]
    table = rows_table(cfg, tok)
    if args.rows_only:
        print_rows(table)
        best = next(t for t in table if t["T"] == cfg.sequence_len and t["packing"].startswith("best"))
        greedy = next(t for t in table if t["T"] == cfg.sequence_len and t["packing"].startswith("greedy"))
        print(json.dumps({"row_utilisation": best["utilisation"], "row_utilisation_greedy": greedy["utilisation"],
                          "row_fill": best["fill"], "dropped_share": best["dropped_share"], "rows": table,
                          "base": base, "quick": args.quick}))
        return
    pretrain_tps = pretrain_speed(base, args.speed_steps, out_dir)
    max_tokens = p8rl.load_config(RL_TOML, {"sft": base, **rl_over}).max_new_tokens
    base_eval = evaluate(base, args.problems, args.k, max_tokens, seed=0)
    runs = []
    for seed in args.seeds:
        r = run_pair(base, seed, out_dir, sft_over, rl_over)
        r["sft"] = evaluate(r["sft_dir"], args.problems, args.k, max_tokens, seed)
        r["rl"] = evaluate(r["rl_dir"], args.problems, args.k, max_tokens, seed)
        r["sft_tok_per_s"] = median_tok_per_s(r["sft_dir"])
        runs.append(r)
        print(f"seed {seed}: SFT {r['sft_s']:.0f}s -> acc {r['sft']['acc']:.3f}, pass@k {r['sft']['pass_at']}; "
              f"RL {r['rl_s']:.0f}s -> acc {r['rl']['acc']:.3f}, pass@k {r['rl']['pass_at']}; "
              f"SFT {r['sft_tok_per_s']:,.0f} tok/s", flush=True)

    best = next(t for t in table if t["T"] == cfg.sequence_len and t["packing"].startswith("best"))
    greedy = next(t for t in table if t["T"] == cfg.sequence_len and t["packing"].startswith("greedy"))
    print_rows(table)
    ks = sorted(base_eval["pass_at"])
    print("\n| model | seed | greedy acc | " + " | ".join(f"pass@{k}" for k in ks) + " | time |")
    print("|---|---|---|" + "---|" * len(ks) + "---|")
    print("| base (prompted the same way) | - | " + f"{base_eval['acc']:.3f} | "
          + " | ".join(f"{base_eval['pass_at'][k]:.3f}" for k in ks) + " | - |")
    for r in runs:
        for stage, secs in (("sft", r["sft_s"]), ("rl", r["rl_s"])):
            e = r[stage]
            print(f"| after {stage.upper()} | {r['seed']} | {e['acc']:.3f} | "
                  + " | ".join(f"{e['pass_at'][k]:.3f}" for k in ks) + f" | {secs:.0f}s |")
    sft_tps = statistics.median(r["sft_tok_per_s"] for r in runs)
    acc_sft = statistics.mean(r["sft"]["acc"] for r in runs)
    acc_rl = statistics.mean(r["rl"]["acc"] for r in runs)
    gains = [r["rl"]["acc"] - r["sft"]["acc"] for r in runs]
    print(f"\nSFT {sft_tps:,.0f} tok/s vs pretraining {pretrain_tps:,.0f} tok/s on the same model and batch "
          f"(ratio {sft_tps / pretrain_tps:.2f}); load average at start {load:.1f}; {cpu_model()}, "
          f"{torch.get_num_threads()} torch threads, float32, torch {torch.__version__}")
    report = {
        "acc_base": base_eval["acc"], "acc_sft": acc_sft, "acc_rl": acc_rl,
        "acc_sft_per_seed": [r["sft"]["acc"] for r in runs], "acc_rl_per_seed": [r["rl"]["acc"] for r in runs],
        "rl_gain": statistics.mean(gains), "rl_gain_per_seed": gains,
        "pass_at": {"base": base_eval["pass_at"], "sft": [r["sft"]["pass_at"] for r in runs],
                    "rl": [r["rl"]["pass_at"] for r in runs]},
        "row_utilisation": best["utilisation"], "row_utilisation_greedy": greedy["utilisation"],
        "row_fill": best["fill"], "dropped_share": best["dropped_share"], "rows": table,
        "sft_tok_per_s": sft_tps, "pretrain_tok_per_s": pretrain_tps, "tok_per_s_ratio": sft_tps / pretrain_tps,
        "sft_seconds": [r["sft_s"] for r in runs], "rl_seconds": [r["rl_s"] for r in runs],
        "seeds": args.seeds, "problems": args.problems, "k": args.k, "base": base, "quick": args.quick,
        "targets_met": {"acc_rl_ge_0.8": acc_rl >= 0.8, "rl_gain_every_seed": all(g > 0 for g in gains)},
        "load_average": load, "hardware": {"cpu": cpu_model(), "threads": torch.get_num_threads()},
        "dtype": "float32", "torch": torch.__version__,
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
