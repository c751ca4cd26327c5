"""Pretraining as the finished project runs it: every phase's part of a run, composed here.

The loop is Phase 2's. Each later phase hands it one part through a ``Recipe``:

- Phase 3: MuonAdamW, its momentum / weight-decay schedules and the depth auto-scaling;
- Phase 4: the ranks (torchrun's environment), DDP or ZeRO-2 gradient sync, rank-0 duties;
- Phase 5: the streaming, BOS-aligned best-fit packed loader with exact resume.

Phase 5 is the last pretraining phase, so the composition lives here, where Phase 8
(fine-tuning) can import and extend it. ``PretrainConfig`` is the union of the phases'
keys by composition (Phase 3's config + ``DistKeys`` + ``DataKeys``: no class inherits
twice), so one TOML file configures all of it. This is the one pretraining command line:
``add_arguments`` / ``run`` are mounted by ``mini-nanochat pretrain`` and run by
``python -m phases.phase5_data.pretrain``.

What it leaves out: fine-tuning (Phase 8 composes on top of ``pretrain_recipe``).

Run: ``mini-nanochat pretrain --config examples/cpu_demo.toml`` (one process),
``torchrun --standalone --nproc_per_node=2 -m mini_nanochat pretrain --config examples/cpu_ddp.toml``
(two), or ``mini-nanochat pretrain --config examples/gpu_d20_8xh100.toml --plan`` (the
plan of an 8-GPU run, printed on any machine).
"""
from __future__ import annotations

import argparse
import sys

from phases.common.console import UserError, command, positive_int
from phases.phase2_training import config as p2config
from phases.phase2_training.cli import FLAGS, add_training_arguments, config_from_args, run_training
from phases.phase2_training.recipe import Recipe
from phases.phase2_training.train import RunResult
from phases.phase3_optimizers import recipe as p3recipe
from phases.phase4_ddp import recipe as p4recipe
from phases.phase5_data import recipe as p5recipe
from phases.phase5_data.loader import DataKeys

# --8<-- [start:compose]
PretrainConfig = p2config.compose("PretrainConfig", p3recipe.MuonTrainConfig, p4recipe.DistKeys, DataKeys,
                                  module=__name__)


def load_config(path=None, overrides: dict | None = None):
    return p2config.load_config(path, overrides, cls=PretrainConfig)


def pretrain_recipe(base: Recipe | None = None) -> Recipe:
    """Phase 3's optimizer and auto-scaling + Phase 5's data, on ``base`` (default: Phase 2's)."""
    return p5recipe.recipe(p3recipe.recipe(base))


def pretrain(cfg, resume: bool = False, show_progress: bool = True, out=sys.stdout,
             launch: dict | None = None) -> RunResult:
    """Train on this process alone, or on every rank when launched by torchrun (Phase 4)."""
    return p4recipe.train(cfg, resume=resume, show_progress=show_progress, out=out, base=pretrain_recipe(),
                          launch=launch)
# --8<-- [end:compose]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_training_arguments(parser)
    parser.add_argument("--target-param-data-ratio", type=float,
                        help="training tokens per scaling parameter, used when num_iterations is -1")
    parser.add_argument("--optimizer", choices=("muon", "adamw"), help="muon (MuonAdamW, default) or adamw")
    parser.add_argument("--plan", action="store_true",
                        help="print the derived plan (batch, accumulation, horizon, LRs) for --world-size ranks "
                             "and exit; builds nothing but a meta-device model")
    parser.add_argument("--world-size", type=positive_int, help="ranks assumed by --plan (default 8); training "
                        "itself runs on the ranks torchrun starts")
    parser.add_argument("--vocab-size", type=positive_int, help="vocabulary assumed by --plan (default 32768)")


def run(args: argparse.Namespace) -> RunResult | None:
    flags = FLAGS + ("target_param_data_ratio", "optimizer")
    if args.plan:
        cfg = config_from_args(args, load_config, flags)
        print(p4recipe.describe_plan(cfg, args.world_size or 8, args.vocab_size or 32768, base=pretrain_recipe()))
        return None
    for flag, value in (("--world-size", args.world_size), ("--vocab-size", args.vocab_size)):
        if value is not None:     # silently training on 1 process would look like success
            raise UserError(f"{flag} only sets what --plan assumes; a training run takes its ranks from torchrun "
                            "(torchrun --standalone --nproc_per_node=N -m mini_nanochat pretrain ...) and its "
                            "vocabulary from the tokenizer")
    return run_training(args, load_config, pretrain, flags)


if __name__ == "__main__":
    from phases.phase4_ddp.dist import report_and_exit
    sys.exit(command("Pretrain a GPT (Phases 2-5) on one process or every torchrun rank.", add_arguments, run,
                     runner=report_and_exit))
