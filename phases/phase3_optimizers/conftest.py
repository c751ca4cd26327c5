"""Fixtures for Phase 3's checkpoint: the modules under test, a tiny corpus and run config.

``--impl=my_optim.py`` replaces both ``adamw`` and ``muon`` (one file defining ``AdamW``,
``orthogonalize`` and ``MuonAdamW``); ``--impl adamw=…`` / ``--impl muon=…`` /
``--impl scaling=…`` / ``--impl recipe=…`` replace one module each.
"""
from __future__ import annotations

import pytest

from conftest import impl_fixture

adamw = impl_fixture("adamw", "phases.phase3_optimizers.adamw", main=True, doc="Must define AdamW.")
muon = impl_fixture("muon", "phases.phase3_optimizers.muon", main=True,
                    doc="Must define orthogonalize and MuonAdamW.")
scaling = impl_fixture("scaling", "phases.phase3_optimizers.scaling", doc="Must define table, scale, depth_scaling.")
recipe = impl_fixture("recipe", "phases.phase3_optimizers.recipe",
                      doc="Must define MuonTrainConfig, derive, param_groups, set_hparams, recipe and train.")


@pytest.fixture(scope="session")
def tiny_world(make_tiny_world):
    """A small corpus (two stdlib modules) and a vocab-512 tokenizer trained on it."""
    return make_tiny_world("p3_world", ("json", "textwrap"))


@pytest.fixture
def tiny_cfg(tiny_world, tmp_path, monkeypatch, recipe):
    """A seconds-long MuonAdamW run: depth 2, width 64, 32-token rows, 128-token batches.

    ``reference_batch_size`` = the batch, so the LR batch scale is 1 and the LRs are
    nanochat's own (times the width scale for AdamW groups).
    """
    monkeypatch.setenv("MINI_NANOCHAT_BASE_DIR", str(tiny_world["root"] / "base"))
    return recipe.MuonTrainConfig(
        depth=2, aspect_ratio=32, head_dim=32, sequence_len=32, device_batch_size=4, total_batch_size=128,
        reference_batch_size=128, num_iterations=12, warmup_steps=2, muon_momentum_warmup=4,
        eval_every=4, eval_tokens=2048, save_every=4, sample_tokens=4, data_dir=tiny_world["data_dir"],
        tokenizer_dir=tiny_world["tokenizer_dir"], run_dir=str(tmp_path / "run"))
