"""Smoke test of tests/benchmarks/profile_decode.py: the quick config runs and its parts add up."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_profile_decode_quick():
    proc = subprocess.run([sys.executable, str(REPO / "tests/benchmarks/profile_decode.py"), "--config", "quick",
                           "--steps", "4", "--context", "16", "--batch", "2"], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["mm_ms"] > 0 and result["wall_ms"] > 0 and result["batch"] == 2 and result["mm_gflop_s"] > 0
    assert abs(result["mm_ms"] + result["attention_ms"] + result["other_ops_ms"] - result["operators_ms"]) < 1e-6
