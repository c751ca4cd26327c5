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
def tiny_tokenized(make_tiny_world):
    """A tiny corpus (json, textwrap) and a vocab-512 tokenizer trained on it, for tool tests."""
    return make_tiny_world("tiny_tokenized", ("json", "textwrap"))
