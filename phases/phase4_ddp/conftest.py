"""Fixtures for Phase 4's checkpoint: the modules under test, a tiny world, and a torchrun launcher.

``--impl recipe=my_recipe.py`` replaces the recipe module (``DistTrainConfig``,
``load_config``, ``check``, ``distribute``, ``train``); ``--impl zero=…`` the ZeRO optimizer,
``--impl dist=…`` the process-group module. The processes that torchrun starts load the same
modules: a small launcher registers the learner's ``dist`` and ``zero`` under the reference
names, then runs the recipe module's ``train`` through Phase 2's training command line.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import impl_fixture

REPO = Path(__file__).resolve().parents[2]


recipe = impl_fixture("recipe", "phases.phase4_ddp.recipe", main=True,
                      doc="Must define DistTrainConfig, load_config, check, distribute and train(cfg, resume=...).")
zero = impl_fixture("zero", "phases.phase4_ddp.zero", doc="Must define ZeroMuonAdamW(param_groups, rank, world_size).")
dist_mod = impl_fixture("dist", "phases.phase4_ddp.dist", fixture="dist_mod",
                        doc="Must define world_from_env, distributed, DistRuntime, parse_fault, FaultyLoader.")


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
import importlib.util, sys
for name, path in {modules!r}:              # the modules under test, under the names the recipe imports
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
from phases.common.console import command
from phases.phase2_training.train import add_training_arguments, run_training
from phases.phase4_ddp.dist import report_and_exit
recipe = sys.modules[{recipe_name!r}]
sys.exit(command("the Phase 4 recipe under test", add_training_arguments,
                 lambda args: run_training(args, recipe.load_config, recipe.train), runner=report_and_exit))
"""


@pytest.fixture(scope="session")
def launcher(recipe, zero, dist_mod, tmp_path_factory) -> str:
    """The script torchrun starts: the recipe under test, with the dist/zero under test."""
    modules = [(ref, m.__file__) for ref, m in (("phases.phase4_ddp.dist", dist_mod),
                                                 ("phases.phase4_ddp.zero", zero)) if m.__name__ != ref]
    modules.append(("recipe_under_test", recipe.__file__))
    path = tmp_path_factory.mktemp("launcher") / "launch.py"
    path.write_text(LAUNCHER.format(modules=modules, recipe_name="recipe_under_test"))
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
