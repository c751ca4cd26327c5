"""Phase 2: ``dtype = "auto"`` (dtype_probe.py): the CPU compute dtype is chosen by measurement,
the probe leaves the run's random state and gradients untouched, the run records its choice,
and a resumed run keeps the choice it started with (resumed == uninterrupted)."""
from __future__ import annotations

import json

import pytest
import torch

from phases.phase2_training import dtype_probe
from phases.phase2_training.dtype_probe import MIN_GAIN, DtypeChoice, choose_cpu_dtype

pytestmark = pytest.mark.phase2


def test_the_probe_times_both_dtypes_and_leaves_no_trace(tiny_cfg):
    from phases.phase1_transformer.model import GPT
    model = GPT.build(tiny_cfg.model_config(512), seed=0)
    before = torch.get_rng_state()
    choice = choose_cpu_dtype(model, rows=2, repeats=2)
    assert torch.equal(torch.get_rng_state(), before)              # the run's random stream is untouched
    assert all(p.grad is None for p in model.parameters())          # no gradients left behind
    assert model.compute_dtype == torch.float32                     # the model as it was
    assert choice.fp32_s > 0 and (choice.bf16_s is None or choice.bf16_s > 0)
    faster = choice.bf16_s is not None and choice.fp32_s / choice.bf16_s >= MIN_GAIN
    assert choice.dtype == (torch.bfloat16 if faster else torch.float32)
    assert "fp32" in choice.describe() and ("faster" in choice.describe() or "does not run" in choice.describe())


def test_auto_records_its_choice_and_a_resumed_run_keeps_it(trainer, tiny_cfg, monkeypatch):
    import io
    from phases.phase2_training.checkpoint import latest_checkpoint
    picks = iter([torch.bfloat16, torch.float32])                   # the second measurement would disagree
    monkeypatch.setattr(dtype_probe, "choose_cpu_dtype",
                        lambda model, **kw: DtypeChoice(next(picks), 0.02, 0.01))
    monkeypatch.setattr("phases.phase2_training.train.choose_cpu_dtype", dtype_probe.choose_cpu_dtype)
    cfg = tiny_cfg.replace(dtype="auto", num_iterations=8, stop_after_step=4)
    console = io.StringIO()
    trainer.train(cfg, show_progress=False, out=console)
    out = console.getvalue()
    assert "compute dtype bfloat16: measured a forward+backward pass here in 20 ms (fp32) vs 10 ms (bf16)" in out
    ckpt = latest_checkpoint(cfg.run_dir + "/checkpoints")
    assert json.loads((ckpt.path / "meta.json").read_text())["compute_dtype"] == "bfloat16"
    console = io.StringIO()
    trainer.train(cfg.replace(stop_after_step=0), resume=True, show_progress=False, out=console)
    out = console.getvalue()
    assert "compute dtype bfloat16, as measured when the run started (dtype = auto)" in out
    assert "device: cpu, compute dtype: bfloat16" in out


def test_auto_is_a_valid_dtype_and_nonsense_is_not(tiny_cfg):
    from phases.common.console import UserError
    from phases.phase2_training.config import check_config as check
    check(tiny_cfg.replace(dtype="auto"))
    with pytest.raises(UserError, match="dtype"):
        check(tiny_cfg.replace(dtype="bf17"))
