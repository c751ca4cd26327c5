"""Fixtures for Phase 5's checkpoint: a tiny corpus and tokenizer, and the modules under test.

Each module can be swapped for your own: ``--impl PATH`` (or ``loader=PATH``) replaces the
loader, ``--impl packing=…``, ``--impl stream=…`` and ``--impl download=…`` the others.
"""
from __future__ import annotations

import pytest

from conftest import impl_fixture

loader_mod = impl_fixture("loader", "phases.phase5_data.loader", main=True, fixture="loader_mod",
                          doc="Must define PackedLoader, make_data and DataConfig.")
packing = impl_fixture("packing", "phases.phase5_data.packing", doc="Must define pack, PAD and the packers.")
stream = impl_fixture("stream", "phases.phase5_data.stream", doc="Must define shard_units, DocumentStream, TokenizedDocs.")
download = impl_fixture("download", "phases.phase5_data.download", doc="Must define download, add_arguments, run.")


@pytest.fixture(scope="session")
def tiny_data(make_tiny_world):
    """A small corpus (a few stdlib modules, several shards) and a vocab-512 tokenizer."""
    return make_tiny_world("phase5", ("json", "textwrap", "argparse"), shard_chars=60_000)


@pytest.fixture(autouse=True)
def _base_dir(tiny_data, monkeypatch):
    monkeypatch.setenv("MINI_NANOCHAT_BASE_DIR", str(tiny_data["root"] / "base"))


@pytest.fixture(scope="session")
def grouped_dir(tiny_data, tmp_path_factory):
    """The same documents rewritten as 4 shards with row groups of 8 documents (many row groups)."""
    from phases.phase0_tokenizer.shards import iter_texts, shard_name, write_shard
    texts = list(iter_texts(tiny_data["data_dir"], "all"))
    out = tmp_path_factory.mktemp("grouped")
    per = -(-len(texts) // 4)
    for i in range(4):
        write_shard(out / shard_name(i), texts[i * per:(i + 1) * per], row_group_size=8)
    return out
