"""Phase 8 checkpoint: SFT on Phase 2's loop (starts from the base, learns, resumes exactly)."""
from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.phase8

MIXTURE = "arithmetic:300, identity:60, stdlib:100, spelling:100"


def _cfg(sft, tiny_base, tmp_path, **changes):
    overrides = dict(base=tiny_base["base"], mixture=MIXTURE, num_iterations=30, eval_every=30, save_every=0,
                     eval_tasks="", val_per_task=20, eval_tokens=4096, run_dir=str(tmp_path / "sft"), sample_tokens=2)
    overrides.update(changes)
    return sft.load_config(None, overrides)


def _evals(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()
            if json.loads(line).get("event") == "eval"]


def test_inherits_the_base_run_and_explicit_settings_win(sft, tiny_base, tmp_path):
    cfg = _cfg(sft, tiny_base, tmp_path)
    assert (cfg.depth, cfg.sequence_len, cfg.device_batch_size, cfg.total_batch_size) == (2, 128, 4, 512)
    assert cfg.matrix_lr == 0.32 and cfg.tokenizer_dir == tiny_base["tokenizer_dir"]
    assert (cfg.warmup_steps, cfg.warmdown_ratio, cfg.final_lr_frac, cfg.weight_decay) == (0, 0.5, 0.0, 0.0)
    assert _cfg(sft, tiny_base, tmp_path, matrix_lr=0.01, device_batch_size=2).matrix_lr == 0.01


def test_sft_starts_from_the_base_weights_and_optimizer_state(sft, tiny_base, tmp_path):
    from phases.phase2_training.checkpoint import load_weights
    from phases.phase2_training.load import find_checkpoint
    from phases.phase2_training.recipe import Runtime
    cfg = _cfg(sft, tiny_base, tmp_path)
    rec = sft.recipe()
    plan = rec.derive(cfg, tiny_base["tok"].vocab_size, Runtime())
    model = rec.make_model(plan, torch.device("cpu"), None, 0)
    base = load_weights(find_checkpoint(tiny_base["base"]).path)
    assert all(torch.equal(v, base[k]) for k, v in model.state_dict().items())
    opt = rec.make_optimizer(model, plan.config, plan)
    assert len(opt.state) > 0                                       # momentum buffers came along
    fresh = rec.make_optimizer(model, plan.config.replace(load_optimizer=False), plan)
    assert len(fresh.state) == 0
    pre = torch.load(find_checkpoint(tiny_base["base"]).path / "optim.pt", weights_only=True)["optimizer"]
    for mine, theirs in zip(opt.param_groups, pre["param_groups"]):
        assert mine["initial_lr"] == pytest.approx(0.8 * theirs["initial_lr"])


def test_sft_lowers_the_assistant_val_bpb_within_a_few_dozen_steps(sft, tiny_base, tmp_path):
    result = sft.sft(_cfg(sft, tiny_base, tmp_path), show_progress=False)
    evals = _evals(result.run_dir)
    first, last = evals[0]["val_bpb"], evals[-1]["val_bpb"]
    assert result.step == 30 and last < 0.8 * first, (first, last)
    from phases.phase2_training.load import find_checkpoint, read_meta
    meta = read_meta(result.run_dir)                         # Phase 9 serves the newest chat model by stage
    assert meta["stage"] == "sft" and meta["started_from"] == str(find_checkpoint(tiny_base["base"]).path)
    assert "stage" not in read_meta(tiny_base["base"])       # Phase 2's default hook adds nothing


def test_one_epoch_by_default(sft, tiny_base, tmp_path, capsys):
    from phases.phase2_training.recipe import Runtime
    from phases.phase8_sft.rows import count_rows
    cfg = _cfg(sft, tiny_base, tmp_path, num_iterations=-1)
    rec = sft.recipe()
    plan = rec.derive(cfg, tiny_base["tok"].vocab_size, Runtime())
    from phases.phase8_sft.mixture import build
    rows, _ = count_rows(build(MIXTURE, seed=cfg.seed), tiny_base["tok"], 128)
    assert plan.config.num_iterations == -(-rows // 4)
    assert "steps per epoch" in plan.describe() and "optimizer state: loaded" in plan.describe()


def test_sft_resume_is_bitwise_exact(sft, tiny_base, tmp_path, assert_resume_exact):
    cfg = _cfg(sft, tiny_base, tmp_path, num_iterations=8, eval_every=4, save_every=4)
    saved = assert_resume_exact(sft.sft, cfg, stop_after=5)
    assert saved.meta["data_state"]["kind"] == "conversation_rows"


def test_a_model_other_than_the_base_is_refused(sft, tiny_base, tmp_path):
    from phases.common.console import UserError
    with pytest.raises(UserError, match="another model"):
        sft.sft(_cfg(sft, tiny_base, tmp_path, depth=3), show_progress=False)
    with pytest.raises(UserError, match="which run should this start from"):
        sft.sft(sft.load_config(None, {"mixture": MIXTURE}), show_progress=False)


def test_command_line(tiny_base, tmp_path):
    env = {"PATH": "/usr/bin:/bin", "MINI_NANOCHAT_BASE_DIR": str(tmp_path / "base")}
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run([sys.executable, "-m", "phases.phase8_sft.sft", "--help"], cwd=root, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "--base" in proc.stdout and "--resume" in proc.stdout
    proc = subprocess.run([sys.executable, "-m", "phases.phase8_sft.sft", "--base", str(tmp_path / "nope")],
                          cwd=root, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stderr.startswith("error:") and "Traceback" not in proc.stderr
