"""Pretraining as the finished project runs it: a re-export of ``phases/phase5_data/pretrain.py``.

The composition (Phase 3's optimizer + Phase 4's ranks + Phase 5's data on Phase 2's loop)
lives in Phase 5, where later phases can extend it; ``mini-nanochat pretrain`` mounts its
``add_arguments`` / ``run``.
"""
from phases.phase5_data.pretrain import PretrainConfig, load_config, pretrain, pretrain_recipe  # noqa: F401

__all__ = ["PretrainConfig", "load_config", "pretrain", "pretrain_recipe"]
