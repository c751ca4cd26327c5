"""Project-wide pytest setup: the ``--impl`` option and the ``gpu`` marker.

``--impl`` lets a learner run a phase's checkpoint tests against their own code:

    pytest phases/phase0_tokenizer --impl=my_tokenizer.py        # the phase's main module
    pytest phases/phase0_tokenizer --impl chat=my_chat.py        # one named module

Each phase's ``conftest.py`` asks ``impl_loader`` for the modules it tests; the loader
returns the learner's file when one was given, else the reference module.
"""
from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path

import pytest


def pytest_addoption(parser):
    parser.addoption(
        "--impl", action="append", default=[], metavar="[NAME=]PATH",
        help="run a phase's checkpoint tests against your own module: PATH replaces the "
             "phase's main module, NAME=PATH replaces the module NAME (e.g. chat=my_chat.py)")


def _parse_impls(config) -> dict[str | None, Path]:
    impls: dict[str | None, Path] = {}
    for spec in config.getoption("--impl"):
        name, sep, path = spec.partition("=")
        if not sep:
            name, path = None, spec
        p = Path(path).expanduser()
        if not p.is_file() or p.suffix != ".py":
            raise pytest.UsageError(f"--impl {spec}: {p} is not a .py file")
        impls[name] = p.resolve()
    return impls


def pytest_configure(config):
    config._mini_impls = _parse_impls(config)
    # Test models are tiny: one intra-op thread is as fast, and it avoids OpenMP threads
    # spinning against each other when the machine is busy (10x slowdowns seen on 2 cores).
    import os

    import torch
    torch.set_num_threads(int(os.environ.get("MINI_NANOCHAT_TEST_THREADS", "1")))


def pytest_report_header(config):
    impls = getattr(config, "_mini_impls", {})
    if impls:
        return ["implementation under test: " + ", ".join(
            f"{name or 'main'}={path}" for name, path in impls.items())]
    return None


def pytest_collection_modifyitems(config, items):
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def impl_loader(request):
    """``impl_loader(name, reference, main=False)`` -> the module under test."""
    impls = request.config._mini_impls
    loaded: dict[str, object] = {}

    def load(name: str, reference: str, main: bool = False):
        path = impls.get(name) or (impls.get(None) if main else None)
        if path is None:
            return importlib.import_module(reference)
        if name not in loaded:
            spec = importlib.util.spec_from_file_location(f"learner_impl_{name}", path)
            module = importlib.util.module_from_spec(spec)
            sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
            spec.loader.exec_module(module)
            loaded[name] = module
        return loaded[name]

    return load


@pytest.fixture(scope="session")
def make_tiny_world(tmp_path_factory):
    """``make_tiny_world(name, modules, shard_chars=100_000)`` -> a tiny corpus and tokenizer.

    The docstrings of a few stdlib ``modules`` as parquet shards, and a vocab-512 BPE
    tokenizer trained on them, under a fresh folder: the small world that the checkpoint
    tests of Phases 2-5 and the tool tests train on. Returns {"root", "data_dir",
    "tokenizer_dir", "tok"} (paths as strings, ``tok`` the trained tokenizer).
    """
    from phases.phase0_tokenizer.bpe import BPETokenizer
    from phases.phase0_tokenizer.corpus import build_embedded_corpus, iter_texts

    def make(name: str, modules: tuple, shard_chars: int = 100_000) -> dict:
        root = tmp_path_factory.mktemp(name)
        info = build_embedded_corpus(root / "data", packages=(), stdlib_modules=modules,
                                     shard_chars=shard_chars, show_progress=False)
        tok = BPETokenizer.train(iter_texts(info.out_dir, "train"), vocab_size=512)
        tok.save(root / "tokenizer")
        return {"root": root, "data_dir": str(info.out_dir), "tokenizer_dir": str(root / "tokenizer"), "tok": tok}

    return make
