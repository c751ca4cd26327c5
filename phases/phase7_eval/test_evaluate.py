"""Phase 7 checkpoint: the evaluation command end to end on a tiny trained run, on one rank and on two.

Runs ``python -m phases.phase7_eval.evaluate`` (and the same under torchrun with 2 gloo
ranks) as a user would, offline, and reads the report card it writes.
"""
from __future__ import annotations

import json

import pytest

from phases.phase7_eval.conftest import run_module

pytestmark = pytest.mark.phase7


def _olmo() -> bool:
    from phases.phase7_eval.offline import olmo_root
    return olmo_root() is not None


def _report(run_dir):
    return json.loads((run_dir / "report.json").read_text())


def _base_args(run_dir):
    args = ["base", str(run_dir), "--max-per-task", "6"]
    return args + (["--source", "corpus,offline", "--tasks", "corpus_repeat_word,copa,winogrande,lambada_openai"]
                   if _olmo() else ["--source", "corpus"])


def _numbers(stage: dict) -> dict:
    """Every score of a report section, by name."""
    out = {b["name"]: round(b["bpb"], 6) for b in stage.get("bpb", [])}
    out |= {t["name"]: (t["n"], t["correct"]) for s in stage.get("suites", []) for t in s["tasks"]}
    out |= {t["name"]: (t["n"], t["correct"], t.get("pass_at")) for t in stage.get("chat", [])}
    return out


def test_base_evaluation_writes_the_report_card(tiny_run):
    args = _base_args(tiny_run["run_dir"])
    proc = run_module(args[:1] + ["--run"] + args[1:], tiny_run["base"])
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = _report(tiny_run["run_dir"])
    base = report["stages"]["base"]
    val = next(b for b in base["bpb"] if b["name"] == "validation shard")
    assert val["bpb"] == pytest.approx(tiny_run["val_bpb"], rel=1e-9)       # the number training logged
    assert report["stages"]["train"]["step"] == 16
    md = (tiny_run["run_dir"] / "report.md").read_text()
    assert "| random |" in md and "python -m phases.phase7_eval.evaluate" in md and "corpus_repeat_word" in md
    if _olmo():
        assert "CORE-3 (subset: 3 of 22 tasks)" in md


@pytest.mark.parametrize("args, message", [
    (["base", "--run", "no_such_run"], "no run or checkpoint"),
    (["base", "--run", "RUN", "--max-per-task", "0"], "--max-per-task must be"),
    (["base", "--run", "RUN", "--source", "corpus", "--tasks", "nope"], "no task named nope"),
    (["chat", "--run", "RUN", "--tasks", "SQuAD"], "unknown chat task"),
    (["base", "--run", "RUN", "--tasks", ""], "--tasks is empty"),        # issue 15 re-attack: "" meant "all"
])
def test_mistakes_are_one_line_errors(tiny_run, args, message):
    args = [str(tiny_run["run_dir"]) if a == "RUN" else a for a in args]
    proc = run_module(args, tiny_run["base"])
    assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.distributed
@pytest.mark.slow
def test_two_gloo_ranks_equal_one(tiny_run, tmp_path):
    runs = {}
    for nproc in (0, 2):                       # 0: a plain process
        proc = run_module(_base_args(tiny_run["run_dir"]), tiny_run["base"], nproc=nproc)
        assert proc.returncode == 0, proc.stderr[-3000:]
        numbers = _numbers(_report(tiny_run["run_dir"])["stages"]["base"])
        if _olmo():
            proc = run_module(["chat", str(tiny_run["run_dir"]), "--tasks", "ARC-Easy,GSM8K",
                               "--max-per-task", "5", "--max-new-tokens", "8"], tiny_run["base"], nproc=nproc)
            assert proc.returncode == 0, proc.stderr[-3000:]
            numbers |= _numbers(_report(tiny_run["run_dir"])["stages"]["chat"])
        runs[nproc] = numbers
    assert runs[2] == runs[0]
    assert "torchrun --standalone --nproc_per_node=2" in (tiny_run["run_dir"] / "report.md").read_text() or \
        not _olmo()
