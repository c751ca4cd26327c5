"""Smoke test for the inference benchmark: ``bench_inference.py --quick`` runs and reports sanely.

It runs the script in a subprocess on its tiny configuration (depth 2, width 128, vocab 512;
contexts 32 and 64, batches 1 and 4, 4 decode steps) and checks the contract of its output,
not the speeds: the last line of stdout is a JSON object with the keys the issue names; every
speed and the measured bandwidth are positive; the targets are not evaluated on the tiny
configuration; the peer's column is filled when llms-from-scratch is installed and says
"not installed" when it is hidden.

Run: ``python -m pytest tests/test_bench_inference_smoke.py -q`` (marked ``slow``).
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_bench_model_smoke import _peer_installed

REPO_ROOT = Path(__file__).resolve().parents[1]
SCRIPT = REPO_ROOT / "tests" / "benchmarks" / "bench_inference.py"
REQUIRED = ("decode_tok_s_b1", "decode_tok_s_b8", "mbu_b1", "speedup_vs_nocache_512", "ratio_vs_peer_b1",
            "turn5_ttft_ratio", "bandwidth_bytes_s", "targets_met", "results", "hardware", "load_avg_start")


@pytest.mark.slow
def test_bench_inference_quick():
    proc = subprocess.run([sys.executable, str(SCRIPT), "--quick"], cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert not [k for k in REQUIRED if k not in result]
    assert "| context | batch |" in proc.stdout and result["quick"] is True and result["dtype"] == "float32"
    assert result["bandwidth_bytes_s"] > 0 and result["decode_tok_s_b1"] > 0 and result["mbu_b1"] > 0
    assert result["speedup_vs_nocache_512"] > 0 and 0 < result["turn5_ttft_ratio"]
    assert result["targets_met"]["all"] is None
    (quick,) = result["results"]
    assert [(c["context"], c["batch"]) for c in quick["decode"]] == [(32, 1), (32, 4), (64, 1), (64, 4)]
    assert quick["session"]["prefilled_tokens"] < quick["session"]["conversation_tokens"]
    if _peer_installed():
        assert result["ratio_vs_peer_b1"] > 0 and abs(quick["peer_matmul_bytes"] / quick["matmul_bytes"] - 1) < 0.01
        assert "fails at decode" in result["gpt2_peer"] or result["gpt2_peer"] == "ok"


@pytest.mark.slow
def test_bench_inference_without_the_peer():
    code = ("import runpy, sys; sys.modules['llms_from_scratch'] = None; "
            f"sys.argv = [{str(SCRIPT)!r}, '--quick', '--steps', '2']; runpy.run_path({str(SCRIPT)!r}, run_name='__main__')")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["peer"] == "not installed" and result["ratio_vs_peer_b1"] is None
    assert result["decode_tok_s_b1"] > 0
