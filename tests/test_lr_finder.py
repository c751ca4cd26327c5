"""Tests of tools/lr_finder.py: the range test's mechanics, restoring state, the CLI.

A depth-2, width-64 model on the shared tiny corpus (vocab 512); sweeps of 20-30 steps.
"""
from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from _tools import load_tool

ROOT = Path(__file__).resolve().parent.parent
lf = load_tool("lr_finder")


@pytest.fixture
def tiny_args(tiny_tokenized, isolated_base):
    return ["--set", "depth=2", "--set", "aspect_ratio=32", "--set", "head_dim=32", "--set", "sequence_len=32",
            "--set", "device_batch_size=4", "--set", "total_batch_size=128", "--set", "reference_batch_size=128",
            "--set", f"data_dir={tiny_tokenized['data_dir']}", "--set", f"tokenizer_dir={tiny_tokenized['tokenizer_dir']}"]


def test_smoothing_and_suggestions_on_a_synthetic_curve():
    assert lf.smooth([2.0, 2.0, 2.0], 0.9) == pytest.approx([2.0, 2.0, 2.0])     # debiased: no pull to 0
    mults = [10 ** (i / 10) for i in range(-20, 21)]                             # 0.01 .. 100
    # a U-shaped curve, falling fastest around x0.3 and lowest at x10
    loss = [3 - 2 / (1 + math.exp(-3 * math.log10(m / 0.3))) + (0.5 * math.log10(m / 10)) ** 2 * (m > 10)
            for m in mults]
    assert 0.15 < lf.steepest(mults, loss) < 0.6
    v = lf.valley(mults, loss)
    assert lf.steepest(mults, loss) < v <= 10


def _model_and_optimizer():
    from phases.phase1_transformer.model import GPT
    from phases.phase3_optimizers.recipe import MuonTrainConfig, derive, make_optimizer
    cfg = MuonTrainConfig(depth=2, aspect_ratio=32, head_dim=32, sequence_len=16, total_batch_size=64,
                          device_batch_size=4, reference_batch_size=64, num_iterations=20)
    plan = derive(cfg, 128)
    model = GPT.build(plan.model, seed=0)
    return model, make_optimizer(model, plan.config, plan)


def _batches():
    g = torch.Generator().manual_seed(0)

    def next_batch():
        idx = torch.randint(0, 128, (4, 17), generator=g)
        return idx[:, :-1], idx[:, 1:]
    return next_batch


def test_range_test_restores_model_and_optimizer():
    model, opt = _model_and_optimizer()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    opt_before = {g["name"]: g["lr"] for g in opt.param_groups}
    sweep = lf.lr_range_test(model, opt, _batches(), "muon", steps=20)
    assert len(sweep.losses) == 20 and sweep.multipliers[0] == pytest.approx(0.01)
    assert sweep.multipliers[-1] == pytest.approx(100.0)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert {g["name"]: g["lr"] for g in opt.param_groups} == opt_before and not opt.state


def test_range_test_stops_on_divergence():
    model, opt = _model_and_optimizer()
    sweep = lf.lr_range_test(model, opt, _batches(), "adamw", start=1.0, end=1e6, steps=40, diverge=1.5)
    assert len(sweep.losses) < 40 and sweep.stopped.startswith("diverged")


def test_range_test_errors_are_clear():
    model, opt = _model_and_optimizer()
    with pytest.raises(Exception, match="start < end"):
        lf.lr_range_test(model, opt, _batches(), "muon", start=10, end=1)
    with pytest.raises(Exception, match="--group"):
        lf.lr_range_test(model, opt, _batches(), "sgd")


def test_cli_text_png_and_json(tiny_args, tmp_path, capsys):
    png = tmp_path / "lr.png"
    assert lf.main([*tiny_args, "--steps", "20", "--png", str(png)]) == 0
    captured = capsys.readouterr()
    text = captured.out
    assert "muon sweep:" in captured.err and "adamw sweep:" in captured.err      # progress bars, on stderr
    for needle in ("muon groups", "adamw groups", "valley", "matrix_lr =", "embedding_lr =",
                   "(d_model/768)^-0.5", f"wrote {png}"):
        assert needle in text, needle
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert lf.main([*tiny_args, "--steps", "12", "--group", "muon", "--json", "--no-progress"]) == 0
    captured = capsys.readouterr()
    assert "sweep:" not in captured.err
    report = json.loads(captured.out.strip().splitlines()[-1])
    assert [s["kind"] for s in report["sweeps"]] == ["muon"] and len(report["sweeps"][0]["losses"]) == 12


def test_cli_help_and_errors(tiny_args):
    proc = subprocess.run([sys.executable, str(ROOT / "tools" / "lr_finder.py"), "--help"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "--group" in proc.stdout and "examples" in proc.stdout
    proc = subprocess.run([sys.executable, str(ROOT / "tools" / "lr_finder.py"), *tiny_args, "--png", "x.jpg"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "must end in .png" in proc.stderr
