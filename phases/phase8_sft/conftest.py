"""Fixtures for Phase 8's checkpoint: a tokenizer that knows the chat data, and the modules under test.

Each module can be swapped for your own: ``--impl PATH`` (or ``sft=PATH``) replaces the SFT
recipe, ``--impl rows=…``, ``--impl grpo=…``, ``--impl offline=…``, ``--impl rl=…`` and
``--impl conversations=…`` the others.
"""
from __future__ import annotations

import pytest

from conftest import impl_fixture  # the repository root conftest: registers the name for --impl


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


offline = impl_fixture("offline", "phases.phase8_sft.offline")


conversations = impl_fixture("conversations", "phases.phase8_sft.conversations")


rows = impl_fixture("rows", "phases.phase8_sft.rows")


grpo = impl_fixture("grpo", "phases.phase8_sft.grpo")


template = impl_fixture("template", "phases.phase8_sft.template")


sft = impl_fixture("sft", "phases.phase8_sft.sft", main=True, doc='The SFT module: ``recipe``, ``load_config``, ``sft``, ``SFTConfig``.')


rl = impl_fixture("rl", "phases.phase8_sft.rl")


mixture = impl_fixture("mixture", "phases.phase8_sft.mixture")


@pytest.fixture(scope="session")
def tiny_base(make_tiny_world):
    """A tiny pretrained run (depth 2, width 64, rows of 128 tokens, 40 steps): what SFT starts from.

    Returns the world ({"root", "data_dir", "tokenizer_dir", "tok"}) plus "base": the run folder.
    """
    import os

    from phases.phase5_data.pretrain import load_config, pretrain
    world = make_tiny_world("phase8", ("json", "textwrap"))
    old = os.environ.get("MINI_NANOCHAT_BASE_DIR")
    os.environ["MINI_NANOCHAT_BASE_DIR"] = str(world["root"] / "base")
    try:
        cfg = load_config(None, dict(
            depth=2, aspect_ratio=32, head_dim=32, sequence_len=128, device_batch_size=4, total_batch_size=512,
            num_iterations=40, warmup_steps=2, eval_every=0, eval_tokens=1024, save_every=0, sample_tokens=2,
            data_dir=world["data_dir"], tokenizer_dir=world["tokenizer_dir"], run_dir=str(world["root"] / "base_run"),
            matrix_lr=0.32, embedding_lr=0.6, unembedding_lr=0.05, tokenizer_threads=1, doc_buffer=64))
        pretrain(cfg, show_progress=False)
    finally:
        if old is None:
            os.environ.pop("MINI_NANOCHAT_BASE_DIR", None)
        else:
            os.environ["MINI_NANOCHAT_BASE_DIR"] = old
    return {**world, "base": str(world["root"] / "base_run")}


@pytest.fixture(autouse=True)
def _base_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("MINI_NANOCHAT_BASE_DIR", str(tmp_path / "base"))
