"""tests/gpu/smoke.py, the GPU smoke run of the whole pipeline: it refuses without CUDA, its CPU dry
mode runs every stage (tokenizer, torchrun pretraining, base eval, SFT, RL, engine, server) and
writes the JSON of figures, and on a CUDA machine the real run finishes within its 5 minutes."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SMOKE = REPO / "tests" / "gpu" / "smoke.py"
STAGES = {"tokenizer train", "pretrain", "eval base", "sft", "rl", "serve"}


def _run(*args: str, timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SMOKE), *args], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout)


def _check(figures: dict) -> None:
    assert set(figures["stages_s"]) == STAGES
    assert figures["pretrain"]["steps"] > 0 and figures["pretrain"]["tok_per_s"] > 0
    assert 0 < figures["pretrain"]["mfu"] < 1
    for key in ("decode_tok_s_b1", "decode_tok_s_b8", "mbu_b1", "mbu_b8", "bandwidth_GBps"):
        assert figures["decode"][key] > 0, key
    assert figures["server"]["completion_tokens"] > 0 and figures["server"]["chat_latency_s"] > 0


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA: nothing to refuse")
def test_refuses_without_cuda(tmp_path):
    done = _run("--out", str(tmp_path / "x.json"), timeout=120)
    assert done.returncode == 2 and done.stderr.startswith("error: no CUDA device") and "--device cpu" in done.stderr
    assert "Traceback" not in done.stderr and not (tmp_path / "x.json").exists()
    guide = (REPO / "docs" / "start" / "cpu-to-8xh100.md").read_text(encoding="utf-8")
    assert f"$ python tests/gpu/smoke.py\n{done.stderr}```" in guide    # the guide shows this very refusal


@pytest.mark.slow
def test_cpu_dry_run_exercises_every_stage(tmp_path):
    """About 3 minutes on 2 loaded cores (most of it building the embedded corpus)."""
    out = tmp_path / "figures.json"
    done = _run("--device", "cpu", "--out", str(out), timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    figures = json.loads(out.read_text())
    assert json.loads(done.stdout.strip().splitlines()[-1]) == figures     # the last line is the JSON
    assert figures["device"] == "cpu" and figures["backend"] == "gloo" and figures["compile"] is False
    _check(figures)


@pytest.mark.gpu
@pytest.mark.slow
def test_gpu_smoke_within_five_minutes(tmp_path):
    out = tmp_path / "figures.json"
    done = _run("--out", str(out), timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    figures = json.loads(out.read_text())
    assert figures["backend"] == "nccl" and figures["compile"] is True
    _check(figures)
    assert figures["total_s"] < 300
