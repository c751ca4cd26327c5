"""The training command line: the flags of ``mini-nanochat pretrain`` (SFT, RL) -> a config and a run.

``add_training_arguments`` adds the flags every training command shares: a TOML file
(``--config``), ``--set KEY=VALUE`` overrides, dedicated flags for the settings people change
most (``--depth``, ``--num-iterations``, ...) and ``--resume``. ``config_from_args`` reads them
in order of precedence (defaults < ``--config`` < ``--set`` < the dedicated flags) and refuses a
setting given twice with two values. ``run_training`` builds the config, calls a training
function (Phase 2's ``train`` or a later phase's, chosen by the caller) and prints the done
line; after Ctrl-C it prints the command that continues the run (``resume_command``).

Kept apart from ``train.py`` so the loop is the loop: a learner who writes their own
(``pytest phases/phase2_training --impl=my_train.py``) writes no argument parsing.

What it leaves out: the subcommands themselves (``phases/phase5_data/pretrain.py``,
``phases/phase8_sft/sft.py`` and ``rl.py`` mount these pieces; ``mini-nanochat`` mounts those).

Run: ``mini-nanochat pretrain --help`` shows the flags.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import shlex
import sys
from pathlib import Path

from phases.common.console import UserError, path_arg, positive_int
from phases.phase2_training.config import TrainConfig, _coerce, parse_overrides
from phases.phase2_training.train import RunResult


FLAGS = ("depth", "num_iterations", "device_batch_size", "total_batch_size", "run_name", "run_dir", "save_every",
         "eval_every", "stop_after_step", "seed", "device", "compile")


def add_training_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of a training command: a TOML file, ``--set`` overrides, dedicated flags, --resume."""
    add = parser.add_argument
    add("--config", type=path_arg, default=None, help="a TOML file (see examples/)")
    add("--depth", type=positive_int, help="the dial: model depth (width and heads follow)")
    add("--num-iterations", type=int, help="optimizer steps (-1: from the tokens:params ratio)")
    add("--device-batch-size", type=positive_int, help="rows per forward/backward")
    add("--total-batch-size", type=int, help="tokens per optimizer step (-1: from the depth)")
    add("--run-name", help="run folder name under <base>/runs")
    add("--run-dir", type=path_arg, help="run folder (overrides --run-name)")
    add("--save-every", type=int, help="checkpoint every N steps (0 = only at the end)")
    add("--eval-every", type=int, help="validation bpb every N steps (0 = only at the end)")
    add("--stop-after-step", type=int, help="checkpoint and stop after step N; --resume continues later")
    add("--seed", type=int, help="random seed")
    add("--device", help="cpu, cuda, cuda:1, mps (default: cuda if available)")
    add("--compile", action="store_true", default=None, help="torch.compile the model")
    add("--resume", action="store_true", help="continue from the run's latest good checkpoint")
    add("--set", action="append", default=[], metavar="KEY=VALUE",
        help="override any config key, e.g. --set matrix_lr=0.004 (repeatable)")


def _same_value(flag: str, a, b) -> bool:
    """``--set compile=true`` and ``--compile`` agree: both are read as the config reads them."""
    f = next((f for f in dataclasses.fields(TrainConfig) if f.name == flag), None)
    if f is None:
        return str(a) == str(b)
    try:
        return _coerce(f, a, "--set") == _coerce(f, b, f"--{flag}")
    except UserError:
        return False


def config_from_args(args: argparse.Namespace, load_config, flags: tuple[str, ...] = FLAGS) -> TrainConfig:
    """Defaults < --config < --set < the dedicated ``flags``; ``load_config(path, overrides)`` picks the class."""
    overrides = parse_overrides(args.set)
    for flag in flags:
        value = getattr(args, flag, None)
        if value is not None:
            value = str(value) if isinstance(value, Path) else value
            if flag in overrides and not _same_value(flag, overrides[flag], value):   # one would be dropped unseen
                raise UserError(f"{flag} is given twice: --set {flag}={overrides[flag]} and "
                                f"--{flag.replace('_', '-')} {value}; keep one")
            overrides[flag] = value
    return load_config(args.config, overrides)


def resume_command(argv: list[str] | None = None) -> str:
    """The command that started this process, plus ``--resume``: what continues the run after Ctrl-C."""
    argv = list(sys.argv if argv is None else argv)
    args = [a for a in argv[1:] if a != "--resume"]
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        return "the same torchrun command with --resume"
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)   # `python -m X`: X; the installed script: None
    module = spec.name.removesuffix(".__main__") if spec is not None else None
    program = "mini-nanochat" if module in (None, "mini_nanochat") else f"python -m {module}"
    return " ".join([program, *map(shlex.quote, args), "--resume"])


def run_training(args: argparse.Namespace, load_config, train, flags: tuple[str, ...] = FLAGS) -> RunResult:
    """Config from the flags, ``train(cfg, resume=..., show_progress=..., launch=...)``, and the done line (rank 0)."""
    cfg = config_from_args(args, load_config, flags)
    launch = {"config": str(Path(args.config).expanduser().resolve()) if args.config else None}
    try:
        result = train(cfg, resume=args.resume, show_progress=not getattr(args, "no_progress", False), launch=launch)
    except KeyboardInterrupt:
        if int(os.environ.get("RANK", "0")) == 0:
            print(f"to continue: {resume_command()}", file=sys.stderr, flush=True)
        raise
    if result.is_master:
        print(f"{'stopped' if result.stopped else 'done'}: step {result.step}, val bpb {result.val_bpb:.4f} "
              f"(best {result.min_val_bpb:.4f}), {result.train_time:.0f}s of training -> {result.run_dir}", flush=True)
    return result
