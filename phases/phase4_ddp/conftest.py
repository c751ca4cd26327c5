"""Fixtures for Phase 4's checkpoint: the modules under test, a tiny world, and a torchrun launcher.

``--impl recipe=my_recipe.py`` replaces the recipe module (``DistTrainConfig``,
``load_config``, ``check``, ``distribute``, ``train``); ``--impl zero=…`` the ZeRO optimizer,
``--impl dist=…`` the process-group module. The processes that torchrun starts load the same
modules: a small launcher registers the learner's ``dist`` and ``zero`` under the reference
names, then runs the recipe module's ``train`` through Phase 2's training command line.

A learner's ``dist`` or ``zero`` written step by step does not define every name yet (Step 1
of the exercise writes only ``world_from_env`` and ``distributed``), while the reference
recipe imports them all. In the torchrun processes, a name the learner's file does not define
is taken from the reference module, and the launcher says which ones on stderr; the tests in
this process never fall back (a missing name fails there, naming the step that needs it).

A launch that fails reports torchrun's whole output (every rank's traceback, never cut), and a
launch that outlives its time limit is stopped with every rank it started. Time limits are
sized for a loaded 2-core machine: a launch costs ~10 s idle and ~20-30 s at load 10.
"""
from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import impl_fixture

REPO = Path(__file__).resolve().parents[2]
LAUNCH_TIMEOUT = float(os.environ.get("MINI_NANOCHAT_TORCHRUN_TIMEOUT", "900"))   # seconds, one launch


recipe = impl_fixture("recipe", "phases.phase4_ddp.recipe", main=True,
                      doc="Must define DistTrainConfig, load_config, check, distribute and train(cfg, resume=...).")
zero = impl_fixture("zero", "phases.phase4_ddp.zero", doc="Must define ZeroMuonAdamW(param_groups, rank, world_size).")
dist_mod = impl_fixture("dist", "phases.phase4_ddp.dist", fixture="dist_mod",
                        doc="Step 1: World, world_from_env, distributed; Step 3: DistRuntime; "
                            "Step 6: parse_fault, FaultyLoader.")


@pytest.fixture(scope="session")
def tiny_world(make_tiny_world):
    """A small corpus (three stdlib modules) and a vocab-512 tokenizer trained on it."""
    return make_tiny_world("p4_world", ("json", "textwrap", "argparse"))


@pytest.fixture(scope="session")
def tiny_settings(tiny_world):
    """A seconds-long MuonAdamW run: depth 2, width 64, 32-token rows, 256-token batches, 6 steps.

    One process accumulates 2 micro-batches per step; two ranks take one each. A learner's
    collective that hangs (mismatched shapes across ranks) fails after 60 s, not the default 300.
    """
    return dict(depth=2, aspect_ratio=32, head_dim=32, sequence_len=32, device_batch_size=4,
                total_batch_size=256, reference_batch_size=256, num_iterations=6, warmup_steps=2,
                muon_momentum_warmup=4, weight_decay=0.01, eval_every=3, eval_tokens=2048, save_every=3,
                sample_tokens=4, data_dir=tiny_world["data_dir"], tokenizer_dir=tiny_world["tokenizer_dir"],
                dist_timeout=60)


# The modules under test, registered under the names the recipe imports; a name the learner's
# file lacks comes from the reference (module __getattr__). The fixtures warn about those names.
REGISTER = """\
import importlib, importlib.util, sys
references = {{}}
for name, path, borrowed in {modules!r}:
    reference = references[name] = importlib.import_module(name) if "." in name else None
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    if reference is not None:
        package, _, leaf = name.rpartition(".")
        setattr(sys.modules[package], leaf, module)
    if borrowed and "__getattr__" not in vars(module):
        module.__getattr__ = lambda attr, ref=reference: getattr(ref, attr)
        print(f"[launcher] {{path}} (as {{name}}) does not define {{', '.join(borrowed)}}: "
              "taken from the reference", file=sys.stderr, flush=True)
"""

LAUNCHER = REGISTER + """\
from phases.common.console import command
from phases.phase2_training.cli import add_training_arguments, run_training
from phases.phase4_ddp import dist as _reference_dist     # the reference when dist is not swapped
report_and_exit = (references.get("phases.phase4_ddp.dist") or _reference_dist).report_and_exit
recipe = sys.modules[{recipe_name!r}]
sys.exit(command("the Phase 4 recipe under test", add_training_arguments,
                 lambda args: run_training(args, recipe.load_config, recipe.train), runner=report_and_exit))
"""

# Exercise Step 1 under torchrun: join the group with the learner's ``distributed`` and add up the ranks.
JOIN = REGISTER + """\
import torch
import torch.distributed
dist = importlib.import_module("phases.phase4_ddp.dist")   # the learner's, when registered above
with dist.distributed("cpu", 60) as world:
    x = torch.tensor([float(world.rank)])
    torch.distributed.all_reduce(x)
    print(f"rank {{world.rank}}/{{world.world_size}} local {{world.local_rank}} backend {{world.backend}}: "
          f"sum of ranks = {{x.item():g}}", flush=True)
"""

PLUMBING = {"report_and_exit"}    # the launcher's own runner: always the reference's, never the exercise's


def _public(module) -> list[str]:
    """The functions and classes a module defines itself (not what it imports)."""
    return [n for n, v in vars(module).items() if not n.startswith("_") and n not in PLUMBING
            and callable(v) and getattr(v, "__module__", None) == module.__name__]


def _swapped(pairs, warn: bool = True) -> list:
    """[(reference name, learner's file, names the file lacks)] for each module the learner replaced.
    A file that defines none of the reference's names fails the test: the torchrun runs would
    otherwise test the reference alone."""
    import importlib
    import warnings

    out = []
    for ref, module in pairs:
        if module.__name__ == ref:
            continue
        reference = importlib.import_module(ref)
        public = _public(reference)
        borrowed = [n for n in public if n not in vars(module)]
        if len(borrowed) == len(public):
            pytest.fail(f"{module.__file__} (--impl for {ref}) defines none of {', '.join(public)}: "
                        "the processes torchrun starts would run the reference only", pytrace=False)
        if borrowed and warn:
            warnings.warn(f"under torchrun, {Path(module.__file__).name} (as {ref}) lacks {', '.join(borrowed)}: "
                          "the reference's are used for these (write them in the exercise steps that need them)",
                          stacklevel=2)
        out.append((ref, module.__file__, borrowed))
    return out


@pytest.fixture(scope="session")
def launcher(recipe, zero, dist_mod, tmp_path_factory) -> str:
    """The script torchrun starts: the recipe under test, with the dist/zero under test."""
    modules = _swapped((("phases.phase4_ddp.dist", dist_mod), ("phases.phase4_ddp.zero", zero)))
    modules.append(("recipe_under_test", recipe.__file__, []))
    path = tmp_path_factory.mktemp("launcher") / "launch.py"
    path.write_text(LAUNCHER.format(modules=modules, recipe_name="recipe_under_test"))
    return str(path)


def _env(tiny_world, fault: str = "") -> dict:
    env = {**os.environ, "MINI_NANOCHAT_BASE_DIR": str(tiny_world["root"] / "base"), "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH", "")])),
           "PYTHONWARNINGS": "ignore::FutureWarning"}
    for var in ("MINI_NANOCHAT_FAULT", "RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(var, None)
    if fault:
        env["MINI_NANOCHAT_FAULT"] = fault
    return env


def _descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (Linux: read from /proc; elsewhere none are found)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()      # after "pid (comm)": state, ppid, ...
        except (OSError, IndexError):
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def _stop_all(proc: subprocess.Popen) -> None:
    """Kill torchrun and every rank it started. torchrun starts each rank in a session of its
    own (torch.distributed.elastic), so killing torchrun's process group alone leaves the ranks
    running, holding the output pipes open and loading the machine."""
    ranks = _descendants(proc.pid)
    for pid in [proc.pid, *ranks]:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(os.getpgid(pid), signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


def run_torchrun(args: list[str], env: dict, timeout: float) -> tuple[subprocess.CompletedProcess, float]:
    """``torchrun --standalone``; a launch that outlives ``timeout`` is stopped with every rank it
    started, and the test fails with the output so far."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", *args]
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _stop_all(proc)
        try:
            out, err = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:            # a process we could not find still holds a pipe
            out, err = "", "(the output could not be read: a process of the launch still holds it)"
        pytest.fail(f"torchrun did not finish within {timeout:.0f} s (all its processes were killed; a "
                    f"loaded machine? set MINI_NANOCHAT_TORCHRUN_TIMEOUT). Its output so far:\n"
                    f"--- stdout ---\n{out}\n--- stderr ---\n{err}", pytrace=False)
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err), time.monotonic() - t0


# torchrun's own traceback (its agent re-raising that a child failed) says nothing the ranks' output
# and torchrun's summary do not say: it is left out of failure reports.
AGENT_TRACEBACK = re.compile(r"Traceback \(most recent call last\):\n(?:  .*\n)*?"
                             r"(?=torch\.distributed\.elastic\.multiprocessing\.errors\.ChildFailedError)")


def _failure(what: str, proc: subprocess.CompletedProcess) -> str:
    err = AGENT_TRACEBACK.sub(lambda m: "" if "torch/distributed/run.py" not in m.group(0)
                              else "(torchrun's own traceback left out)\n", proc.stderr)
    return (f"{what} (exit status {proc.returncode}). torchrun's output follows, every rank's "
            f"whole; the first '[rank r] error' or Traceback is the cause.\n"
            f"--- stdout ---\n{proc.stdout}\n--- stderr ---\n{err}")


@pytest.fixture(scope="session")
def torchrun(tiny_world, launcher):
    """``torchrun(nproc, settings, resume=False, fault="", timeout=...)`` -> (CompletedProcess, seconds).

    Without ``fault`` a failed launch fails the test with torchrun's whole output. With a
    ``fault`` the launch is expected to fail, but at the injected fault: one that failed before
    it (an import error in the module under test, say) fails the test the same way.
    """

    def launch(nproc: int, settings: dict, resume: bool = False, fault: str = "", timeout: float = LAUNCH_TIMEOUT):
        args = [f"--nproc_per_node={nproc}", launcher, "--no-progress"]
        for key, value in settings.items():
            args += ["--set", f"{key}={value}"]
        if resume:
            args.append("--resume")
        proc, seconds = run_torchrun(args, _env(tiny_world, fault), timeout)
        if not fault and proc.returncode != 0:
            pytest.fail(_failure(f"the {nproc}-rank run failed", proc), pytrace=False)
        if fault and proc.returncode != 0 and "injecting a fault" not in proc.stderr:
            pytest.fail(_failure(f"the {nproc}-rank run failed before its injected fault ({fault})", proc),
                        pytrace=False)
        return proc, seconds

    return launch


@pytest.fixture(scope="session")
def torchrun_join(tiny_world, dist_mod, tmp_path_factory):
    """``torchrun_join(nproc)`` -> stdout of ``nproc`` ranks that join the group with the
    ``distributed()`` under test and all-reduce their rank (exercise Step 1)."""
    script = tmp_path_factory.mktemp("join") / "join.py"
    modules = [(ref, path, []) for ref, path, _ in _swapped((("phases.phase4_ddp.dist", dist_mod),), warn=False)]
    script.write_text(JOIN.format(modules=modules))

    def launch(nproc: int = 2) -> str:
        proc, _ = run_torchrun([f"--nproc_per_node={nproc}", str(script)], _env(tiny_world), LAUNCH_TIMEOUT)
        if proc.returncode != 0:
            pytest.fail(_failure(f"{nproc} ranks could not join the process group and all-reduce", proc),
                        pytrace=False)
        return proc.stdout

    return launch
