"""Fixtures for Phase 1's checkpoint: the model module under test (swappable with ``--impl``)."""
from __future__ import annotations

import pytest

from conftest import impl_fixture

gpt = impl_fixture("model", "phases.phase1_transformer.model", main=True, fixture="gpt",
                   doc="Must define GPTConfig and GPT.")
layers = impl_fixture("layers", "phases.phase1_transformer.layers",
                      doc="The attention paths and the softcap loss.")
sampling = impl_fixture("sampling", "phases.phase1_transformer.sampling", doc="Temperature, top-k, top-p.")


@pytest.fixture
def tiny_config(gpt):
    """Small enough for CPU tests, big enough to have every feature: 4 layers, GQA, windows."""
    return gpt.GPTConfig.from_depth(4, vocab_size=256, sequence_len=64, aspect_ratio=16, head_dim=16,
                                    n_kv_head=2, window_pattern="SSSL")

