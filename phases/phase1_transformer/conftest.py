"""Fixtures for Phase 1's checkpoint: the model module under test (swappable with ``--impl``)."""
from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def gpt(impl_loader):
    """The model module: must define ``GPTConfig`` and ``GPT`` (``--impl PATH`` replaces it)."""
    return impl_loader("model", "phases.phase1_transformer.model", main=True)


@pytest.fixture
def tiny_config(gpt):
    """Small enough for CPU tests, big enough to have every feature: 4 layers, GQA, windows."""
    return gpt.GPTConfig.from_depth(4, vocab_size=256, sequence_len=64, aspect_ratio=16, head_dim=16,
                                    n_kv_head=2, window_pattern="SSSL")


@pytest.fixture(scope="session")
def layers(impl_loader):
    """The layers module (attention paths, the softcap loss): ``--impl layers=PATH`` replaces it."""
    return impl_loader("layers", "phases.phase1_transformer.layers")


@pytest.fixture(scope="session")
def sampling(impl_loader):
    """The sampler (temperature, top-k, top-p): ``--impl sampling=PATH`` replaces it."""
    return impl_loader("sampling", "phases.phase1_transformer.sampling")
