"""Phase 2 checkpoint, steps 3, 5 and 6: gradient accumulation, the loop, exact resume (train.py).

Tolerances (ADR.md): CPU float32. Gradient accumulation vs one large batch: atol 1e-6 on
gradients (same sums, different order). Resume: bitwise (torch.equal, identical floats).
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from phases.phase2_training import checkpoint as ck
from phases.phase2_training.config import load_config
from phases.phase2_training.metrics import read_metrics

pytestmark = pytest.mark.phase2


def _records(run_dir, event="step"):
    return [r for r in read_metrics(run_dir) if r.get("event") == event]

def test_gradient_accumulation_equals_one_big_batch(tiny_cfg):
    from phases.phase1_transformer.model import GPT
    model = GPT.build(tiny_cfg.model_config(512), seed=0)
    with torch.no_grad():  # make every path live (zero-initialised projections)
        for p in model.parameters():
            p.add_(0.02 * torch.randn_like(p))
    g = torch.Generator().manual_seed(0)
    x, y = torch.randint(0, 512, (8, 32), generator=g), torch.randint(0, 512, (8, 32), generator=g)
    model(x, targets=y).backward()
    big = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    for i in range(4):  # 4 micro-batches of 2 rows, each loss divided by 4
        (model(x[2 * i:2 * i + 2], targets=y[2 * i:2 * i + 2]) / 4).backward()
    for a, b in zip(big, (p.grad for p in model.parameters())):
        assert torch.allclose(a, b, atol=1e-6)


def test_loss_falls_and_the_run_is_logged(trainer, tiny_cfg):
    result = trainer.train(tiny_cfg.replace(num_iterations=30, eval_every=10), show_progress=False)
    steps = _records(result.run_dir)
    assert [r["step"] for r in steps] == list(range(1, 31))
    first, last = np.mean([r["loss"] for r in steps[:3]]), np.mean([r["loss"] for r in steps[-3:]])
    assert last < first - 0.5, (first, last)
    evals = _records(result.run_dir, "eval")
    assert [e["step"] for e in evals] == [0, 10, 20, 30] and evals[-1]["val_bpb"] < evals[0]["val_bpb"]
    assert all(k in steps[-1] for k in ("smooth_loss", "lrm", "dt", "tok_per_s", "mfu"))
    assert len(_records(result.run_dir, "samples")[-1]["samples"]) == 5
    # save_every=4 and the final step; keep_last=2 keeps the newest two
    assert [p.name for p in ck.list_checkpoints(result.run_dir / "checkpoints")] == ["step_000028", "step_000030"]


def test_resume_is_bitwise_exact(trainer, tiny_cfg, assert_resume_exact):
    # Stop the second run after 6 of its 12 steps (it checkpoints step 6), resume it, compare.
    saved = assert_resume_exact(trainer.train, tiny_cfg, stop_after=6)
    assert saved.step == 6 and tiny_cfg.num_iterations == 12
    for name in ("full", "cut"):                                          # both end at step 12
        assert _weights(saved.path.parents[2] / name)[0] == 12


def test_ctrl_c_saves_the_last_completed_step(tiny_cfg, tmp_path):
    """Ctrl-C in the middle of step 7 (after its micro-batches) saves step 6 and re-raises."""
    from phases.phase2_training import train as loop
    from phases.phase2_training.recipe import Recipe, set_lr

    def set_hparams(optimizer, step, cfg, lrm):
        if step == 6:
            raise KeyboardInterrupt
        set_lr(optimizer, step, cfg, lrm)

    with pytest.raises(KeyboardInterrupt):
        loop.train(tiny_cfg, show_progress=False, recipe=Recipe(set_hparams=set_hparams))
    assert ck.latest_checkpoint(tmp_path / "run" / "checkpoints").step == 6
    resumed = loop.train(tiny_cfg, resume=True, show_progress=False)
    assert resumed.step == 12 and [r["step"] for r in _records(resumed.run_dir)] == list(range(1, 13))


def _weights(run_dir):
    latest = ck.latest_checkpoint(Path(run_dir) / "checkpoints")
    return latest.step, ck.load_weights(latest.path)


@pytest.mark.slow
def test_sigkill_loses_at_most_the_steps_since_the_last_checkpoint(trainer, tiny_cfg, tmp_path):
    cfg_path = tmp_path / "run.toml"
    fields = dict(depth=2, aspect_ratio=32, head_dim=32, sequence_len=32, device_batch_size=4, total_batch_size=128,
                  num_iterations=400,
                  warmup_steps=2, eval_every=0, save_every=5, data_dir=tiny_cfg.data_dir,
                  tokenizer_dir=tiny_cfg.tokenizer_dir, run_dir=str(tmp_path / "run"))
    cfg_path.write_text("\n".join(f"{k} = {json.dumps(v)}" for k, v in fields.items()))
    # the loop under test in a process of its own (the module file, so --impl works here too)
    script = ("import importlib.util, sys\n"
              f"spec = importlib.util.spec_from_file_location('loop_under_test', {trainer.__file__!r})\n"
              "mod = importlib.util.module_from_spec(spec); sys.modules[spec.name] = mod\n"
              "spec.loader.exec_module(mod)\n"
              "from phases.phase2_training.config import load_config\n"
              f"mod.train(load_config({str(cfg_path)!r}), show_progress=False)\n")
    cmd = [sys.executable, "-c", script]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=os.environ.copy())
    deadline = time.time() + 120
    while time.time() < deadline and not (tmp_path / "run" / "checkpoints" / "step_000010").exists():
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    logged = max(r["step"] for r in _records(tmp_path / "run"))
    latest = ck.latest_checkpoint(tmp_path / "run" / "checkpoints").step
    assert latest >= 10 and logged - latest < 5 + 1  # at most save_every steps are lost
    short = load_config(cfg_path, {"num_iterations": 400})
    resumed = trainer.train(short, resume=True, show_progress=False)
    assert resumed.step == 400
    steps = [r["step"] for r in _records(tmp_path / "run")]
    assert steps == list(range(1, 401))  # the lost steps were redone once, nothing duplicated


def test_refuses_to_overwrite_a_run_without_resume(trainer, tiny_cfg):
    trainer.train(tiny_cfg.replace(num_iterations=4), show_progress=False)
    with pytest.raises(Exception, match="already holds checkpoints; pass --resume"):
        trainer.train(tiny_cfg.replace(num_iterations=4), show_progress=False)


def test_recipe_hooks_are_called(tiny_cfg):
    """make_model, extra_eval and the runtime reach the loop; extra numbers are logged with val bpb."""
    from phases.phase1_transformer.model import GPT
    from phases.phase2_training import train as loop
    from phases.phase2_training.recipe import Recipe, Runtime, derive, make_data
    seen = {"derive": [], "data": [], "model": 0, "eval": []}

    def my_derive(cfg, vocab_size, runtime):
        seen["derive"].append(runtime.world_size)
        return derive(cfg, vocab_size, runtime)

    def my_data(cfg, tok, tok_file, device, runtime, show_progress):
        seen["data"].append(runtime.rank)
        return make_data(cfg, tok, tok_file, device, runtime, show_progress)

    def my_model(plan, device, dtype, seed):
        seen["model"] += 1
        return GPT.build(plan.model, device=device, dtype=dtype, seed=seed)

    def my_eval(model, step):
        seen["eval"].append(step)
        return {"answer": 42.0}

    recipe = Recipe(derive=my_derive, make_data=my_data, make_model=my_model, extra_eval=my_eval, runtime=Runtime())
    result = loop.train(tiny_cfg.replace(num_iterations=4, eval_every=2), show_progress=False, recipe=recipe)
    assert seen == {"derive": [1], "data": [0], "model": 1, "eval": [0, 2, 4]}
    evals = _records(result.run_dir, "eval")
    assert [e["answer"] for e in evals] == [42.0] * 3 and all("val_bpb" in e for e in evals)


def test_a_warmup_as_long_as_the_run_is_warned_about(tiny_cfg):
    """Issue 14 #8: --num-iterations 2 with a 2-step warmup never reaches the peak LR: say so."""
    import io

    from phases.phase2_training import train as loop
    from phases.phase2_training.schedule import schedule_notes
    assert schedule_notes(10, 20, 0.5)[0].startswith("warmup_steps 20 >= num_iterations 10")
    assert "runs into the warmdown" in schedule_notes(10, 6, 0.5)[0]
    assert schedule_notes(1000, 20, 0.5) == []
    out = io.StringIO()
    loop.train(tiny_cfg.replace(num_iterations=2, save_every=0, eval_every=0), show_progress=False, out=out)
    assert "warning: warmup_steps 2 >= num_iterations 2" in out.getvalue()


def test_ctrl_c_says_how_to_continue(monkeypatch):
    """Issue 14 #10: after Ctrl-C, the command that continues the run (the same one, with --resume)."""
    import types

    from phases.phase2_training import cli as loop
    monkeypatch.setitem(sys.modules, "__main__", types.ModuleType("__main__"))   # the installed script
    assert loop.resume_command(["mini-nanochat", "pretrain", "--config", "my run.toml", "--resume"]) == \
        "mini-nanochat pretrain --config 'my run.toml' --resume"
    main = types.ModuleType("__main__")
    main.__spec__ = types.SimpleNamespace(name="phases.phase3_optimizers.train")
    monkeypatch.setitem(sys.modules, "__main__", main)
    assert loop.resume_command(["train.py", "examples/cpu_demo.toml"]) == \
        "python -m phases.phase3_optimizers.train examples/cpu_demo.toml --resume"
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert "torchrun" in loop.resume_command(["x"])
