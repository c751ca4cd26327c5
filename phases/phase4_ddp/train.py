"""One training command from 1 CPU process to 8 GPUs: Phase 2's loop under torchrun.

    torchrun --standalone --nproc_per_node=2 -m phases.phase4_ddp.train --config examples/cpu_ddp.toml

Nothing in the loop is specific to several processes; this module hands it a ``Recipe``
whose parts know their rank:

- ``derive``: Phase 3's plan with ``world_size`` = the number of ranks, so gradient
  accumulation = total batch / (device batch x sequence x ranks): the *same* total batch,
  hence the same training, whatever the world size (it must divide; the error says how);
- ``make_data``: the base recipe's streams with this rank's shard (``rank``, ``world_size``);
- ``make_optimizer``: Phase 3's MuonAdamW, or its ZeRO-2 subclass (``zero.py``) when
  ``grad_sync = "zero"``; the parameters are broadcast from rank 0 first;
- ``runtime``: ``DistRuntime`` (``dist.py``): DDP wrapping and ``no_sync`` when
  ``grad_sync = "ddp"``, val bpb and loss summed over ranks, rank-0-only console, metrics,
  samples and checkpoint files.

Checkpoints hold the optimizer state in the single-process layout (ZeRO gathers it on save
and slices it on load), so a run saved by W ranks resumes with any number of ranks.

What it leaves out: tensor/pipeline parallelism, elastic membership changes mid-run.

Run: the command above (``--set key=value`` overrides, ``--resume`` continues a run);
``python -m phases.phase4_ddp.train --config examples/cpu_ddp.toml`` is the 1-process run.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist

from phases.phase0_tokenizer.common import UserError
from phases.phase2_training import config as p2config
from phases.phase2_training import train as p2train
from phases.phase2_training.train import Recipe, RunResult
from phases.phase3_optimizers import train as p3train
from phases.phase3_optimizers.muon import MuonAdamW
from phases.phase4_ddp.dist import DistRuntime, FaultyLoader, distributed, parse_fault, report_and_exit
from phases.phase4_ddp.zero import ZeroMuonAdamW

GRAD_SYNCS = ("zero", "ddp")


@dataclass
class DistTrainConfig(p3train.MuonTrainConfig):
    """Phase 3's keys plus how the ranks cooperate."""
    grad_sync: str = "zero"       # "zero": ZeRO-2 inside MuonAdamW; "ddp": DistributedDataParallel
    dist_timeout: float = 300.0   # seconds a collective waits for a peer before every rank fails


def load_config(path=None, overrides: dict | None = None) -> DistTrainConfig:
    return p2config.load_config(path, overrides, cls=DistTrainConfig)


def base_recipe() -> Recipe:
    """Phase 3's parts: its derive (auto-scaling), MuonAdamW and schedules; Phase 2's data."""
    return Recipe(derive=p3train.derive, **p3train.RECIPE_PARTS)


def check(cfg) -> None:
    sync = getattr(cfg, "grad_sync", "ddp")
    if sync not in GRAD_SYNCS:
        raise UserError(f"grad_sync must be {' or '.join(GRAD_SYNCS)}, got {sync!r}")
    if getattr(cfg, "dist_timeout", 1.0) <= 0:
        raise UserError(f"dist_timeout must be > 0 seconds, got {cfg.dist_timeout}")


def recipe(runtime: DistRuntime, base: Recipe | None = None, fault: dict | None = None) -> Recipe:
    """``base``'s parts, each told this process's rank and the world size."""
    base = base or base_recipe()
    rank, world = runtime.rank, runtime.world_size

    def derive(cfg, vocab_size):
        return base.derive(cfg, vocab_size, world_size=world)      # grad_accum shrinks as ranks grow

    def make_data(cfg, tok, tok_file, device, show_progress):
        loader, val = base.make_data(cfg, tok, tok_file, device, show_progress, rank=rank, world_size=world)
        if fault is not None:
            loader = FaultyLoader(loader, fault, rank, derive(cfg, tok.vocab_size).grad_accum)
        return loader, val

    def make_optimizer(model, cfg, plan):
        if world > 1:                       # every rank starts from rank 0's weights, whatever its RNG
            for p in model.parameters():
                dist.broadcast(p.data, src=0)
        optimizer = base.make_optimizer(model, cfg, plan)
        if getattr(cfg, "grad_sync", "ddp") != "zero":
            return optimizer                # DDP averages the gradients; every rank steps the full state
        if not isinstance(optimizer, MuonAdamW):
            raise UserError(f"grad_sync = 'zero' shards Phase 3's MuonAdamW, not {type(optimizer).__name__}; "
                            "use grad_sync = 'ddp' with this optimizer")
        return ZeroMuonAdamW(optimizer.param_groups, rank, world)

    return dataclasses.replace(base, derive=derive, make_data=make_data, make_optimizer=make_optimizer,
                               runtime=runtime)


def train(cfg, resume: bool = False, show_progress: bool = True, out=sys.stdout,
          base: Recipe | None = None) -> RunResult:
    """Join torchrun's ranks (or run alone), train, and leave the process group on every exit path.

    ``base``: the recipe to distribute (default: Phase 3's); its ``derive`` must accept
    ``world_size=`` and its ``make_data`` ``rank=`` / ``world_size=`` (Phases 2, 3, 5's do).
    """
    check(cfg)
    fault_spec = os.environ.get("MINI_NANOCHAT_FAULT", "")
    fault = parse_fault(fault_spec) if fault_spec else None
    with distributed(cfg.device, getattr(cfg, "dist_timeout", 300.0)) as world:
        cfg = cfg.replace(device=str(world.device))
        runtime = DistRuntime(world, getattr(cfg, "grad_sync", "ddp"))
        rec = recipe(runtime, base, fault)
        tok, _ = p2train.load_tokenizer(cfg)
        plan = rec.derive(cfg, tok.vocab_size)           # -1 values resolved; the loop reads plan.config
        rec = dataclasses.replace(rec, derive=lambda _cfg, _vocab: plan)
        if world.is_master and world.backend:
            print(f"{world.world_size} ranks ({world.backend}), gradients synchronised by "
                  f"{'ZeRO-2 in the optimizer' if runtime.grad_sync == 'zero' else 'DistributedDataParallel'}"
                  f", timeout {getattr(cfg, 'dist_timeout', 300.0):g}s", file=out, flush=True)
        return p2train.train(plan.config, resume=resume, show_progress=show_progress, out=out, recipe=rec)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m phases.phase4_ddp.train",
        description="Pretrain on one or many processes; launch under torchrun for several.",
        epilog="Example: torchrun --standalone --nproc_per_node=2 -m phases.phase4_ddp.train "
               "--config examples/cpu_ddp.toml --set num_iterations=20")
    parser.add_argument("--config", type=Path, default=None, help="a TOML file (see examples/)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override any config key (repeatable)")
    parser.add_argument("--resume", action="store_true", help="continue from the run's latest good checkpoint")
    parser.add_argument("--no-progress", action="store_true", help="no live progress line")
    parser.add_argument("--plan", action="store_true",
                        help="print the derived plan (batch, accumulation, horizon, LRs) for --world-size ranks "
                             "and exit; builds nothing but a meta-device model")
    parser.add_argument("--world-size", type=int, default=8, help="ranks assumed by --plan (default 8)")
    parser.add_argument("--vocab-size", type=int, default=32768, help="vocabulary assumed by --plan")
    return parser.parse_args(argv)


def describe_plan(cfg, world_size: int, vocab_size: int, base: Recipe | None = None) -> str:
    """What a run on ``world_size`` ranks would do, without a GPU: the model is built on meta."""
    from phases.phase1_transformer.model import GPT
    check(cfg)
    plan = (base or base_recipe()).derive(cfg, vocab_size, world_size=world_size)
    with torch.device("meta"):                     # shapes only: d24 costs nothing
        model = GPT(plan.model)
    plan.num_params, plan.flops_per_token = model.param_counts()["total"], model.estimate_flops()
    return plan.describe() + f"\ngrad_sync: {getattr(cfg, 'grad_sync', 'ddp')} on {world_size} ranks"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    def run():
        cfg = load_config(args.config, p2config.parse_overrides(args.set))
        if args.plan:
            print(describe_plan(cfg, args.world_size, args.vocab_size))
            return
        result = train(cfg, resume=args.resume, show_progress=not args.no_progress)
        if int(os.environ.get("RANK", "0")) == 0:
            print(f"done: step {result.step}, val bpb {result.val_bpb:.4f} (best {result.min_val_bpb:.4f}), "
                  f"{result.train_time:.0f}s of training -> {result.run_dir}", flush=True)

    return report_and_exit(run)


if __name__ == "__main__":
    sys.exit(main())
