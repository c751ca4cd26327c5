"""Fixtures for Phase 4's checkpoint: the modules under test, a tiny world, and a torchrun launcher.

``--impl train=my_train.py`` replaces the entry module (it is what torchrun launches, so it
must run as a script: ``main()`` under ``if __name__ == "__main__"``); ``--impl zero=…``
replaces the ZeRO optimizer, ``--impl dist=…`` the process-group module. The processes that
torchrun starts load the same modules: a small launcher registers the learner's ``dist`` and
``zero`` under the reference names before it runs the entry module.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def trainer(impl_loader):
    """Must define ``DistTrainConfig``, ``train(cfg, resume=...)`` and a script ``main``."""
    return impl_loader("train", "phases.phase4_ddp.train", main=True)


@pytest.fixture(scope="session")
def zero(impl_loader):
    """Must define ``ZeroMuonAdamW(param_groups, rank, world_size)`` with ``owned(K)``."""
    return impl_loader("zero", "phases.phase4_ddp.zero")


@pytest.fixture(scope="session")
def dist_mod(impl_loader):
    return impl_loader("dist", "phases.phase4_ddp.dist")


@pytest.fixture(scope="session")
def tiny_world(make_tiny_world):
    """A small corpus (three stdlib modules) and a vocab-512 tokenizer trained on it."""
    return make_tiny_world("p4_world", ("json", "textwrap", "argparse"))


@pytest.fixture(scope="session")
def tiny_settings(tiny_world):
    """A seconds-long MuonAdamW run: depth 2, width 64, 32-token rows, 256-token batches, 6 steps.

    One process accumulates 2 micro-batches per step; two ranks take one each.
    """
    return dict(depth=2, aspect_ratio=32, head_dim=32, sequence_len=32, device_batch_size=4,
                total_batch_size=256, reference_batch_size=256, num_iterations=6, warmup_steps=2,
                muon_momentum_warmup=4, weight_decay=0.01, eval_every=3, eval_tokens=2048, save_every=3,
                sample_tokens=4, data_dir=tiny_world["data_dir"], tokenizer_dir=tiny_world["tokenizer_dir"])


LAUNCHER = """\
import importlib.util, runpy, sys
for name, path in {modules!r}:              # the learner's modules under the names the trainer imports
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
sys.argv[0] = {entry!r}
runpy.run_path({entry!r}, run_name="__main__")
"""


@pytest.fixture(scope="session")
def launcher(trainer, zero, dist_mod, tmp_path_factory) -> str:
    """The script torchrun starts: the entry module under test, with the dist/zero under test."""
    modules = [(ref, m.__file__) for ref, m in (("phases.phase4_ddp.dist", dist_mod),
                                                 ("phases.phase4_ddp.zero", zero)) if m.__name__ != ref]
    path = tmp_path_factory.mktemp("launcher") / "launch.py"
    path.write_text(LAUNCHER.format(modules=modules, entry=trainer.__file__))
    return str(path)


@pytest.fixture(scope="session")
def torchrun(tiny_world, launcher):
    """``torchrun(nproc, run_dir, resume=False, fault="", **settings)`` -> (CompletedProcess, seconds)."""

    def launch(nproc: int, settings: dict, resume: bool = False, fault: str = "", timeout: float = 240):
        env = {**os.environ, "MINI_NANOCHAT_BASE_DIR": str(tiny_world["root"] / "base"), "OMP_NUM_THREADS": "1",
               "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH", "")])),
               "PYTHONWARNINGS": "ignore::FutureWarning"}
        env.pop("MINI_NANOCHAT_FAULT", None)
        if fault:
            env["MINI_NANOCHAT_FAULT"] = fault
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
               launcher, "--no-progress"]
        for key, value in settings.items():
            cmd += ["--set", f"{key}={value}"]
        if resume:
            cmd.append("--resume")
        t0 = time.monotonic()
        proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
        return proc, time.monotonic() - t0

    return launch
