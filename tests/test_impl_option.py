"""--impl swaps the module under test: a deliberately broken tokenizer fails the checkpoint."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
REFERENCE = REPO / "phases" / "phase0_tokenizer" / "bpe.py"
MERGES = REPO / "phases" / "phase0_tokenizer" / "merges.py"   # the reference's merge training


def _pytest(*args, pythonpath: Path | None = None):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(pythonpath or ""), os.environ.get("PYTHONPATH", "")]))}
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
                          cwd=REPO, capture_output=True, text=True, timeout=600, env=env)


def _broken_copy(tmp_path, old: str, new: str, reference: Path = REFERENCE) -> Path:
    """The learner's tokenizer: a copy of bpe.py, with its training in ``my_merges.py`` beside it
    (a copy of merges.py) when the sabotage is there; tmp_path goes on PYTHONPATH."""
    source = reference.read_text()
    assert old in source, "the reference changed: update the sabotage in this test"
    path = tmp_path / "my_tokenizer.py"
    if reference == MERGES:
        (tmp_path / "my_merges.py").write_text(source.replace(old, new, 1))
        path.write_text(REFERENCE.read_text().replace("from phases.phase0_tokenizer.merges import", "from my_merges import"))
    else:
        path.write_text(source.replace(old, new, 1))
    return path


def test_reference_copy_passes_through_impl(tmp_path):
    path = tmp_path / "my_tokenizer.py"
    path.write_text(REFERENCE.read_text())
    r = _pytest("phases/phase0_tokenizer/test_bpe.py", f"--impl={path}", "-k", "golden or roundtrip_edge")
    assert r.returncode == 0, r.stdout[-3000:]
    assert f"implementation under test: main={path}" in r.stdout


def test_broken_training_fails_the_checkpoint(tmp_path):
    # A plausible slip: 2-byte chunks are dropped from training, so some merges change.
    path = _broken_copy(tmp_path, "if len(ids) >= 2:", "if len(ids) >= 3:", reference=MERGES)
    r = _pytest("phases/phase0_tokenizer", f"--impl={path}", "-x", "-q", pythonpath=tmp_path)
    assert r.returncode == 1, r.stdout[-3000:]
    assert "failed" in r.stdout


def test_broken_decode_fails_the_checkpoint(tmp_path):
    path = _broken_copy(tmp_path, 'return data.decode("utf-8", "mini_nanochat.surrogates")',
                        'return data.decode("utf-8", "replace")')
    r = _pytest("phases/phase0_tokenizer/test_bpe.py", f"--impl={path}", "-q")
    assert r.returncode == 1
    assert "test_roundtrip_edge_cases" in r.stdout and "surrogate" in r.stdout


def test_impl_must_be_a_python_file(tmp_path):
    r = _pytest("phases/phase0_tokenizer", f"--impl={tmp_path / 'missing.py'}")
    assert r.returncode == 4 and "is not a .py file" in r.stderr
