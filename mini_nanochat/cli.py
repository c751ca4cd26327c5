"""The ``mini-nanochat`` command line: one command, a subcommand per runnable module.

    mini-nanochat demo                               # the whole pipeline on the CPU, offline
    mini-nanochat run --config examples/pipeline_cpu.toml --stages sft,rl   # any pipeline config
    mini-nanochat data embedded                      # build the offline corpus
    mini-nanochat data download -n 8                 # fetch pretraining shards (Phase 5)
    mini-nanochat tokenizer train --vocab-size 8192  # train the BPE tokenizer
    mini-nanochat tokenizer encode "Hello world"     # show ids and a colourised view
    mini-nanochat tokenizer eval                     # bytes/token per genre vs rustbpe
    mini-nanochat pretrain --config examples/cpu_demo.toml   # train a GPT (Phases 2-5)
    torchrun --standalone --nproc_per_node=2 -m mini_nanochat pretrain --config examples/cpu_ddp.toml

This file only mounts: each subcommand is a module that exposes ``add_arguments(parser)``
and ``run(args)`` (the same pair ``python -m <module>`` runs). A later phase adds its
command with one line in ``COMMANDS``. Mistakes a user can fix (a missing tokenizer, a bad
number) print ``error: …`` and exit with status 2; they never show a traceback.
"""
from __future__ import annotations

import argparse
import importlib

from phases.common.console import run_command

EPILOG = "Files live under $MINI_NANOCHAT_BASE_DIR (default ~/.cache/mini-nanochat)."
GROUPS = {"data": "datasets", "tokenizer": "train, use and evaluate the BPE tokenizer"}

# --8<-- [start:commands]
COMMANDS = [  # (subcommand, module with add_arguments/run, one line of help)
    ("demo", "mini_nanochat.demo", "the whole pipeline on the CPU, offline: corpus to a chat model (make demo)"),
    ("run", "mini_nanochat.pipeline", "run a pipeline config's stages in order (one process or torchrun's ranks)"),
    ("data embedded", "phases.phase0_tokenizer.corpus", "build the offline corpus from installed docstrings"),
    ("data download", "phases.phase5_data.download", "download pretraining shards from the Hugging Face Hub"),
    ("tokenizer train", "phases.phase0_tokenizer.trainer", "train a byte-level BPE tokenizer"),
    ("tokenizer encode", "phases.phase0_tokenizer.visualize", "encode text and show its tokens"),
    ("tokenizer eval", "phases.phase0_tokenizer.compression",
     "bytes per token on genres and the validation shard, vs rustbpe"),
    ("pretrain", "phases.phase5_data.pretrain", "pretrain a GPT (Phases 2-5), on one process or torchrun's ranks"),
    ("generate", "phases.phase6_inference.generate", "generate text from a checkpoint with the KV-cache engine"),
    ("eval", "phases.phase7_eval.evaluate", "evaluate a base or chat model (bpb, CORE, chat tasks), offline by default"),
    ("sft", "phases.phase8_sft.sft", "supervised fine-tuning of a base model on conversations (Phase 2's loop)"),
    ("rl", "phases.phase8_sft.rl", "reinforcement learning (GRPO-style) on checkable problems, from an SFT model"),
    ("chat", "phases.phase9_serving.chat", "chat with a model in the terminal (multi-turn, slash commands, -p for one shot)"),
    ("serve", "phases.phase9_serving.serve", "serve a model: OpenAI-compatible API and a web chat page (127.0.0.1)"),
    ("quiz", "mini_nanochat.quiz", "a few questions on phase N, answers checked and explained (quiz --list)"),
]
# --8<-- [end:commands]


def _description(module) -> str:
    """The first paragraph of the module's docstring: what the command does."""
    return (module.__doc__ or "").strip().split("\n\n")[0].replace("\n", " ")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mini-nanochat", epilog=EPILOG,
        description="Build a ChatGPT-style LLM stage by stage (a teaching rebuild of nanochat).")
    parser.add_argument("--version", action="version", version=_version())
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    top = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    groups: dict[str, argparse._SubParsersAction] = {}
    for name, module_name, help_text in COMMANDS:
        group, _, action = name.rpartition(" ")
        if group and group not in groups:
            groups[group] = top.add_parser(group, help=GROUPS.get(group, "")).add_subparsers(
                dest=f"{group}_command", metavar="ACTION", required=True)
        module = importlib.import_module(module_name)
        extra = getattr(module, "HELP", "")      # a module's own notes (chat's slash commands), kept as written
        sub = (groups[group] if group else top).add_parser(
            action, help=help_text, description=_description(module),
            epilog=f"{extra.rstrip()}\n\n{EPILOG}" if extra else EPILOG,
            formatter_class=argparse.RawDescriptionHelpFormatter if extra else argparse.HelpFormatter)
        module.add_arguments(sub)
        sub.set_defaults(command_run=module.run)  # not "run": several commands have a --run option
    return parser


def _version() -> str:
    from mini_nanochat import __version__
    return f"mini-nanochat {__version__}"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_command(lambda: args.command_run(args))


if __name__ == "__main__":
    raise SystemExit(main())
