"""Smoke test for the data benchmark: ``bench_data.py --quick`` runs and reports sanely.

It checks the contract of the output, not the speeds of this machine: the last stdout line
is a JSON object with the required keys, the speeds are positive, best-fit rows are full
and BOS-aligned, padding wastes positions, concatenation crops nothing, and best-fit crops
less than greedy. It runs on the shared tiny corpus (tests/conftest.py). About ten seconds
on 2 cores.

Run: ``python -m pytest tests/test_bench_data_smoke.py -q`` (it is marked ``slow``).
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SCRIPT = REPO_ROOT / "tests" / "benchmarks" / "bench_data.py"
REQUIRED = ("loader_tok_per_s", "loader_tok_per_s_1thread", "train_tok_per_s", "ratio", "crop_fraction_2048",
            "packing", "hardware", "torch", "target_met")


@pytest.mark.slow
@pytest.mark.phase5
def test_bench_data_quick(tmp_path, tiny_corpus) -> None:
    env = {"PATH": "/usr/bin:/bin", "MINI_NANOCHAT_BASE_DIR": str(tmp_path)}
    proc = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--data", str(tiny_corpus.out_dir)],
                          cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-4000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert not [k for k in REQUIRED if k not in result]
    assert "| T | strategy |" in proc.stdout and result["quick"] is True
    assert result["loader_tok_per_s"] > 0 and result["train_tok_per_s"] > 0
    table = {(r["T"], r["strategy"]): r for r in result["packing"]}
    assert len(table) == 8
    for T in (512, 2048):
        best, greedy = table[T, "best_fit"], table[T, "greedy"]
        assert best["utilisation"] == 1.0 and best["bos_aligned"] == 1.0
        assert best["crop_fraction"] < greedy["crop_fraction"]
        assert table[T, "padding"]["utilisation"] < 1.0 and table[T, "concat"]["crop_fraction"] == 0.0
    assert result["crop_fraction_2048"] == table[2048, "best_fit"]["crop_fraction"]
