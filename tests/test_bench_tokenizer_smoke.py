"""Smoke test for the tokenizer benchmark: ``bench_tokenizer.py --quick`` runs and reports sanely.

The default embedded corpus takes about a minute to build, so this test builds a tiny one
(a few stdlib modules, ~0.8 MB, about two seconds) in ``tmp_path`` with corpus.py's own
options and points the benchmark at it with ``--data``. It checks the contract of the
benchmark's output, not the speeds: the last line of stdout is a JSON object with the
required keys, the times are positive, bytes/token is above 1, and (when rustbpe is
installed) ours and rustbpe learned identical merges.

Run: ``python -m pytest tests/test_bench_tokenizer_smoke.py -q`` (it is marked ``slow``).
"""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SCRIPT = REPO_ROOT / "tests" / "benchmarks" / "bench_tokenizer.py"

# Enough text for vocab 2048 (~0.7 MB of train shards, ~0.16 MB validation).
TINY_CORPUS = dict(
    packages=[],
    stdlib_modules=("email", "json", "logging", "argparse", "collections", "textwrap", "string",
                    "asyncio", "concurrent", "http", "xml", "unittest", "multiprocessing"),
    include_topics=True, shard_chars=200_000, show_progress=False,
)

REQUIRED = ("train_s", "rustbpe_s", "ratio_vs_rustbpe", "bytes_per_token", "hf_s",
            "naive_slice_s", "ours_slice_s", "encode_mb_s", "identical_merges",
            "hardware", "corpus_mb", "targets_met")


def _installed(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


@pytest.mark.slow
def test_bench_tokenizer_quick(tmp_path: Path) -> None:
    from phases.phase0_tokenizer.corpus import build_embedded_corpus

    data = build_embedded_corpus(tmp_path / "corpus", **TINY_CORPUS).out_dir
    env = {**os.environ, "MINI_NANOCHAT_BASE_DIR": str(tmp_path / "base")}
    proc = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--data", str(data)],
                          cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    lines = proc.stdout.strip().splitlines()
    assert lines, "the benchmark printed nothing on stdout"
    result = json.loads(lines[-1])
    assert "| vocab" in proc.stdout  # the markdown tables came before the JSON

    missing = [k for k in REQUIRED if k not in result]
    assert not missing, f"missing keys: {missing}"
    assert result["quick"] is True and result["vocab_size"] == 2048
    assert result["train_s"] > 0 and result["train_s_1024"] > 0
    assert result["naive_slice_s"] > 0 and result["ours_slice_s"] > 0
    assert result["naive_same_merges"] is True
    assert result["corpus_mb"] > 0.1 and result["corpus_docs"] > 0
    assert result["bytes_per_token"]["ours"] > 1
    assert result["bytes_per_token_1024"]["ours"] > 1
    assert result["encode_mb_s"]["python"] > 0
    assert isinstance(result["hardware"]["cores"], int) and result["hardware"]["cpu"]
    assert set(result["targets_met"]) >= {"train_within_6x", "compression_within_1pct", "all"}

    if _installed("tiktoken"):
        assert result["encode_mb_s"]["ours_fast"] > 0
        assert result["encode_ids_identical"] is True
    if _installed("rustbpe"):
        assert result["rustbpe_s"] > 0 and result["ratio_vs_rustbpe"] > 0
        assert result["identical_merges"] is True
        assert result["bytes_per_token"]["rustbpe"] > 1
        assert result["encode_mb_s"]["rustbpe"] > 0
        # identical merges => identical compression
        assert abs(result["bytes_per_token"]["ours"] - result["bytes_per_token"]["rustbpe"]) < 1e-9
        assert result["targets_met"]["compression_within_1pct"] is True
    else:
        assert result["rustbpe_s"] is None and "not installed" in proc.stdout
    if _installed("tokenizers"):
        assert result["hf_s"] > 0 and result["bytes_per_token"]["hf"] > 1
        assert result["encode_mb_s"]["hf_batch"] > 0
