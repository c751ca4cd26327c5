"""Smoke test for the DDP benchmark: ``bench_ddp.py --quick`` runs and reports sanely.

It runs the script in a subprocess on its tiny configuration (depth 2, width 64, T=32,
vocab 512, random tokens, 2 timed steps; 1 process, then 2 gloo ranks per strategy) and
checks the contract of its output, not the timings: the two markdown tables, a last line
that is one JSON object with the required keys, bytes counted through the hooks equal to
the analytic count, ZeRO holding less optimizer state per rank than DDP, and the
analytic table covering depths 4/12/24 x world sizes 1/2/8.

Run: ``python -m pytest tests/test_bench_ddp_smoke.py -q`` (marked ``slow`` and ``distributed``).
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SCRIPT = REPO_ROOT / "tests" / "benchmarks" / "bench_ddp.py"
REQUIRED = ("comm_bytes_ddp", "comm_bytes_zero", "state_bytes_per_rank_ddp", "state_bytes_per_rank_zero",
            "measured_matches_analytic", "step_s", "table", "settings", "torch")


@pytest.mark.slow
@pytest.mark.distributed
def test_bench_ddp_quick():
    proc = subprocess.run([sys.executable, str(SCRIPT), "--quick"], cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert "| depth | params | W |" in proc.stdout and "| run | accumulation |" in proc.stdout
    assert [k for k in REQUIRED if k not in result] == []
    assert result["measured_matches_analytic"] is True
    assert 0 < result["state_bytes_per_rank_zero"] < result["state_bytes_per_rank_ddp"]
    assert result["comm_bytes_ddp"] > 0 and result["comm_bytes_zero"] > 0
    assert {(r["depth"], r["world"]) for r in result["table"]} == {(d, w) for d in (4, 12, 24) for w in (1, 2, 8)}
    assert all(t > 0 for t in result["step_s"].values())
