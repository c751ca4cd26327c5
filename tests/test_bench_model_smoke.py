"""Smoke test for the model benchmark: ``bench_model.py --quick --no-compile`` runs and reports sanely.

It runs the script in a subprocess on its tiny configuration (depth 2, width 128, T=64,
vocab 512), eager only, and checks the contract of its output, not the speeds: the last
line of stdout is a JSON object with the required keys; the eager figures, the measured
matmul peak and the FLOPs per token are positive; the compiled figures are null (compile
was switched off); the targets are not evaluated on the tiny configuration. When
llms-from-scratch is installed the peer's figures must be positive too, otherwise the
peer column must say "not installed"; a second run hides the package to check exactly
that. About ten seconds on 2 cores.

Also ``bench_softcap_loss.py`` on 64 x 256 logits (both modes; ours must equal the reference).

Run: ``python -m pytest tests/test_bench_model_smoke.py -q`` (it is marked ``slow``).
"""
from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SCRIPT = REPO_ROOT / "tests" / "benchmarks" / "bench_model.py"

REQUIRED = ("tok_per_s", "mfu", "peer_tok_per_s", "ratio_vs_peer", "mfu_demo",
            "tok_per_s_eager", "mfu_eager", "peer_tok_per_s_eager", "ratio_vs_peer_eager",
            "mfu_demo_eager", "peak_flops", "flops_per_token", "hardware", "torch", "dtype",
            "targets_met", "cells")


def _peer_installed() -> bool:
    try:
        return importlib.util.find_spec("llms_from_scratch") is not None
    except (ImportError, ValueError):
        return False


@pytest.mark.slow
def test_bench_model_quick() -> None:
    proc = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--no-compile"],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    lines = proc.stdout.strip().splitlines()
    assert lines, "the benchmark printed nothing on stdout"
    result = json.loads(lines[-1])
    assert "| config | model | mode |" in proc.stdout  # the markdown table came before the JSON

    missing = [k for k in REQUIRED if k not in result]
    assert not missing, f"missing keys: {missing}"
    assert result["quick"] is True and result["compile"] is False
    assert result["headline_config"] == "quick" and result["dtype"] == "float32"
    for key in ("tok_per_s_eager", "mfu_eager", "mfu_demo_eager", "peak_flops", "flops_per_token"):
        assert result[key] > 0, key
    assert result["mfu_eager"] < 1.5  # against a peak measured in the same run
    for key in ("tok_per_s", "mfu", "peer_tok_per_s", "ratio_vs_peer", "mfu_demo"):
        assert result[key] is None, f"{key} should be null without compile"
    assert result["targets_met"]["all"] is None  # not evaluated on the tiny config
    hw = result["hardware"]
    assert hw["cpu"] and isinstance(hw["threads"], int) and hw["threads"] > 0
    assert result["torch"]
    ours = [c for c in result["cells"] if c["model"] == "ours"]
    assert ours and all(c["status"] == "ok" and c["tok_per_s"] > 0 for c in ours)

    if _peer_installed():
        assert result["peer_tok_per_s_eager"] > 0 and result["ratio_vs_peer_eager"] > 0
        assert result["peer_flops_per_token"] > 0
        # same width, depth and vocabulary: the two accountings agree within the small gates
        assert abs(result["peer_flops_per_token"] / result["flops_per_token"] - 1) < 0.01
    else:
        assert result["peer_tok_per_s_eager"] is None and "not installed" in proc.stdout


@pytest.mark.slow
def test_bench_model_without_peer() -> None:
    """With llms_from_scratch unimportable the peer column says "not installed"; nothing crashes."""
    code = ("import runpy, sys; sys.modules['llms_from_scratch'] = None; "
            f"sys.argv = [{str(SCRIPT)!r}, '--quick', '--no-compile', '--steps', '1']; "
            f"runpy.run_path({str(SCRIPT)!r}, run_name='__main__')")
    proc = subprocess.run([sys.executable, "-c", code],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["peer"] == "not installed" and "not installed" in proc.stdout
    assert result["peer_tok_per_s_eager"] is None and result["ratio_vs_peer_eager"] is None
    assert result["tok_per_s_eager"] > 0


@pytest.mark.slow
def test_bench_softcap_loss_small():
    """The loss micro-benchmark on 64 x 256 logits: three losses x two modes, ours equal to the reference."""
    script = REPO_ROOT / "tests" / "benchmarks" / "bench_softcap_loss.py"
    proc = subprocess.run([sys.executable, str(script), "--rows", "64", "--vocab", "256", "--repeats", "1"],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    for mode in ("eager", "compiled"):
        assert all(result[f"{name}_{mode}_ms"] > 0 for name in ("reference", "fused", "no_softcap"))
        assert result[f"fused_{mode}_max_grad_diff"] < 1e-6 and result[f"fused_{mode}_loss_diff"] < 1e-5
    assert "speed-up" in proc.stdout
