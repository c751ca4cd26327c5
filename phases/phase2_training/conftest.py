"""Fixtures for Phase 2's checkpoint: a tiny corpus, tokenizer and model config, built once."""
from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tiny_world(tmp_path_factory):
    """A small corpus (a few stdlib modules) and a vocab-512 tokenizer trained on it."""
    from phases.phase0_tokenizer.bpe import BPETokenizer
    from phases.phase0_tokenizer.corpus import build_embedded_corpus, iter_texts
    root = tmp_path_factory.mktemp("tiny_world")
    info = build_embedded_corpus(root / "data", packages=(), stdlib_modules=("json", "textwrap", "argparse"),
                                 shard_chars=100_000, show_progress=False)
    tok = BPETokenizer.train(iter_texts(info.out_dir, "train"), vocab_size=512)
    tok.save(root / "tokenizer")
    return {"root": root, "data_dir": str(info.out_dir), "tokenizer_dir": str(root / "tokenizer")}


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
