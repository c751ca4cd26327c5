"""Fixtures for Phase 0's checkpoint: the modules under test (swappable with ``--impl``)."""
from __future__ import annotations

from pathlib import Path

import pytest

GOLDEN_TEXT = Path(__file__).parent / "testdata" / "golden.txt"
GOLDEN_VOCAB = 512


@pytest.fixture(scope="session")
def bpe(impl_loader):
    """The tokenizer module: must define ``BPETokenizer`` (``--impl PATH`` replaces it)."""
    return impl_loader("bpe", "phases.phase0_tokenizer.bpe", main=True)


@pytest.fixture(scope="session")
def chat(impl_loader):
    """The chat-format module: ``render_conversation``, ``render_for_completion``."""
    return impl_loader("chat", "phases.phase0_tokenizer.chat")


@pytest.fixture(scope="session")
def golden_text() -> str:
    return GOLDEN_TEXT.read_text(encoding="utf-8")


@pytest.fixture(scope="session")
def golden_tok(bpe, golden_text):
    """A tokenizer trained on the committed golden text: the same on every machine."""
    return bpe.BPETokenizer.train([golden_text], vocab_size=GOLDEN_VOCAB)
