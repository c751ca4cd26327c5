"""Fixtures for Phase 0's checkpoint: the modules under test (swappable with ``--impl``)."""
from __future__ import annotations

from pathlib import Path

import pytest

from conftest import impl_fixture

GOLDEN_TEXT = Path(__file__).parent / "testdata" / "golden.txt"
GOLDEN_VOCAB = 512


bpe = impl_fixture("bpe", "phases.phase0_tokenizer.bpe", main=True, doc="Must define BPETokenizer.")
chat = impl_fixture("chat", "phases.phase0_tokenizer.chat", doc="Must define render_conversation, render_for_completion.")


@pytest.fixture(scope="session")
def golden_text() -> str:
    return GOLDEN_TEXT.read_text(encoding="utf-8")


@pytest.fixture(scope="session")
def golden_tok(bpe, golden_text):
    """A tokenizer trained on the committed golden text: the same on every machine."""
    return bpe.BPETokenizer.train([golden_text], vocab_size=GOLDEN_VOCAB)
