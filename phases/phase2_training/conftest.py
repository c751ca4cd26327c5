"""Fixtures for Phase 2's checkpoint: the modules under test, a tiny corpus, tokenizer and run config.

Each module can be swapped: ``--impl schedule=my_schedule.py``, ``--impl data=…``,
``--impl evaluate=…``, and ``--impl PATH`` (or ``train=PATH``) for the loop itself.
"""
from __future__ import annotations

import pytest

from conftest import impl_fixture

schedule = impl_fixture("schedule", "phases.phase2_training.schedule", doc="Must define lr_multiplier.")
data = impl_fixture("data", "phases.phase2_training.data", doc="Must define TokenLoader and eval_batches.")
evaluate = impl_fixture("evaluate", "phases.phase2_training.evaluate", doc="Must define evaluate_bpb.")
trainer = impl_fixture("train", "phases.phase2_training.train", main=True, fixture="trainer",
                       doc="Must define train(cfg, resume=False, show_progress=True) honouring stop_after_step.")


@pytest.fixture(scope="session")
def tiny_world(make_tiny_world):
    """A small corpus (a few stdlib modules) and a vocab-512 tokenizer trained on it."""
    return make_tiny_world("tiny_world", ("json", "textwrap", "argparse"))


@pytest.fixture(autouse=True)
def _base_dir(tiny_world, monkeypatch):
    monkeypatch.setenv("MINI_NANOCHAT_BASE_DIR", str(tiny_world["root"] / "base"))


@pytest.fixture
def tiny_cfg(tiny_world, tmp_path):
    """A seconds-long run: depth 2, width 64, 32-token rows."""
    from phases.phase2_training.config import TrainConfig
    return TrainConfig(depth=2, aspect_ratio=32, head_dim=32, sequence_len=32, device_batch_size=4,
                       num_iterations=12, warmup_steps=2, eval_every=4, eval_tokens=2048, save_every=4,
                       sample_tokens=4, data_dir=tiny_world["data_dir"], tokenizer_dir=tiny_world["tokenizer_dir"],
                       run_dir=str(tmp_path / "run"), matrix_lr=0.01, embedding_lr=0.02, unembedding_lr=0.01)
