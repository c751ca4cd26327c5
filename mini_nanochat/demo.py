"""``mini-nanochat demo`` (what ``make demo`` runs): the whole pipeline on the CPU, offline.

It is ``mini-nanochat run --config examples/pipeline_cpu.toml``: the embedded corpus (docstrings
already on this machine), an 8,192-token tokenizer and its evaluation, a tiny GPT pretrained
on it, its evaluation, SFT and RL on offline chat data (arithmetic with the calculator,
spelling, standard-library questions), the chat evaluation, and a few real exchanges with
the result, with the commands to chat with it and serve it. The report card of the run is
``<base>/pipelines/cpu_demo/report.md``. Run it again and every finished stage is reused;
interrupt it and it resumes.

What it leaves out: downloads (``examples/pipeline_*.toml`` for the GPU pipelines).
Run: ``mini-nanochat demo --help``.
"""
from __future__ import annotations

import argparse

from mini_nanochat.pipeline import DEMO_PIPELINE, PipelineConfig, add_arguments as pipeline_arguments, run_pipeline
from phases.common.console import positive_int

HELP = """stages: data (the embedded corpus) -> tokenizer -> pretrain -> base_eval -> sft -> rl -> chat_eval -> chat
each stage prints its plan first and one line with its time and headline metric at the end;
the configs: examples/pipeline_cpu.toml and the stage configs it names (cpu_demo, cpu_sft, cpu_rl)"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    pipeline_arguments(parser, demo=True)
    parser.add_argument("--vocab-size", type=positive_int, default=None,
                        help="tokenizer vocabulary (default 8192); another size is kept apart from the full "
                             "demo's tokenizer and runs (<base>/tokenizer_vocab<N>, names end in _vocab<N>)")
    parser.add_argument("--iterations", type=positive_int, default=None,
                        help="pretraining steps (default: examples/cpu_demo.toml's 250); fewer = a quicker look, "
                             "kept apart from the full demo's runs (names end in _<N>steps)")


def run(args: argparse.Namespace) -> dict:
    from phases.common.paths import base_dir
    pretrain, suffix = {}, ""
    if args.iterations:
        pretrain["num_iterations"], suffix = args.iterations, f"_{args.iterations}steps"
    if args.vocab_size:      # its own tokenizer folder: the lessons' default tokenizer stays as it is
        pretrain["tokenizer_dir"] = str(base_dir() / f"tokenizer_vocab{args.vocab_size}")
        suffix += f"_vocab{args.vocab_size}"
    cfg = PipelineConfig(DEMO_PIPELINE, {"pretrain": pretrain} if pretrain else {}, suffix=suffix)
    if args.vocab_size:
        cfg.tokenizer = {**cfg.tokenizer, "vocab_size": args.vocab_size}
    return run_pipeline(cfg, args.stages, args.fresh, show_progress=not getattr(args, "no_progress", False))
