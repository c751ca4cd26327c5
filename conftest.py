"""Project-wide pytest setup: the ``--impl`` option, the ``gpu`` marker and shared fixtures.

``--impl`` lets a learner run a phase's checkpoint tests against their own code:

    pytest phases/phase0_tokenizer --impl=my_tokenizer.py        # the phase's main module
    pytest phases/phase0_tokenizer --impl chat=my_chat.py        # one named module

Each phase's ``conftest.py`` declares the modules it tests with ``impl_fixture`` (one line
per module: ``bpe = impl_fixture("bpe", "phases.phase0_tokenizer.bpe", main=True)``); the
fixture returns the learner's file when one was given, else the reference module.

``--impl`` never passes silently on the reference code. After collection (``-k`` and
``-m`` applied) it refuses, as a usage error (exit 4): a name no selected phase declares
(the message lists every phase's names), a file that none of the selected tests loads, a
bare ``--impl PATH`` when the selected tests span phases, and a missing or non-``.py``
file (relative paths are taken from the directory pytest was started in). A file that
fails to import, or lacks a name a test asks for, fails those tests with one message that
names the file and the reference module.

Shared fixtures: ``make_tiny_world`` (a tiny corpus and tokenizer), ``tiny_corpus`` and
``tiny_tokenized`` (built once per session), ``isolated_base`` (a private
``MINI_NANOCHAT_BASE_DIR``) and ``assert_resume_exact`` (stop a run, resume it, compare
bitwise with an uninterrupted one). This file is the only ``conftest`` outside a package,
so phase conftests import the factory with ``from conftest import impl_fixture``.
"""
from __future__ import annotations

import ast
import importlib
import importlib.util
import re
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent


@dataclass(frozen=True)
class ImplSpec:
    """One module a phase's tests take through a fixture, and so one ``--impl`` name."""
    phase: str               # the phase folder, e.g. "phase0_tokenizer"
    name: str                # the --impl name, e.g. "bpe"
    reference: str           # the module it replaces, e.g. "phases.phase0_tokenizer.bpe"
    main: bool               # replaced by a bare --impl PATH too
    fixture: str             # the fixture the tests ask for


_SPECS: dict[tuple[str, str], ImplSpec] = {}   # (phase, name) -> spec, as the phase conftests load


def pytest_addoption(parser):
    parser.addoption(
        "--impl", action="append", default=[], metavar="[NAME=]PATH",
        help="run a phase's checkpoint tests against your own module: PATH replaces the "
             "phase's main module, NAME=PATH replaces the module NAME (e.g. chat=my_chat.py); "
             "a relative PATH is taken from the directory you run pytest in")


def _parse_impls(config) -> dict[str | None, Path]:
    impls: dict[str | None, Path] = {}
    base = Path(config.invocation_params.dir)
    for spec in config.getoption("--impl"):
        name, sep, path = spec.partition("=")
        if not sep:
            name, path = None, spec
        elif not re.fullmatch(r"[A-Za-z_]\w*", name):
            raise pytest.UsageError(f"--impl {spec}: {name!r} is not a module name; write --impl NAME=PATH "
                                    "(e.g. chat=my_chat.py) or --impl PATH for the phase's main module")
        if not path:
            raise pytest.UsageError(f"--impl {spec}: no file given")
        if name in impls:
            raise pytest.UsageError(f"--impl {spec}: {'the main module' if name is None else name!r} "
                                    "is already replaced by an earlier --impl")
        given = Path(path).expanduser()
        p = given if given.is_absolute() else base / given
        where = "" if given.is_absolute() else f" (a relative path is taken from the directory pytest runs in, {base})"
        if not p.exists():
            raise pytest.UsageError(f"--impl {spec}: {p} not found{where}")
        if p.is_dir():
            raise pytest.UsageError(f"--impl {spec}: {p} is a folder; give the .py file of your module")
        if p.suffix != ".py":
            raise pytest.UsageError(f"--impl {spec}: {p} is not a Python file (.py)")
        impls[name] = p.resolve()
    return impls


def pytest_configure(config):
    config._mini_impls = _parse_impls(config)
    # Test models are tiny: one intra-op thread is as fast, and it avoids OpenMP threads
    # spinning against each other when the machine is busy (10x slowdowns seen on 2 cores).
    import os

    import torch
    torch.set_num_threads(int(os.environ.get("MINI_NANOCHAT_TEST_THREADS", "1")))


def _label(name: str | None, path: Path) -> str:
    return f"--impl {path}" if name is None else f"--impl {name}={path}"


def pytest_report_header(config):
    impls = getattr(config, "_mini_impls", {})
    if impls:
        return ["implementation under test: " + ", ".join(
            f"{name or 'main'}={path}" for name, path in impls.items())]
    return None


def _skip_gpu_tests(items) -> None:
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


# -- which tests load which --impl: checked once the selection is final ----------------------

def declared_impls() -> dict[str, list[tuple[str, bool]]]:
    """Every phase's ``--impl`` names, read from the phase conftests (loaded or not):
    {"phase0_tokenizer": [("bpe", True), ("chat", False)], ...} (True: the main module)."""
    out: dict[str, list[tuple[str, bool]]] = {}
    for conftest in sorted((REPO / "phases").glob("phase*/conftest.py")):
        names = []
        for node in ast.walk(ast.parse(conftest.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Call) and getattr(node.func, "id", None) == "impl_fixture"
                    and node.args and isinstance(node.args[0], ast.Constant)):
                main = any(k.arg == "main" and getattr(k.value, "value", False) is True for k in node.keywords)
                names.append((node.args[0].value, main))
        if names:
            out[conftest.parent.name] = names
    return out


def _accepted_names() -> str:
    lines = []
    for phase, names in declared_impls().items():
        main = [n for n, m in names if m]
        lines.append(f"  {phase}: " + ", ".join(f"{n} (main: --impl PATH)" if n in main else n for n, _ in names))
    return "\n".join(lines)


def _did_you_mean(name: str, phases) -> str:
    """A hint for a near miss among the selected phases' names: a fixture's name (Phase 1's
    module ``model`` comes as the fixture ``gpt``) or a close spelling."""
    import difflib
    specs = [s for s in _SPECS.values() if s.phase in phases]
    for s in specs:
        if s.fixture == name and s.name != name:
            return f" Did you mean --impl {s.name}=...? ({name!r} is the fixture the tests take module {s.name!r} through.)"
    close = difflib.get_close_matches(name, sorted({s.name for s in specs}), n=1)
    return f" Did you mean --impl {close[0]}=...?" if close else ""


def _phase_of(item) -> str | None:
    parts = Path(str(item.path)).resolve().parts
    for i, part in enumerate(parts[:-1]):
        if part == "phases" and parts[i + 1].startswith("phase") and i + 2 < len(parts):
            return parts[i + 1]
    return None


@pytest.hookimpl(trylast=True)      # after -k and -m have deselected
def pytest_collection_modifyitems(config, items):
    """Skip GPU tests without CUDA; refuse an ``--impl`` that the selected tests would never
    run (a false green)."""
    _skip_gpu_tests(items)
    impls = getattr(config, "_mini_impls", {})
    if not impls or not items:
        return
    by_phase: dict[str, list] = {}
    for item in items:
        by_phase.setdefault(_phase_of(item) or "", []).append(item)
    selected_phases = sorted(p for p in by_phase if p)
    usage = config._mini_impl_usage = {}
    for name, path in impls.items():
        if name is None:
            specs = [s for s in _SPECS.values() if s.main and s.phase in by_phase]
            if not specs:
                where = ", ".join(selected_phases) or "no phase (none of them is a phase's checkpoint)"
                raise pytest.UsageError(
                    f"{_label(name, path)}: the selected tests come from {where}, which has no main module "
                    f"to replace; name the module with --impl NAME=PATH. The names each phase accepts:\n"
                    + _accepted_names())
            phases = sorted({s.phase for s in specs})
            if len(phases) > 1:
                raise pytest.UsageError(
                    f"{_label(name, path)}: a bare --impl PATH replaces one phase's main module, but the "
                    f"selected tests come from {', '.join(phases)}; run one phase's folder "
                    f"(e.g. pytest phases/{phases[0]} --impl {path.name}) or name the module (NAME=PATH)")
        else:
            specs = [s for s in _SPECS.values() if s.name == name and s.phase in by_phase]
            if not specs:
                raise pytest.UsageError(
                    f"{_label(name, path)}: no module called {name!r} is tested by the selected tests "
                    f"({', '.join(selected_phases) or 'none of them is a phase checkpoint test'}).{_did_you_mean(name, by_phase)} "
                    f"The names each phase accepts:\n" + _accepted_names())
        users = [item for s in specs for item in by_phase[s.phase] if s.fixture in getattr(item, "fixturenames", ())]
        if not users:
            what = " / ".join(sorted({f"{s.name} (fixture {s.fixture!r})" for s in specs}))
            raise pytest.UsageError(
                f"{_label(name, path)}: none of the {len(items)} selected tests loads {what}, so they would "
                f"pass without running your file. Widen -k/-m, or run "
                f"pytest --fixtures-per-test to see which tests use it.")
        used_phases = sorted({_phase_of(i) for i in users})
        if len(used_phases) > 1:
            raise pytest.UsageError(
                f"{_label(name, path)}: {name!r} is a module of {' and '.join(used_phases)}; "
                "run one phase's folder at a time")
        usage[name] = (len({id(i) for i in users}), len(items), sorted({s.reference for s in specs}))


def pytest_report_collectionfinish(config, start_path, items):
    usage = getattr(config, "_mini_impl_usage", {})
    return [f"--impl: {path} replaces {', '.join(usage[name][2])} in {usage[name][0]} of the "
            f"{usage[name][1]} selected tests"
            for name, path in getattr(config, "_mini_impls", {}).items() if name in usage]


# -- the fixtures --------------------------------------------------------------------------

def impl_fixture(name: str, reference: str, main: bool = False, fixture: str | None = None, doc: str = ""):
    """A session fixture (called ``fixture``, default ``name``) returning the module under test:
    ``--impl NAME=PATH`` (or, for the phase's ``main`` module, ``--impl PATH``) if given, else
    the module ``reference``. ``doc`` says what the module must define. Called from a phase's
    conftest, it also records the name for the checks above."""
    caller = Path(sys._getframe(1).f_globals.get("__file__", "")).resolve()
    phase = caller.parent.name
    fixture = fixture or name
    _SPECS[(phase, name)] = ImplSpec(phase, name, reference, main, fixture)

    def module_under_test(impl_loader):
        return impl_loader(name, reference, main)
    module_under_test.__doc__ = f"{reference} or your --impl {name}=PATH. {doc}".strip()
    return pytest.fixture(scope="session", name=fixture)(module_under_test)


def _learner_frames(exc: BaseException) -> str:
    """The traceback of an import error, without importlib's own frames."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if "importlib" not in f.filename
              and Path(f.filename).resolve() != Path(__file__).resolve()]
    return "".join(traceback.format_list(frames) + traceback.format_exception_only(type(exc), exc))


def load_learner_module(module_name: str, path: Path, reference: str, label: str):
    """Execute the learner's file as module ``module_name``; a missing name raises an
    AttributeError that names the file and the reference that defines it."""
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    try:
        spec.loader.exec_module(module)
        error = None
    except Exception as e:
        del sys.modules[spec.name]
        error = _learner_frames(e)
    if error is not None:   # outside the except block: the message alone, no chained traceback
        pytest.fail(f"{label}: importing your file failed:\n{error}", pytrace=False)
    if "__getattr__" not in vars(module):
        def __getattr__(attr: str):
            if attr.startswith("__"):
                raise AttributeError(attr)
            raise AttributeError(f"{path.name} ({label}) defines no {attr!r}, which this test uses "
                                 f"({reference} defines it; the phase's exercise.md says which step needs it)")
        module.__getattr__ = __getattr__
    return module


@pytest.fixture(scope="session")
def impl_loader(request):
    """``impl_loader(name, reference, main=False)`` -> the module under test."""
    impls = request.config._mini_impls
    loaded: dict[str, object] = {}

    def load(name: str, reference: str, main: bool = False):
        key = name if name in impls else None
        path = impls.get(name) or (impls.get(None) if main else None)
        if path is None:
            return importlib.import_module(reference)
        if name not in loaded:
            loaded[name] = load_learner_module(f"learner_impl_{name}", path, reference, _label(key, path))
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
        """Each step's loss and its smoothed (EMA) loss: the EMA is loop state a resume must restore."""
        return [(r["loss"], r.get("smooth_loss")) for r in read_metrics(run_dir) if r.get("event") == "step"]

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
        a, b = losses(full.run_dir), losses(tmp_path / "cut")
        assert [x for x, _ in b] == [x for x, _ in a], "the resumed run's step losses differ from the uninterrupted run's"
        assert b == a, ("the losses agree but the smoothed loss (smooth_loss) does not: the resumed run "
                        "restarted its EMA; save the loop state (EMA, best val bpb, train time) and restore it")
        if hasattr(full, "min_val_bpb"):
            assert resumed.min_val_bpb == full.min_val_bpb, (
                "the resumed run's best val bpb differs: restore it from the checkpoint with the EMA")
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
