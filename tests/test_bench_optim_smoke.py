"""Smoke test for the optimizer benchmark: ``bench_optim.py --quick`` runs and reports sanely.

It runs the script in a subprocess on its tiny configuration (depth 2, width 64, T=32,
vocab 512 on a corpus it builds itself, 8 steps per run, one thread) with two variants,
and checks the contract of its output, not the figures: a markdown table, then a last
line that is one JSON object with the required keys, finite bpb values, a positive
optimizer time smaller than the step time, and every run recorded. Also the ``--sweep``
mode: one LR per optimizer, a table and the best LR of each. And ``bench_newton_schulz.py``
on tiny matrices (seconds, not marked slow): which method ``auto`` picks, that the two
methods agree, and the multiply-add counts.

Run: ``python -m pytest tests/test_bench_optim_smoke.py -q`` (the training ones are marked ``slow``).
"""
from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SCRIPT = REPO_ROOT / "tests" / "benchmarks" / "bench_optim.py"
REQUIRED = ("bpb_adamw", "bpb_muon", "bpb_adamw_equal_time", "bpb_muon_equal_time", "optimizer_ms", "step_ms",
            "optimizer_share", "runs", "targets_met", "hardware", "torch", "settings")


def _bench(*args):
    proc = subprocess.run([sys.executable, str(SCRIPT), "--quick", *args], cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc.stdout, json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_bench_optim_quick():
    stdout, result = _bench("--variants", "adamw", "muon", "--seeds", "1", "2")
    assert "| variant | val bpb" in stdout
    assert [k for k in REQUIRED if k not in result] == []
    assert all(math.isfinite(result[k]) and result[k] > 0 for k in ("bpb_adamw", "bpb_muon", "optimizer_ms"))
    assert result["optimizer_ms"] < result["step_ms"]
    assert set(result["runs"]) == {"adamw", "muon"}
    assert result["runs"]["muon"]["equal_steps"]["steps"] == 8
    per_seed = result["runs"]["muon"]["equal_steps"]["per_seed_bpb"]
    assert set(per_seed) == {"1", "2"} and per_seed["1"] != per_seed["2"]      # the seed reaches the run
    assert result["bpb_muon"] == pytest.approx(sum(per_seed.values()) / 2)


@pytest.mark.slow
def test_bench_optim_sweep_quick():
    stdout, result = _bench("--sweep", "--muon-lrs", "0.02", "--adamw-lrs", "0.003")
    assert "| optimizer | LR key |" in stdout
    assert result["best"] == {"muon": 0.02, "adamw": 0.003}


def test_bench_newton_schulz_quick():
    script = REPO_ROOT / "tests" / "benchmarks" / "bench_newton_schulz.py"
    proc = subprocess.run([sys.executable, str(script), "--sizes", "quick", "--repeats", "1"], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert [r["auto"] for r in result["rows"]] == ["standard", "gram", "gram"]    # square, tall, wide
    assert all(r["rel_diff"] < 1e-4 and r["standard_ms"] > 0 and r["gram_ms"] > 0 for r in result["rows"])
    assert all(r["mmacs_gram"] < r["mmacs_standard"] for r in result["rows"][1:])
    assert "| size | stack" in proc.stdout
