"""The end-to-end pipeline on CPU: embedded corpus -> tokenizer -> its evaluation -> pretraining
of a tiny GPT, one stage per step; ``mini-nanochat demo`` runs them in order.

Today the pipeline is: build the embedded corpus -> train a tokenizer -> evaluate it ->
show a colourised tokenization -> pretrain a tiny GPT (``examples/cpu_demo.toml``) and
print its validation bpb and samples. Each later phase appends its stage. Every stage
reuses what an earlier run already produced when its inputs are unchanged, and an
interrupted pretraining run is resumed from its last checkpoint, so nothing is lost. The
stages are the phases' own functions; this file only puts them in order.

What it leaves out: the stages of phases not built yet.
"""
from __future__ import annotations

import argparse
import shutil
import sys
import time
from dataclasses import asdict, fields
from pathlib import Path

from phases.common.console import UserError, positive_int, use_color
from phases.common.paths import data_dir, tokenizer_dir
from phases.phase0_tokenizer.bpe import FILENAME, BPETokenizer
from phases.phase0_tokenizer.compression import evaluate_folder
from phases.phase0_tokenizer.corpus import build_embedded_corpus, format_report
from phases.phase0_tokenizer.trainer import TrainSettings, load_train_settings, train_tokenizer
from phases.phase0_tokenizer.visualize import SAMPLE_TEXT, colorize_tokens

DEMO_CONFIG = Path(__file__).resolve().parents[1] / "examples" / "cpu_demo.toml"


def _same_settings(saved: dict, requested: dict, defaults: dict) -> bool:
    """Did a checkpoint come from these settings? The run stores resolved values (-1 -> the
    derived batch or horizon, "" -> the device it ran on), so only the values asked for count;
    a key the run predates counts as its default."""
    return all(saved.get(k, defaults.get(k)) == v for k, v in requested.items() if v != -1 and v != "")


def pretrain_demo(config_path: Path = DEMO_CONFIG, fresh: bool = False, show_progress: bool = True,
                  iterations: int | None = None):
    """Train the demo GPT, resuming an interrupted run and reusing a finished one."""
    from phases.phase2_training.checkpoint import latest_checkpoint
    from phases.phase2_training.train import run_dir_of
    from phases.phase5_data.pretrain import PretrainConfig, load_config, pretrain

    if not config_path.exists():
        raise UserError(f"{config_path} is missing (the demo runs from a checkout of the repository)")
    cfg = load_config(config_path, {"num_iterations": iterations} if iterations else None)
    if iterations:  # a shorter look is a different run: keep the full demo's run intact
        cfg = cfg.replace(run_name=f"{cfg.run_name}_{iterations}steps")
    run_dir = run_dir_of(cfg)
    if fresh and run_dir.exists():
        shutil.rmtree(run_dir)
    latest = latest_checkpoint(run_dir / "checkpoints")
    defaults = {f.name: f.default for f in fields(PretrainConfig)}
    if latest is not None and not _same_settings(latest.meta.get("train_config") or {}, asdict(cfg), defaults):
        print(f"{run_dir} was trained with other settings; starting over")
        shutil.rmtree(run_dir)
        latest = None
    if latest is not None and latest.step >= cfg.num_iterations:
        print(f"reusing the finished run in {run_dir} (step {latest.step}; --fresh retrains)")
        return latest.meta.get("val_bpb"), None
    if latest is not None:
        print(f"resuming the interrupted demo run from step {latest.step}")
    try:
        result = pretrain(cfg, resume=latest is not None, show_progress=show_progress)
    except KeyboardInterrupt:       # the loop saved the last completed step; the demo resumes it by itself
        again = "mini-nanochat demo" + (f" --iterations {iterations}" if iterations else "")
        print(f"to continue from the last checkpoint: {again} (it resumes the run in {run_dir})",
              file=sys.stderr, flush=True)
        raise
    return result.val_bpb, result


def run_demo(vocab_size: int = 8192, fresh: bool = False, show_progress: bool = True,
             iterations: int | None = None) -> None:
    """The pipeline so far: corpus -> tokenizer -> evaluation -> tokenization -> pretraining."""
    color = use_color()
    t_start = time.perf_counter()
    print("== 1/5 embedded corpus (docstrings of the standard library and installed packages)")
    info = build_embedded_corpus(data_dir("embedded"), force=fresh, show_progress=show_progress)
    print(format_report(info))

    print(f"\n== 2/5 tokenizer: byte-level BPE, vocab {vocab_size}")
    tok_dir = tokenizer_dir()
    settings = TrainSettings(vocab_size, str(info.out_dir), max_chars=2_000_000_000, doc_cap=10_000)
    previous = load_train_settings(tok_dir) if (tok_dir / FILENAME).exists() else None
    if previous == settings and not fresh and not info.built:
        tok = BPETokenizer.load(tok_dir)
        print(f"reusing {tok_dir / FILENAME} (same data and settings; --fresh retrains)")
    else:
        tok, seconds = train_tokenizer(settings, tok_dir, show_progress=show_progress)
        print(f"trained {len(tok.merges)} merges in {seconds:.1f}s -> {tok_dir / FILENAME}")

    print("\n== 3/5 tokenizer evaluation")
    print(evaluate_folder(tok_dir, Path(info.out_dir), color=color))

    print("\n== 4/5 tokenization of a sample (each colour is one token; · is a space, ↵ a newline)")
    ids = tok.encode(SAMPLE_TEXT)
    print(colorize_tokens(tok, ids, color=color))
    print(f"{len(SAMPLE_TEXT.encode())} bytes -> {len(ids)} tokens")
    print(f"\n== 5/5 pretraining a tiny GPT ({DEMO_CONFIG.relative_to(DEMO_CONFIG.parents[1])})")
    val_bpb, _ = pretrain_demo(fresh=fresh, show_progress=show_progress, iterations=iterations)
    print(f"validation bits per byte: {val_bpb:.4f}")
    print(f"\ndemo finished in {time.perf_counter() - t_start:.1f}s. Next: read the lessons in phases/, "
          "try `python tools/tokenizer_playground.py -i` and `python tools/training_dashboard.py cpu_demo`.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--vocab-size", type=positive_int, default=8192, help="tokenizer vocabulary (default 8192)")
    parser.add_argument("--fresh", action="store_true", help="rebuild everything instead of reusing")
    parser.add_argument("--iterations", type=positive_int, default=None,
                        help="pretraining steps (default: examples/cpu_demo.toml's); fewer = a quicker look")


def run(args: argparse.Namespace) -> None:
    run_demo(vocab_size=args.vocab_size, fresh=args.fresh, show_progress=not getattr(args, "no_progress", False),
             iterations=args.iterations)
