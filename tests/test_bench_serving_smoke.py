"""Smoke test for the serving benchmark: ``bench_serving.py --quick`` runs and reports sanely.

It checks the output's contract, not this machine's speed: the last stdout line is one
JSON object with the keys the issue names, every level served its requests without an
error, throughput and latencies are positive, and the table is printed. Two server
processes with a tiny random model; about 15 seconds on 2 idle cores.

Run: ``python -m pytest tests/test_bench_serving_smoke.py -q`` (it is marked ``slow``).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SCRIPT = REPO_ROOT / "tests" / "benchmarks" / "bench_serving.py"
REQUIRED = ("tok_s_c1", "tok_s_c16", "batching_speedup_c16", "ttft_p99_c16_ms", "errors", "tpot_p50_c16_ms",
            "ttft_p50_c16_ms", "levels", "hardware", "load_avg_before", "targets_met",
            "chat_prompt_tokens", "chat_reused_tokens")


@pytest.mark.slow
@pytest.mark.phase9
def test_bench_serving_quick(tmp_path) -> None:
    pytest.importorskip("fastapi")
    env = {"PATH": "/usr/bin:/bin", "MINI_NANOCHAT_BASE_DIR": str(tmp_path), "HOME": str(tmp_path),
           "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    proc = subprocess.run([sys.executable, str(SCRIPT), "--quick"], cwd=REPO_ROOT, capture_output=True, text=True,
                          timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-4000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert not [k for k in REQUIRED if k not in result]
    assert result["quick"] is True and result["errors"] == 0
    assert "| batching | clients |" in proc.stdout
    for mode in ("on", "off"):
        for level in result["levels"][mode]:
            assert level["errors"] == 0 and level["tokens"] > 0 and level["tok_s"] > 0
            assert level["ttft_p50_ms"] > 0 and level["tpot_p50_ms"] > 0
    assert result["batching_speedup_c16"] > 0 and result["tok_s_c1"] > 0
    assert 0 < result["chat_reused_tokens"] < result["chat_prompt_tokens"]       # later turns hit the cache
