"""Phase 2 checkpoint: the training loop, bpb, data windows, checkpoints and exact resume.

Tolerances (ADR.md): CPU float32. Gradient accumulation vs one large batch: atol 1e-6 on
gradients (same sums, different order). Resume: bitwise (torch.equal, identical floats).
"""
from __future__ import annotations

import json
import math
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
from phases.phase2_training.config import TrainConfig, derive, load_config

pytestmark = pytest.mark.phase2
REPO = Path(__file__).resolve().parents[2]


def _records(run_dir, event="step"):
    lines = (Path(run_dir) / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r.get("event") == event]


def _weights(run_dir):
    latest = ck.latest_checkpoint(Path(run_dir) / "checkpoints")
    return latest.step, ck.load_weights(latest.path)


# -- step 1: the schedule ---------------------------------------------------------------

def test_schedule_values(schedule):
    f = lambda s: schedule.lr_multiplier(s, 1000, warmup_steps=40, warmdown_ratio=0.65, final_lr_frac=0.05)  # noqa: E731
    assert f(0) == 1 / 40 and f(19) == 0.5 and f(39) == 1.0
    assert f(40) == 1.0 and f(350) == 1.0                   # constant until the warmdown starts
    assert math.isclose(f(675), 0.5 + 0.5 * 0.05)           # halfway down
    assert math.isclose(f(1000), 0.05)                      # ends at final_lr_frac
    assert all(f(s) >= f(s + 1) for s in range(40, 1000))   # never goes back up


# -- step 2: data windows ---------------------------------------------------------------

def test_windows_are_shifted_by_one(data):
    tokens = np.arange(1000, dtype=np.uint16)
    x, y = data.TokenLoader(tokens, batch_size=2, seq_len=5).next_batch()
    assert x.tolist() == [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]]
    assert y.tolist() == [[1, 2, 3, 4, 5], [6, 7, 8, 9, 10]]


def test_rank_shards_are_disjoint_and_cover_the_stream(data):
    tokens = np.arange(10_000, dtype=np.uint16)
    loaders = [data.TokenLoader(tokens, 3, 8, rank=r, world_size=4) for r in range(4)]
    single = data.TokenLoader(tokens, 12, 8)
    for _ in range(5):
        parts = [loader.next_batch()[0] for loader in loaders]
        assert torch.equal(torch.cat(parts), single.next_batch()[0])  # ranks = rows of one big batch
    seen = torch.cat([torch.cat([loader.next_batch()[0] for loader in loaders]).flatten() for _ in range(3)])
    assert len(set(seen.tolist())) == len(seen)                          # no token read twice


def test_loader_state_round_trip_and_wrap(data):
    tokens = np.arange(100, dtype=np.uint16)
    a = data.TokenLoader(tokens, 2, 10)
    for _ in range(7):
        a.next_batch()
    b = data.TokenLoader(tokens, 2, 10)
    b.load_state_dict(a.state_dict())
    assert a.epoch == 1 and torch.equal(a.next_batch()[0], b.next_batch()[0])


# -- step 3: gradient accumulation and bpb -------------------------------------------------

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


class _FixedLoss(torch.nn.Module):
    """A 'model' whose per-token loss is known: nats[b, t] = 0.5 * (t + 1)."""
    def forward(self, x, targets=None, loss_reduction="mean"):
        B, T = x.shape
        return 0.5 * torch.arange(1, T + 1, dtype=torch.float32).expand(B, T)


def test_bpb_by_hand(evaluate):
    token_bytes = torch.tensor([0, 1, 2, 3])            # id 0 is a special token: 0 bytes
    x = torch.zeros(1, 4, dtype=torch.long)
    y = torch.tensor([[1, 0, 3, -1]])                   # a special target and an ignored one
    bpb, nats, nbytes = evaluate.evaluate_bpb(_FixedLoss(), [(x, y)], token_bytes)
    # counted: t=0 (id 1, 1 byte, 0.5 nats) and t=2 (id 3, 3 bytes, 1.5 nats)
    assert nbytes == 4 and math.isclose(nats, 2.0)
    assert math.isclose(bpb, 2.0 / (math.log(2) * 4))


# -- step 4: the loop ----------------------------------------------------------------------

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


def test_load_model_reads_back_what_training_wrote(trainer, tiny_cfg, tmp_path):
    result = trainer.train(tiny_cfg.replace(num_iterations=4, save_every=0), show_progress=False)
    model, tok, meta = ck.load_model(result.run_dir)
    assert meta["step"] == 4 and not model.training
    step, weights = _weights(result.run_dir)
    assert all(torch.equal(model.state_dict()[k], weights[k]) for k in weights)
    assert tok.vocab_size == model.config.vocab_size
    # the same checkpoint through every way of naming it
    for name in (result.run_dir / "checkpoints", result.run_dir / "checkpoints" / "step_000004"):
        assert ck.read_meta(name)["step"] == 4
    with pytest.raises(Exception, match="no run or checkpoint"):
        ck.find_checkpoint(tmp_path / "nowhere")


def test_resume_is_bitwise_exact(trainer, tiny_cfg, tmp_path, monkeypatch):
    full = trainer.train(tiny_cfg.replace(run_dir=str(tmp_path / "full")), show_progress=False)
    # Interrupt the second run in the middle of step 7 (Ctrl-C after its micro-batches):
    # it saves the state after 6 completed steps and stops.
    train_module = trainer
    original = train_module.lr_multiplier

    def interrupted(step, *args):
        if step == 6:
            raise KeyboardInterrupt
        return original(step, *args)

    monkeypatch.setattr(train_module, "lr_multiplier", interrupted)
    cut = tiny_cfg.replace(run_dir=str(tmp_path / "cut"))
    with pytest.raises(KeyboardInterrupt):
        trainer.train(cut, show_progress=False)
    monkeypatch.setattr(train_module, "lr_multiplier", original)
    assert ck.latest_checkpoint(tmp_path / "cut" / "checkpoints").step == 6
    trainer.train(cut, resume=True, show_progress=False)
    assert [r["loss"] for r in _records(tmp_path / "cut")] == [r["loss"] for r in _records(full.run_dir)]
    step_a, wa = _weights(full.run_dir)
    step_b, wb = _weights(tmp_path / "cut")
    assert step_a == step_b == 12 and wa.keys() == wb.keys()
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


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


# -- step 5: checkpoints ------------------------------------------------------------------

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


def test_refuses_to_overwrite_a_run_without_resume(trainer, tiny_cfg):
    trainer.train(tiny_cfg.replace(num_iterations=4), show_progress=False)
    with pytest.raises(Exception, match="already holds checkpoints; pass --resume"):
        trainer.train(tiny_cfg.replace(num_iterations=4), show_progress=False)


# -- step 6: configuration ------------------------------------------------------------------

def test_config_file_and_overrides(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("[model]\ndepth = 3\n[optim]\nmatrix_lr = 0.01\n")
    cfg = load_config(path, {"device_batch_size": "8", "compile": "true"})
    assert (cfg.depth, cfg.matrix_lr, cfg.device_batch_size, cfg.compile) == (3, 0.01, 8, True)


@pytest.mark.parametrize("text, overrides, message", [
    ("depth = 3\nbogus = 1\n", {}, "unknown key 'bogus'"),
    ("depth = 'three'\n", {}, "depth must be a int"),
    ("depth = [\n", {}, "not valid TOML"),
    ("", {"matrix_lr": "fast"}, "matrix_lr must be a float"),
    ("", {"nope": "1"}, "unknown setting 'nope'"),
])
def test_config_errors_are_clear(tmp_path, text, overrides, message):
    path = tmp_path / "c.toml"
    path.write_text(text)
    with pytest.raises(Exception, match=message):
        load_config(path, overrides)


def test_batch_that_does_not_divide_is_rejected():
    cfg = TrainConfig(device_batch_size=4, sequence_len=32, total_batch_size=1000)
    with pytest.raises(Exception, match="not a multiple of device_batch_size x sequence_len"):
        derive(cfg, vocab_size=512)
    plan = derive(cfg.replace(total_batch_size=512), vocab_size=512)
    assert plan.grad_accum == 4 and "4 accumulation" in plan.describe()


def test_cli_pretrain_errors_are_clear(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("depth = 0\n")
    r = subprocess.run([sys.executable, "-m", "mini_nanochat", "pretrain", "--config", str(bad)],
                       capture_output=True, text=True, cwd=REPO)
    assert r.returncode == 2 and "error:" in r.stderr and "Traceback" not in r.stderr
    r = subprocess.run([sys.executable, "-m", "mini_nanochat", "pretrain", "--set", "matrix_lr"],
                       capture_output=True, text=True, cwd=REPO)
    assert r.returncode == 2 and "expected KEY=VALUE" in r.stderr
