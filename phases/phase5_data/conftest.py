"""Fixtures for Phase 5's checkpoint: a tiny corpus and tokenizer, and the modules under test.

Each module can be swapped for your own: ``--impl PATH`` (or ``loader=PATH``) replaces the
loader, ``--impl packing=…``, ``--impl stream=…`` and ``--impl download=…`` the others.
"""
from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tiny_data(make_tiny_world):
    """A small corpus (a few stdlib modules, several shards) and a vocab-512 tokenizer."""
    return make_tiny_world("phase5", ("json", "textwrap", "argparse"), shard_chars=60_000)


@pytest.fixture(autouse=True)
def _base_dir(tiny_data, monkeypatch):
    monkeypatch.setenv("MINI_NANOCHAT_BASE_DIR", str(tiny_data["root"] / "base"))


@pytest.fixture(scope="session")
def loader_mod(impl_loader):
    """The loader module: ``PackedLoader``, ``make_data``, ``train``, ``DataConfig``."""
    return impl_loader("loader", "phases.phase5_data.loader", main=True)


@pytest.fixture(scope="session")
def packing(impl_loader):
    return impl_loader("packing", "phases.phase5_data.packing")


@pytest.fixture(scope="session")
def stream(impl_loader):
    return impl_loader("stream", "phases.phase5_data.stream")


@pytest.fixture(scope="session")
def download(impl_loader):
    return impl_loader("download", "phases.phase5_data.download")


@pytest.fixture(scope="session")
def grouped_dir(tiny_data, tmp_path_factory):
    """The same documents rewritten as 4 shards with row groups of 8 documents (many row groups)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from phases.phase0_tokenizer.shards import iter_texts
    texts = list(iter_texts(tiny_data["data_dir"], "all"))
    out = tmp_path_factory.mktemp("grouped")
    per = -(-len(texts) // 4)
    for i in range(4):
        pq.write_table(pa.table({"text": texts[i * per:(i + 1) * per]}), out / f"shard_{i:05d}.parquet",
                       row_group_size=8)
    return out
