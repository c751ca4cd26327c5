"""Smoke test for ``tests/benchmarks/bench_dtype.py``: both dtypes train, the report's last line is
one JSON object with the speedup and each run's figures (the contract, not the figures)."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_bench_dtype_tiny(tiny_tokenized, tmp_path):
    sets = [f"data_dir={tiny_tokenized['data_dir']}", f"tokenizer_dir={tiny_tokenized['tokenizer_dir']}", "depth=2",
            "aspect_ratio=32", "head_dim=32", "sequence_len=32", "device_batch_size=2", "total_batch_size=64",
            "eval_tokens=512", "warmup_steps=0"]
    env = {**os.environ, "MINI_NANOCHAT_BASE_DIR": str(tmp_path), "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "tests/benchmarks/bench_dtype.py", "--steps", "3",
                        *[a for s in sets for a in ("--set", s)]], cwd=REPO, env=env, capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["benchmark"] == "bench_dtype" and out["bf16_speedup"] > 0 and out["probe_choice"] in ("float32", "bfloat16")
    assert [x["dtype"] for x in out["runs"]] == ["float32", "bfloat16"]
    assert all(math.isfinite(x["val_bpb"]) and x["s_per_step"] > 0 for x in out["runs"])
    assert "ms/step" in r.stdout and "bf16 speedup" in r.stdout
