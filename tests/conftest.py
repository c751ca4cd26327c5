"""Fixtures for project-level tests: a tiny corpus built once per session."""
from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory):
    """A small embedded corpus (a few stdlib modules + pydoc topics): seconds, not a minute."""
    from phases.phase0_tokenizer.corpus import build_embedded_corpus
    out = tmp_path_factory.mktemp("tiny_corpus")
    return build_embedded_corpus(out, packages=(), stdlib_modules=("json", "textwrap", "argparse", "pathlib"),
                                 shard_chars=200_000, show_progress=False)


@pytest.fixture
def isolated_base(tmp_path, monkeypatch):
    """Point MINI_NANOCHAT_BASE_DIR at a temporary folder for one test."""
    base = tmp_path / "base"
    monkeypatch.setenv("MINI_NANOCHAT_BASE_DIR", str(base))
    return base


@pytest.fixture(scope="session")
def tiny_tokenized(tmp_path_factory):
    """A tiny corpus (json, textwrap) and a vocab-512 tokenizer trained on it, for tool tests."""
    from phases.phase0_tokenizer.bpe import BPETokenizer
    from phases.phase0_tokenizer.corpus import build_embedded_corpus, iter_texts
    root = tmp_path_factory.mktemp("tiny_tokenized")
    info = build_embedded_corpus(root / "data", packages=(), stdlib_modules=("json", "textwrap"),
                                 shard_chars=100_000, show_progress=False)
    BPETokenizer.train(iter_texts(info.out_dir, "train"), vocab_size=512).save(root / "tokenizer")
    return {"data_dir": str(info.out_dir), "tokenizer_dir": str(root / "tokenizer")}
