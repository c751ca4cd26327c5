"""Smoke test for the SFT/RL benchmark: ``bench_sft.py --quick`` runs and reports sanely.

It checks the contract of the output, not what a tiny model learns in a few steps: the last
stdout line is a JSON object with the required keys, accuracies are fractions, best-fit rows
use their tokens at least as well as greedy ones, the speeds are positive. About a minute on
2 cores (a tiny corpus, tokenizer and base model are built first).

Run: ``python -m pytest tests/test_bench_sft_smoke.py -q`` (it is marked ``slow``).
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SCRIPT = REPO_ROOT / "tests" / "benchmarks" / "bench_sft.py"
REQUIRED = ("acc_base", "acc_sft", "acc_rl", "row_utilisation", "row_utilisation_greedy", "dropped_share",
            "rl_gain", "pass_at", "sft_tok_per_s", "pretrain_tok_per_s", "tok_per_s_ratio", "sft_seconds",
            "rl_seconds", "targets_met", "load_average", "hardware", "torch")


@pytest.mark.slow
@pytest.mark.phase8
def test_bench_sft_quick(tmp_path) -> None:
    env = {"PATH": "/usr/bin:/bin", "MINI_NANOCHAT_BASE_DIR": str(tmp_path), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--out", str(tmp_path / "runs")], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=900, env=env)
    assert proc.returncode == 0, proc.stderr[-4000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert not [k for k in REQUIRED if k not in result]
    assert result["quick"] is True and "| base (prompted the same way) |" in proc.stdout
    for key in ("acc_base", "acc_sft", "acc_rl", "row_utilisation", "dropped_share"):
        assert 0.0 <= result[key] <= 1.0
    assert result["row_utilisation"] >= result["row_utilisation_greedy"] > 0
    assert result["sft_tok_per_s"] > 0 and result["pretrain_tok_per_s"] > 0
    assert len(result["acc_rl_per_seed"]) == len(result["sft_seconds"]) == 1
