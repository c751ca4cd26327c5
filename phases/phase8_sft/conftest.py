"""Fixtures for Phase 8's checkpoint: a tokenizer that knows the chat data, and the modules under test.

Each module can be swapped for your own: ``--impl PATH`` (or ``sft=PATH``) replaces the SFT
recipe, ``--impl rows=…``, ``--impl grpo=…``, ``--impl offline=…``, ``--impl rl=…`` and
``--impl conversations=…`` the others.
"""
from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def chat_tok():
    """A vocab-600 tokenizer trained on the offline conversations (seconds)."""
    from phases.phase0_tokenizer.bpe import BPETokenizer
    from phases.phase8_sft.offline import TASKS, generate

    texts = []
    for task in TASKS:
        for conv in generate(task, "train", 200):
            for m in conv["messages"]:
                parts = m["content"] if isinstance(m["content"], list) else [{"text": m["content"]}]
                texts += [p["text"] for p in parts]
    return BPETokenizer.train(texts, vocab_size=600)


@pytest.fixture(scope="session")
def offline(impl_loader):
    return impl_loader("offline", "phases.phase8_sft.offline")


@pytest.fixture(scope="session")
def conversations(impl_loader):
    return impl_loader("conversations", "phases.phase8_sft.conversations")


@pytest.fixture(scope="session")
def rows(impl_loader):
    return impl_loader("rows", "phases.phase8_sft.rows")


@pytest.fixture(scope="session")
def grpo(impl_loader):
    return impl_loader("grpo", "phases.phase8_sft.grpo")


@pytest.fixture(scope="session")
def template(impl_loader):
    return impl_loader("template", "phases.phase8_sft.template")
