"""One training run from 1 CPU process to 8 GPUs: Phase 2's loop, with every part told its rank.

Nothing in the loop is specific to several processes. ``distribute(recipe, runtime)`` takes
any recipe (Phase 3's, or Phase 5's pretraining recipe) and makes it run on the ranks of
``runtime``:

- ``derive`` and ``make_data`` need nothing new: the loop hands them the ``Runtime``, so
  gradient accumulation = total batch / (device batch x sequence x ranks): the *same* total
  batch, hence the same training, whatever the world size (it must divide; the error says
  how), and each rank reads its own shard of the data;
- ``make_optimizer``: every rank starts from rank 0's weights (a broadcast), then the
  recipe's optimizer, or its ZeRO-2 subclass (``zero.py``) when ``grad_sync = "zero"``;
- ``runtime``: ``DistRuntime`` (``dist.py``): DDP wrapping and ``no_sync`` when
  ``grad_sync = "ddp"``, val bpb and loss summed over ranks, rank-0-only console, metrics,
  samples and checkpoint files.

``train(cfg, base=...)`` joins torchrun's process group (or runs alone), distributes
``base`` and runs the loop. Checkpoints hold the optimizer state in the single-process
layout (ZeRO gathers it on save and slices it on load), so a run saved by W ranks resumes
with any number of ranks. The command line is the one pretraining command:

    torchrun --standalone --nproc_per_node=2 -m mini_nanochat pretrain --config examples/cpu_ddp.toml

What it leaves out: tensor/pipeline parallelism, elastic membership changes mid-run.

Run nothing here directly: ``mini-nanochat pretrain --config examples/cpu_ddp.toml --plan
--world-size 8`` prints the plan of a run on 8 ranks without any GPU (``describe_plan``).
"""
from __future__ import annotations

import dataclasses
import os
import sys
from dataclasses import dataclass

import torch.distributed as dist

from phases.common.console import UserError
from phases.phase2_training import config as p2config
from phases.phase2_training import train as p2train
from phases.phase2_training.recipe import Recipe, Runtime
from phases.phase2_training.train import RunResult
from phases.phase3_optimizers import recipe as p3recipe
from phases.phase3_optimizers.muon import MuonAdamW
from phases.phase4_ddp.dist import DistRuntime, FaultyLoader, distributed, parse_fault
from phases.phase4_ddp.zero import ZeroMuonAdamW

GRAD_SYNCS = ("zero", "ddp")


# --8<-- [start:config]
@dataclass
class DistKeys:
    """How the ranks cooperate: the keys this phase adds to any training config."""
    grad_sync: str = "zero"       # "zero": ZeRO-2 inside MuonAdamW; "ddp": DistributedDataParallel
    dist_timeout: float = 300.0   # seconds a collective waits for a peer before every rank fails


DistKeys.limits = {"grad_sync": p2config.one_of(*GRAD_SYNCS), "dist_timeout": p2config.above(0)}
DistTrainConfig = p2config.compose("DistTrainConfig", p3recipe.MuonTrainConfig, DistKeys, module=__name__)
# --8<-- [end:config]


def load_config(path=None, overrides: dict | None = None):
    return p2config.load_config(path, overrides, cls=DistTrainConfig)


def check(cfg) -> None:
    """The keys of ``DistKeys`` (a config without them is a programming error, not a default), then every key."""
    if cfg.grad_sync not in GRAD_SYNCS:
        raise UserError(f"grad_sync must be {' or '.join(GRAD_SYNCS)}, got {cfg.grad_sync!r}")
    p2config.check_config(cfg)


# --8<-- [start:distribute]
def distribute(recipe: Recipe, runtime: Runtime, fault: dict | None = None) -> Recipe:
    """``recipe`` on the ranks of ``runtime``: shared initial weights, ZeRO or DDP, rank-aware duties."""

    def make_data(cfg, tok, tok_file, device, rt, show_progress):
        loader, val = recipe.make_data(cfg, tok, tok_file, device, rt, show_progress)
        if fault is not None:                # the fault drill: fail on purpose on one rank
            loader = FaultyLoader(loader, fault, rt.rank, recipe.derive(cfg, tok.vocab_size, rt).grad_accum)
        return loader, val

    def make_optimizer(model, cfg, plan):
        if runtime.world_size > 1:          # every rank starts from rank 0's weights, whatever its RNG
            for p in model.parameters():
                dist.broadcast(p.data, src=0)
        optimizer = recipe.make_optimizer(model, cfg, plan)
        if cfg.grad_sync != "zero":
            return optimizer                # DDP averages the gradients; every rank steps the full state
        if not isinstance(optimizer, MuonAdamW):
            raise UserError(f"grad_sync = 'zero' shards Phase 3's MuonAdamW, not {type(optimizer).__name__}; "
                            "use grad_sync = 'ddp' with this optimizer")
        return ZeroMuonAdamW(optimizer.param_groups, runtime.rank, runtime.world_size)

    return dataclasses.replace(recipe, make_data=make_data, make_optimizer=make_optimizer, runtime=runtime)
# --8<-- [end:distribute]


# --8<-- [start:train]
def train(cfg, resume: bool = False, show_progress: bool = True, out=sys.stdout,
          base: Recipe | None = None, launch: dict | None = None) -> RunResult:
    """Join torchrun's ranks (or run alone), train ``base`` (default: Phase 3's recipe) on them,
    and leave the process group on every exit path."""
    check(cfg)
    fault_spec = os.environ.get("MINI_NANOCHAT_FAULT", "")
    fault = parse_fault(fault_spec) if fault_spec else None
    with distributed(cfg.device, cfg.dist_timeout) as world:
        cfg = cfg.replace(device=str(world.device))
        runtime = DistRuntime(world, cfg.grad_sync)
        if world.is_master and world.backend:
            print(f"{world.world_size} ranks ({world.backend}), gradients synchronised by "
                  f"{'ZeRO-2 in the optimizer' if cfg.grad_sync == 'zero' else 'DistributedDataParallel'}"
                  f", timeout {cfg.dist_timeout:g}s", file=out, flush=True)
        recipe = distribute(base or p3recipe.recipe(), runtime, fault)
        return p2train.train(cfg, resume=resume, show_progress=show_progress, out=out, recipe=recipe, launch=launch)
# --8<-- [end:train]


def describe_plan(cfg, world_size: int, vocab_size: int, base: Recipe | None = None) -> str:
    """What a run on ``world_size`` ranks would do, without a GPU (derive counts on the meta device)."""
    from phases.phase2_training.schedule import schedule_notes
    check(cfg)
    plan = (base or p3recipe.recipe()).derive(cfg, vocab_size, Runtime(0, world_size))
    c = plan.config
    return "\n".join([plan.describe(), f"grad_sync: {cfg.grad_sync} on {world_size} ranks",
                      *(f"warning: {n}" for n in schedule_notes(c.num_iterations, c.warmup_steps, c.warmdown_ratio))])
