"""Project-wide pytest setup: the ``--impl`` option, the ``gpu`` marker and shared fixtures.

``--impl`` lets a learner run a phase's checkpoint tests against their own code:

    pytest phases/phase0_tokenizer --impl=my_tokenizer.py        # the phase's main module
    pytest phases/phase0_tokenizer --impl chat=my_chat.py        # one named module

Each phase's ``conftest.py`` declares the modules it tests with ``impl_fixture`` (one line
per module: ``bpe = impl_fixture("bpe", "phases.phase0_tokenizer.bpe", main=True)``); the
fixture returns the learner's file when one was given, else the reference module.

Shared fixtures: ``make_tiny_world`` (a tiny corpus and tokenizer), ``tiny_corpus`` and
``tiny_tokenized`` (built once per session), ``isolated_base`` (a private
``MINI_NANOCHAT_BASE_DIR``) and ``assert_resume_exact`` (stop a run, resume it, compare
bitwise with an uninterrupted one). This file is the only ``conftest`` outside a package,
so phase conftests import the factory with ``from conftest import impl_fixture``.
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


def impl_fixture(name: str, reference: str, main: bool = False, fixture: str | None = None, doc: str = ""):
    """A session fixture (called ``fixture``, default ``name``) returning the module under test:
    ``--impl NAME=PATH`` (or, for the phase's ``main`` module, ``--impl PATH``) if given, else
    the module ``reference``. ``doc`` says what the module must define."""
    def module_under_test(impl_loader):
        return impl_loader(name, reference, main)
    module_under_test.__doc__ = f"{reference} or your --impl {name}=PATH. {doc}".strip()
    return pytest.fixture(scope="session", name=fixture or name)(module_under_test)


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
    from phases.phase0_tokenizer.corpus import build_embedded_corpus
    from phases.phase0_tokenizer.shards import iter_texts

    def make(name: str, modules: tuple, shard_chars: int = 100_000) -> dict:
        root = tmp_path_factory.mktemp(name)
        info = build_embedded_corpus(root / "data", packages=(), stdlib_modules=modules,
                                     shard_chars=shard_chars, show_progress=False)
        tok = BPETokenizer.train(iter_texts(info.out_dir, "train"), vocab_size=512)
        tok.save(root / "tokenizer")
        return {"root": root, "data_dir": str(info.out_dir), "tokenizer_dir": str(root / "tokenizer"), "tok": tok}

    return make


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory):
    """A small embedded corpus (a few stdlib modules + pydoc topics): seconds, not a minute."""
    from phases.phase0_tokenizer.corpus import build_embedded_corpus
    out = tmp_path_factory.mktemp("tiny_corpus")
    return build_embedded_corpus(out, packages=(), stdlib_modules=("json", "textwrap", "argparse", "pathlib"),
                                 shard_chars=200_000, show_progress=False)


@pytest.fixture(scope="session")
def tiny_tokenized(make_tiny_world):
    """A tiny corpus (json, textwrap) and a vocab-512 tokenizer trained on it, for tool tests."""
    return make_tiny_world("tiny_tokenized", ("json", "textwrap"))


@pytest.fixture
def isolated_base(tmp_path, monkeypatch):
    """Point MINI_NANOCHAT_BASE_DIR at a temporary folder for one test."""
    base = tmp_path / "base"
    monkeypatch.setenv("MINI_NANOCHAT_BASE_DIR", str(base))
    return base


@pytest.fixture
def assert_resume_exact(tmp_path):
    """``assert_resume_exact(train, cfg, stop_after, on_stop=None)`` -> the checkpoint the stop saved.

    Trains ``cfg`` once uninterrupted, once with ``stop_after_step = stop_after`` (it saves
    that step and stops), then resumes the stopped run to the end; asserts the step losses
    and the final weights are bitwise identical (CPU float32). ``train(cfg, resume=...,
    show_progress=False)`` is the loop under test (any phase's); ``on_stop(checkpoint)``
    looks at the saved checkpoint before the resume (which may delete it: keep_last).
    """
    from phases.phase2_training import checkpoint as ck
    from phases.phase2_training.metrics import read_metrics

    def losses(run_dir):
        return [r["loss"] for r in read_metrics(run_dir) if r.get("event") == "step"]

    def check(train, cfg, stop_after: int, on_stop=None):
        full = train(cfg.replace(run_dir=str(tmp_path / "full"), stop_after_step=0), show_progress=False)
        cut = cfg.replace(run_dir=str(tmp_path / "cut"), stop_after_step=stop_after)
        stopped = train(cut, show_progress=False)
        saved = ck.latest_checkpoint(tmp_path / "cut" / "checkpoints")
        assert stopped.step == saved.step == stop_after and stopped.stopped
        if on_stop is not None:
            on_stop(saved)
        resumed = train(cut, resume=True, show_progress=False)       # the same config: it goes on
        assert resumed.step == full.step and not resumed.stopped
        assert losses(tmp_path / "cut") == losses(full.run_dir)
        wa = ck.load_weights(ck.latest_checkpoint(full.run_dir / "checkpoints").path)
        wb = ck.load_weights(ck.latest_checkpoint(tmp_path / "cut" / "checkpoints").path)
        assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
        # every saved state, not only the weights: the RNG (dropout, sampling) and the optimizer's moments
        oa, ob = (torch.load(ck.latest_checkpoint(d / "checkpoints").path / "optim.pt", weights_only=True)
                  for d in (full.run_dir, tmp_path / "cut"))
        assert torch.equal(oa["torch_rng"], ob["torch_rng"]), "the resumed run's RNG state differs"
        sa, sb = oa["optimizer"]["state"], ob["optimizer"]["state"]
        assert sa.keys() == sb.keys() and all(
            torch.equal(sa[i][k], sb[i][k]) if torch.is_tensor(sa[i][k]) else sa[i][k] == sb[i][k]
            for i in sa for k in sa[i])
        return saved

    import torch
    return check
