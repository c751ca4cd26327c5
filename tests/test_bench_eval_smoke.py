"""Smoke test for the evaluation benchmark: ``bench_eval.py --quick`` runs and reports sanely.

It checks the contract of the output, not this machine's speeds: the last stdout line is a
JSON object with the required keys, every speed is positive, batched and one-at-a-time
scoring agree item for item, batched generation writes the same completions, and the
sandbox ran its programs. Tens of seconds on 2 cores (it trains a vocab-512 tokenizer).

Run: ``python -m pytest tests/test_bench_eval_smoke.py -q`` (it is marked ``slow``).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
SCRIPT = REPO_ROOT / "tests" / "benchmarks" / "bench_eval.py"
REQUIRED = ("icl_items_per_s", "icl_speedup_batched", "categorical_items_per_s", "gen_problems_per_s",
            "gen_speedup_batched", "sandbox_ms", "bare_subprocess_ms", "target_met", "hardware", "threads")


@pytest.mark.slow
@pytest.mark.phase7
def test_bench_eval_quick(tmp_path, tiny_corpus) -> None:
    env = {"PATH": "/usr/bin:/bin", "MINI_NANOCHAT_BASE_DIR": str(tmp_path), "OMP_NUM_THREADS": "1",
           **({"PYTHONPATH": os.environ["PYTHONPATH"]} if "PYTHONPATH" in os.environ else {})}
    proc = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--threads", "1", "--data",
                           str(tiny_corpus.out_dir)], cwd=REPO_ROOT, capture_output=True, text=True, timeout=900,
                          env=env)
    assert proc.returncode == 0, proc.stderr[-4000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert not [k for k in REQUIRED if k not in result]
    assert "| **in-context, all" in proc.stdout and result["quick"] is True
    for key in ("icl_items_per_s", "categorical_items_per_s", "gen_problems_per_s", "sandbox_ms"):
        assert result[key] > 0
    assert result["icl_same_results"] and result["gen_same_outputs"] and result["sandbox_passed"]
    # the batched path never does more matmul work than nanochat's (shared stems, scored positions)
    assert result["icl_work_ratio"] >= 1 and all(t["work_ratio"] >= 1 for t in result["icl_tasks"])
    assert (result["device"], result["dtype"], result["batch_tokens"]) == ("cpu", "float32", 2048)


@pytest.mark.phase7
@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_bench_eval_without_cuda_says_so_in_one_line() -> None:
    proc = subprocess.run([sys.executable, str(SCRIPT), "--device", "cuda"], cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip() == "error: device 'cuda' asked for, but CUDA is not available"
