"""--impl swaps the module under test: a deliberately broken tokenizer fails the checkpoint."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
REFERENCE = REPO / "phases" / "phase0_tokenizer" / "bpe.py"
MERGES = REPO / "phases" / "phase0_tokenizer" / "merges.py"   # the reference's merge training
ENCODE_CHUNK = REPO / "phases" / "phase0_tokenizer" / "encode_chunk.py"   # the reference's merge rule
TOKENIZER_FILE = REPO / "phases" / "phase0_tokenizer" / "tokenizer_file.py"   # its save and load


def _pytest(*args, pythonpath: Path | None = None):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(pythonpath or ""), os.environ.get("PYTHONPATH", "")]))}
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
                          cwd=REPO, capture_output=True, text=True, timeout=600, env=env)


def _broken_copy(tmp_path, old: str, new: str, reference: Path = REFERENCE) -> Path:
    """The learner's tokenizer: a copy of bpe.py. When the sabotage is in a module it imports
    (``MERGES``: training; ``ENCODE_CHUNK``: the merge rule; ``TOKENIZER_FILE``: save and load), that module's copy goes beside it as
    ``my_<name>.py`` and the tokenizer imports the copy; tmp_path goes on PYTHONPATH."""
    source = reference.read_text()
    assert old in source, "the reference changed: update the sabotage in this test"
    path = tmp_path / "my_tokenizer.py"
    if reference != REFERENCE:
        (tmp_path / f"my_{reference.name}").write_text(source.replace(old, new, 1))
        path.write_text(REFERENCE.read_text().replace(f"from phases.phase0_tokenizer.{reference.stem} import",
                                                      f"from my_{reference.stem} import"))
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
    path = _broken_copy(tmp_path, "return bytes_to_text(self.decode_bytes(ids))",
                        'return self.decode_bytes(ids).decode("utf-8", "replace")')
    r = _pytest("phases/phase0_tokenizer/test_bpe.py", f"--impl={path}", "-q")
    assert r.returncode == 1
    assert "test_roundtrip_edge_cases" in r.stdout and "surrogate" in r.stdout


def test_a_missing_file_is_not_found_and_names_the_base_of_relative_paths(tmp_path):
    r = _pytest("phases/phase0_tokenizer", f"--impl={tmp_path / 'missing.py'}")
    assert r.returncode == 4 and f"{tmp_path / 'missing.py'} not found" in r.stderr
    r = _pytest("phases/phase0_tokenizer", "--impl=my_tokenizer_not_here.py")
    assert r.returncode == 4 and f"{REPO / 'my_tokenizer_not_here.py'} not found" in r.stderr
    assert f"a relative path is taken from the directory pytest runs in, {REPO}" in r.stderr
    (tmp_path / "notes.txt").write_text("x")
    r = _pytest("phases/phase0_tokenizer", f"--impl={tmp_path / 'notes.txt'}")
    assert r.returncode == 4 and "is not a Python file (.py)" in r.stderr


def test_an_unknown_name_fails_and_lists_every_phases_names(tmp_path):
    # The false green of issue 14: the tokenizer module is called bpe, not tokenizer.
    path = tmp_path / "my.py"
    path.write_text(REFERENCE.read_text())
    r = _pytest("phases/phase0_tokenizer", f"--impl=tokenizer={path}", "-k", "split_groups")
    assert r.returncode == 4, r.stdout[-2000:]
    assert "no module called 'tokenizer'" in r.stderr
    assert "phase0_tokenizer: bpe (main: --impl PATH), chat" in r.stderr
    assert "phase5_data: loader (main: --impl PATH), packing, stream, download" in r.stderr


def test_a_file_the_selected_tests_never_load_is_refused(tmp_path):
    path = tmp_path / "my_chat.py"
    path.write_text("")
    r = _pytest("phases/phase0_tokenizer", f"--impl=chat={path}", "-k", "split_groups")
    assert r.returncode == 4 and "none of the 1 selected tests loads chat" in r.stderr
    r = _pytest("tests/test_project.py", f"--impl={path}", "-k", "layout")     # no phase: nothing to replace
    assert r.returncode == 4 and "no main module" in r.stderr
    r = _pytest("phases/phase0_tokenizer", "phases/phase5_data", f"--impl={path}", "--collect-only")
    assert r.returncode == 4 and "a bare --impl PATH replaces one phase's main module" in r.stderr


def test_the_run_says_how_many_tests_load_the_file(tmp_path):
    path = tmp_path / "my_tokenizer.py"
    path.write_text(REFERENCE.read_text())
    r = _pytest("phases/phase0_tokenizer", f"--impl={path}", "-k", "split_groups or layout_and_manifest")
    assert r.returncode == 0, r.stdout[-2000:]
    assert f"--impl: {path} replaces phases.phase0_tokenizer.bpe in 1 of the 2 selected tests" in r.stdout


def test_import_errors_and_missing_names_name_the_learners_file(tmp_path):
    broken = tmp_path / "broken.py"
    broken.write_text("import regex\n\nSPLIT = regex.compile(r'(')\n")
    r = _pytest("phases/phase0_tokenizer/test_bpe.py", f"--impl={broken}", "-k", "split_groups")
    assert r.returncode == 1
    assert f"--impl {broken}: importing your file failed" in r.stdout and 'broken.py", line 3' in r.stdout
    assert "During handling" not in r.stdout
    empty = tmp_path / "empty.py"
    empty.write_text("")
    r = _pytest("phases/phase0_tokenizer/test_bpe.py", f"--impl={empty}", "-k", "split_groups")
    assert r.returncode == 1
    assert "empty.py (--impl " in r.stdout and "defines no 'BPETokenizer'" in r.stdout
    assert "phases.phase0_tokenizer.bpe defines it" in r.stdout


def test_a_fixture_name_or_a_near_miss_gets_a_did_you_mean(tmp_path):
    # Phase 1's tests take module `model` through the fixture `gpt`: a learner reading the
    # tests writes --impl gpt=...; a typo of a module's name gets the closest name.
    path = tmp_path / "my_model.py"
    path.write_text("")
    r = _pytest("phases/phase1_transformer/test_model.py", f"--impl=gpt={path}", "--collect-only")
    assert r.returncode == 4 and "Did you mean --impl model=...? ('gpt' is the fixture" in r.stderr, r.stderr
    r = _pytest("phases/phase5_data", f"--impl=loaders={path}", "--collect-only")
    assert r.returncode == 4 and "Did you mean --impl loader=...?" in r.stderr, r.stderr


def _sabotaged(tmp_path, reference: str, old: str, new: str, used_by: tuple[str, ...] = ()) -> Path:
    """A learner's copy of ``reference`` (a path in the repo), ``my_<name>.py``, with one deliberate slip.

    Each module of ``used_by`` (paths in the repo) is copied beside it as ``my_<name>.py``,
    importing the slipped copy instead of the reference (a learner's file holds both parts, e.g.
    Phase 1's model and its layers); run with tmp_path on PYTHONPATH.
    """
    source = (REPO / reference).read_text()
    assert old in source, "the reference changed: update the sabotage in this test"
    path = tmp_path / ("my_" + Path(reference).name)
    path.write_text(source.replace(old, new, 1))
    module = reference.removesuffix(".py").replace("/", ".")
    for user in used_by:
        text = (REPO / user).read_text()
        assert f"from {module} import" in text, f"{user} no longer imports {module}: update the sabotage"
        (tmp_path / ("my_" + Path(user).name)).write_text(text.replace(f"from {module} import",
                                                                       f"from {path.stem} import"))
    return path


def test_bpb_that_counts_ignored_targets_fails_step_4(tmp_path):
    # Found on the issue 14 walk: with the ignored target read as id 0 (0 bytes) the slip passed.
    path = _sabotaged(tmp_path, "phases/phase2_training/evaluate.py",
                      "nbytes = token_bytes[y.clamp(min=0)] * (y >= 0)", "nbytes = token_bytes[y.clamp(min=0)]")
    r = _pytest("phases/phase2_training/test_evaluate.py", f"--impl=evaluate={path}", "-k", "bpb")
    assert r.returncode == 1 and "test_bpb_by_hand" in r.stdout, r.stdout[-2000:]


@pytest.mark.slow
def test_a_loop_that_forgets_its_loop_state_fails_step_6(tmp_path):
    # Found on the issue 14 walk: weights, RNG and moments were compared, the EMA was not.
    path = _sabotaged(tmp_path, "phases/phase2_training/train.py",
                      '        loop.update(saved["loop_state"])\n', "        pass\n")
    r = _pytest("phases/phase2_training/test_train.py", f"--impl={path}", "-k", "resume and not sigkill")
    assert r.returncode == 1 and "restarted its EMA" in r.stdout, r.stdout[-2000:]
