"""Pretraining as the finished project runs it: every phase's part of a run, put together.

The loop is Phase 2's. Each later phase hands it one part through a ``Recipe``:

- Phase 3: MuonAdamW, its momentum / weight-decay schedules and the depth auto-scaling;
- Phase 4: the ranks (torchrun's environment), DDP or ZeRO-2 gradient sync, rank-0 duties;
- Phase 5: the streaming, BOS-aligned best-fit packed loader with exact resume.

Phases only import earlier phases, so no phase can combine Phase 4 with Phase 5; this top
layer does. ``PretrainConfig`` is the union of their keys, so one TOML file configures all.

Run: ``mini-nanochat pretrain --config examples/cpu_demo.toml`` (one process) or
``torchrun --standalone --nproc_per_node=2 -m mini_nanochat pretrain --config examples/cpu_ddp.toml``.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from phases.phase2_training import config as p2config
from phases.phase2_training.train import RunResult
from phases.phase4_ddp import train as p4train
from phases.phase5_data import loader as p5loader


@dataclass
class PretrainConfig(p4train.DistTrainConfig, p5loader.DataConfig):
    """Phase 2's keys + Phase 3's optimizer keys + Phase 4's grad_sync + Phase 5's loader keys."""


def load_config(path: str | Path | None = None, overrides: dict | None = None) -> PretrainConfig:
    return p2config.load_config(path, overrides, cls=PretrainConfig)


def pretrain(cfg: PretrainConfig, resume: bool = False, show_progress: bool = True,
             out=sys.stdout) -> RunResult:
    """Train on this process alone, or on every rank when launched by torchrun."""
    base = p5loader.recipe(p4train.base_recipe())     # Phase 3's optimizer, Phase 5's data
    return p4train.train(cfg, resume=resume, show_progress=show_progress, out=out, base=base)
