"""Fixtures for Phase 2's checkpoint: a tiny corpus, tokenizer and model config, built once."""
from __future__ import annotations

import pytest


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


# The modules under test; each can be swapped: --impl schedule=my_schedule.py, --impl data=…,
# --impl evaluate=…, and --impl PATH (or train=PATH) for the loop itself.
@pytest.fixture(scope="session")
def schedule(impl_loader):
    return impl_loader("schedule", "phases.phase2_training.schedule")


@pytest.fixture(scope="session")
def data(impl_loader):
    return impl_loader("data", "phases.phase2_training.data")


@pytest.fixture(scope="session")
def evaluate(impl_loader):
    return impl_loader("evaluate", "phases.phase2_training.evaluate")


@pytest.fixture(scope="session")
def trainer(impl_loader):
    """The loop module: must define ``train(cfg, resume=False, show_progress=True)``."""
    return impl_loader("train", "phases.phase2_training.train", main=True)
