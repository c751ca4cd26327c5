"""Phase 2 checkpoint, step 6: checkpoints that survive crashes, and reading a run back (checkpoint.py)."""
from __future__ import annotations

import pytest
import torch

from phases.phase2_training import checkpoint as ck
from phases.phase2_training import load

pytestmark = pytest.mark.phase2


def _weights(run_dir):
    latest = ck.latest_checkpoint(run_dir / "checkpoints")
    return latest.step, ck.load_weights(latest.path)

def test_load_model_reads_back_what_training_wrote(trainer, tiny_cfg, tmp_path):
    result = trainer.train(tiny_cfg.replace(num_iterations=4, save_every=0), show_progress=False)
    model, tok, meta = load.load_model(result.run_dir)
    assert meta["step"] == 4 and not model.training
    step, weights = _weights(result.run_dir)
    assert all(torch.equal(model.state_dict()[k], weights[k]) for k in weights)
    assert tok.vocab_size == model.config.vocab_size
    # the same checkpoint through every way of naming it
    for name in (result.run_dir / "checkpoints", result.run_dir / "checkpoints" / "step_000004"):
        assert load.read_meta(name)["step"] == 4
    with pytest.raises(Exception, match="no run or checkpoint"):
        load.find_checkpoint(tmp_path / "nowhere")


def test_crash_mid_save_keeps_the_last_good_checkpoint(trainer, tiny_cfg, monkeypatch):
    result = trainer.train(tiny_cfg.replace(num_iterations=4), show_progress=False)
    ckpts = result.run_dir / "checkpoints"
    from phases.phase1_transformer.model import GPT
    model = GPT.build(tiny_cfg.model_config(512), seed=0)
    optimizer = torch.optim.AdamW(model.parameters())

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", boom)  # die after the weights were written
    with pytest.raises(OSError):
        ck.save_checkpoint(ckpts, 8, model, optimizer, {})
    assert [p.name for p in ckpts.iterdir()] == ["step_000004"]  # no partial step_000008, no temp dir
    assert ck.latest_checkpoint(ckpts).step == 4


def test_corrupt_checkpoint_is_named_and_skipped(trainer, tiny_cfg):
    result = trainer.train(tiny_cfg.replace(num_iterations=8), show_progress=False)
    ckpts = result.run_dir / "checkpoints"
    bad = ckpts / "step_000008" / "model.safetensors"
    bad.write_bytes(bad.read_bytes()[:100])  # truncated
    with pytest.raises(Exception, match=f"{bad}.*corrupt or truncated"):
        ck.verify_checkpoint(bad.parent)
    with pytest.warns(UserWarning, match="step_000008"):
        assert ck.latest_checkpoint(ckpts).step == 4  # resume falls back to the last good one


def test_check_and_find_name_the_problem(trainer, tiny_cfg):
    result = trainer.train(tiny_cfg.replace(num_iterations=8), show_progress=False)
    run = result.run_dir
    assert [c.step for c in ck.scan_checkpoints(run)] == [4, 8] and all(c.ok for c in ck.scan_checkpoints(run))
    assert load.find_checkpoint(f"{run}@4").step == 4 and load.read_meta(run, step=8)["step"] == 8
    with pytest.raises(Exception, match="no checkpoint at step 5; it has: step_000004, step_000008"):
        load.find_checkpoint(run, step=5)
    optim = run / "checkpoints" / "step_000008" / "optim.pt"
    optim.write_bytes(b"x" * optim.stat().st_size)          # the size recorded in meta.json, not a zip
    report = ck.check_checkpoint(run / "checkpoints" / "step_000008", hash=False)
    assert report.problems == ["optim.pt is not a torch.save archive (truncated or overwritten)"]
    optim.write_bytes(b"not a zip")                          # another size: caught before it is opened
    report = ck.check_checkpoint(run / "checkpoints" / "step_000008", hash=False)
    assert len(report.problems) == 1 and "optim.pt: 9 bytes, but" in report.problems[0]
    assert load.resolve_run(run / "checkpoints" / "step_000004") == run
