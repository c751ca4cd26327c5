"""Tests of tools/training_dashboard.py on real (tiny) Phase 2 runs.

Once per module: a small corpus (two stdlib modules), a vocab-512 tokenizer and two
seconds-long training runs (depth 2, 20 and 12 steps) under a temporary
``MINI_NANOCHAT_BASE_DIR``. Every number the dashboard shows is checked against the raw
``metrics.jsonl``. The tool is a script (``tools`` is not a package), so it is loaded by path.
"""
from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from _tools import load_tool

ROOT = Path(__file__).resolve().parent.parent
TOOL = ROOT / "tools" / "training_dashboard.py"


td = load_tool("training_dashboard")


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_tokenized):
    """Two finished runs, ``a`` (20 steps) and ``b`` (12 steps), under <base>/runs."""
    from phases.phase2_training.config import TrainConfig
    from phases.phase2_training.train import train
    root = tmp_path_factory.mktemp("dashboard")
    mp = pytest.MonkeyPatch()
    mp.setenv("MINI_NANOCHAT_BASE_DIR", str(root / "base"))
    common = dict(depth=2, aspect_ratio=32, head_dim=32, sequence_len=32, device_batch_size=4, warmup_steps=3,
                  warmdown_ratio=0.4, eval_every=5, eval_tokens=2048, save_every=10, sample_tokens=4,
                  peak_flops=1e11, data_dir=tiny_tokenized["data_dir"], tokenizer_dir=tiny_tokenized["tokenizer_dir"],
                  matrix_lr=0.01, embedding_lr=0.02, unembedding_lr=0.01)
    for name, n in (("a", 20), ("b", 12)):
        train(TrainConfig(num_iterations=n, run_name=name, **common), show_progress=False, out=io.StringIO())
    yield {"root": root, "a": root / "base" / "runs" / "a", "b": root / "base" / "runs" / "b"}
    mp.undo()


def records(run_dir, event):
    lines = (Path(run_dir) / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["event"] == event]


def cli(*args, env_extra=None):
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    env.update(env_extra or {})
    return subprocess.run([sys.executable, str(TOOL), *map(str, args)], capture_output=True, text=True,
                          timeout=60, env=env, cwd=ROOT)


def copy_run(src: Path, dst: Path, keep=lambda rec: True, checkpoints=True) -> Path:
    """A copy of a run whose log keeps only the records ``keep`` accepts."""
    dst.mkdir(parents=True)
    lines = [line for line in (src / "metrics.jsonl").read_text().splitlines() if keep(json.loads(line))]
    (dst / "metrics.jsonl").write_text("".join(line + "\n" for line in lines))
    if checkpoints:
        shutil.copytree(src / "checkpoints", dst / "checkpoints")
    return dst


def test_read_run_gets_every_step_and_eval(runs):
    run = td.read_run(runs["a"])
    assert [r["step"] for r in run.steps] == list(range(1, 21))
    assert [r["loss"] for r in run.steps] == [r["loss"] for r in records(runs["a"], "step")]
    assert run.evals == [(r["step"], r["val_bpb"]) for r in records(runs["a"], "eval")]
    assert [s for s, _ in run.evals] == [0, 5, 10, 15, 20]
    assert [s for s, _ in run.checkpoints] == [10, 20]
    assert run.planned == 20 and run.finished and run.name == "a"
    assert run.bad_lines == 0 and not run.cut_last_line
    # a metrics.jsonl path works as well as its folder
    assert td.read_run(runs["a"] / "metrics.jsonl").steps == run.steps


def test_summary_numbers_equal_the_log(runs):
    s = td.summarize(td.read_run(runs["a"]), last=5)
    evals, steps = records(runs["a"], "eval"), records(runs["a"], "step")
    best = min(evals, key=lambda r: r["val_bpb"])
    assert (s["best_val_bpb"], s["best_val_step"]) == (best["val_bpb"], best["step"])
    assert (s["last_val_bpb"], s["last_val_step"]) == (evals[-1]["val_bpb"], evals[-1]["step"])
    assert s["steps_done"] == s["steps_planned"] == 20 and s["finished"] and s["eta_s"] is None
    assert s["mean_tok_per_s"] == pytest.approx(sum(r["tok_per_s"] for r in steps[-5:]) / 5)
    assert s["mean_mfu"] == pytest.approx(sum(r["mfu"] for r in steps[-5:]) / 5)
    assert s["train_time_s"] == steps[-1]["train_time"]
    assert s["latest_checkpoint_step"] == 20
    # warmup 3 steps; warmdown = last round(0.4 * 20) = 8 updates, the first one logged at step 14
    sch = s["schedule"]
    assert (sch["warmup_end"], sch["warmdown_start"], sch["end"]) == (3, 13, 20) and "meta.json" in sch["source"]
    assert [r["lrm"] for r in steps if r["step"] > 13] == sorted([r["lrm"] for r in steps if r["step"] > 13],
                                                                  reverse=True)
    assert all(r["lrm"] == 1.0 for r in steps if 3 <= r["step"] <= 13)


def test_schedule_from_the_log_without_checkpoint(runs, tmp_path):
    run = td.read_run(copy_run(runs["a"], tmp_path / "nock", checkpoints=False))
    sch, ref = run.schedule(), td.read_run(runs["a"]).schedule()
    assert (sch["warmup_end"], sch["warmdown_start"]) == (ref["warmup_end"], ref["warmdown_start"])
    assert "lrm values" in sch["source"]
    assert run.planned is None and not run.finished
    s = td.summarize(run)
    assert s["eta_s"] is None and any("planned length is unknown" in n for n in s["notes"])


def test_eta_of_an_unfinished_run(runs, tmp_path):
    part = copy_run(runs["a"], tmp_path / "part", keep=lambda r: r["step"] <= 15)
    shutil.rmtree(part / "checkpoints" / "step_000020")
    run = td.read_run(part)
    assert run.last_step == 15 and run.planned == 20 and not run.finished
    s = td.summarize(run, last=4)
    dts = [r["dt"] for r in records(part, "step")][-4:]
    assert s["eta_s"] == pytest.approx(5 * sum(dts) / 4)
    assert s["latest_checkpoint_step"] == 10


def test_truncated_and_broken_lines_are_tolerated(runs, tmp_path):
    run_dir = copy_run(runs["a"], tmp_path / "cut")
    text = (run_dir / "metrics.jsonl").read_text()
    lines = text.splitlines(keepends=True)
    (run_dir / "metrics.jsonl").write_text("".join(lines[:5]) + "not json\n" + "".join(lines[5:])
                                           + '{"event": "step", "step": 21, "loss": 4.')
    run = td.read_run(run_dir)
    assert run.last_step == 20 and len(run.evals) == 5
    assert run.cut_last_line and run.bad_lines == 1
    r = cli(run_dir)
    assert r.returncode == 0 and "unfinished" in r.stdout and "1 unreadable line" in r.stdout


def test_text_summary_by_run_name(runs):
    r = cli("a", "b", "--last", "5")
    assert r.returncode == 0, r.stderr
    assert "steps          20 / 20 (finished)" in r.stdout and "steps          12 / 12 (finished)" in r.stdout
    best = min(records(runs["a"], "eval"), key=lambda e: e["val_bpb"])
    assert f"best {best['val_bpb']:.4f} at step {best['step']}" in r.stdout
    assert "\x1b[" not in r.stdout                                    # piped: no ANSI


def test_json_parses(runs):
    r = cli(runs["a"], runs["b"], "--json")
    data = json.loads(r.stdout)
    assert [d["name"] for d in data] == ["a", "b"]
    assert data[1]["steps_done"] == 12 and data[1]["evaluations"] == len(records(runs["b"], "eval"))


def test_png_single_and_overlay(runs, tmp_path):
    pytest.importorskip("matplotlib")
    r = cli("a", "--png")                                             # default: <run>/dashboard.png
    assert r.returncode == 0, r.stderr
    out = runs["a"] / "dashboard.png"
    assert f"wrote {out}" in r.stdout and "steps          20 / 20" in r.stdout
    r = cli("a", "b", "--png", tmp_path / "both.png", "--x", "tokens")
    assert r.returncode == 0, r.stderr
    for png in (out, tmp_path / "both.png"):
        data = png.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000
    # a run with no evaluation yet plots too
    early = copy_run(runs["a"], tmp_path / "early", keep=lambda r: r["event"] == "step" and r["step"] <= 4,
                     checkpoints=False)
    td.write_png([td.read_run(early), td.read_run(runs["b"])], tmp_path / "early.png", axis="time")
    assert (tmp_path / "early.png").read_bytes()[:4] == b"\x89PNG"


def test_png_without_matplotlib_is_a_clear_error(runs, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)              # `import matplotlib` now fails
    with pytest.raises(td.UserError, match=r"mini-nanochat\[tools\]"):
        td.write_png([td.read_run(runs["a"])], tmp_path / "x.png")


def test_follow_a_finished_run_exits_by_itself(runs):
    r = cli("a", "--follow", "--interval", "0.1", env_extra={"NO_COLOR": "1"})
    assert r.returncode == 0, r.stderr
    assert "step 20/20 (100%)  finished" in r.stdout and "smooth loss" in r.stdout
    assert "\x1b[" not in r.stdout


def test_follow_stops_cleanly_on_ctrl_c(runs, tmp_path, monkeypatch):
    part = copy_run(runs["a"], tmp_path / "part", keep=lambda r: r["step"] <= 15)

    def interrupt(_):
        raise KeyboardInterrupt
    monkeypatch.setattr(td.time, "sleep", interrupt)
    out = io.StringIO()
    td.follow([part / "metrics.jsonl"], ["part"], interval=1.0, last=20, color=False, out=out)
    text = out.getvalue()
    assert "step 15/20 (75%)  ETA" in text and "val bpb" in text and "stopped following" in text


def test_sparkline():
    line = td.sparkline([float(v) for v in range(100, 0, -1)], width=40)
    assert len(line) == 40 and line[0] in "█#" and line[-1] in "▁ "
    assert td.sparkline([]) == "" and len(td.sparkline([1.0, 2.0])) == 2


@pytest.mark.parametrize("args", [["no/such/run"], ["nonexistent_name"], ["a", "--png", "out.txt"]])
def test_bad_input_is_exit_2_with_error(runs, args):
    r = cli(*args)
    assert r.returncode == 2 and r.stderr.startswith("error:") and "Traceback" not in r.stderr
