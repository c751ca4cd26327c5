"""The mini-nanochat command line: help, clear errors, and the Phase 0 commands end to end."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from mini_nanochat.cli import main


def run_cli(*args, env=None, input=None):
    return subprocess.run([sys.executable, "-m", "mini_nanochat", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, input=input, timeout=600)


@pytest.mark.parametrize("argv", [[], ["demo"], ["data"], ["data", "embedded"], ["tokenizer"],
                                  ["tokenizer", "train"], ["tokenizer", "encode"], ["tokenizer", "eval"],
                                  ["pretrain"]])
def test_every_command_has_help(argv, capsys):
    with pytest.raises(SystemExit) as e:
        main([*argv, "--help"])
    assert e.value.code == 0
    assert "usage: mini-nanochat" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["tokenizer", "train", "--vocab-size", "-5"], "expected a positive number"),
    (["tokenizer", "train", "--vocab-size", "lots"], "expected a whole number"),
    (["tokenizer", "frobnicate"], "invalid choice"),
    ([], "required"),
])
def test_bad_arguments_are_clear_errors(argv, message, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_user_mistakes_never_show_a_traceback(tmp_path):
    r = run_cli("tokenizer", "encode", "hi", "--tokenizer", str(tmp_path / "nowhere"))
    assert r.returncode == 2
    assert r.stderr.startswith("error: no tokenizer at") and "Traceback" not in r.stderr
    r = run_cli("tokenizer", "train", "--data", str(tmp_path), "--vocab-size", "300")
    assert r.returncode == 2 and "error:" in r.stderr and "Traceback" not in r.stderr
    r = run_cli("tokenizer", "train", "--data", str(tmp_path), "--vocab-size", "100")
    assert r.returncode == 2 and "Traceback" not in r.stderr


def test_phase0_commands_end_to_end(tiny_corpus, tmp_path):
    tok_dir = tmp_path / "tok"
    r = run_cli("--no-progress", "tokenizer", "train", "--data", str(tiny_corpus.out_dir),
                "--vocab-size", "400", "--out", str(tok_dir))
    assert r.returncode == 0, r.stderr
    assert "trained 135 merges (vocab 400)" in r.stdout
    info = json.loads((tok_dir / "train_info.json").read_text())
    assert info["vocab_size"] == 400 and info["data_dir"] == str(tiny_corpus.out_dir.resolve())

    r = run_cli("tokenizer", "encode", "Hello world", "--tokenizer", str(tok_dir), "--ids-only")
    assert r.returncode == 0
    ids = [int(x) for x in r.stdout.split()]
    from phases.phase0_tokenizer.bpe import BPETokenizer
    assert BPETokenizer.load(tok_dir).decode(ids) == "Hello world"

    r = run_cli("tokenizer", "encode", "Hello world", "--tokenizer", str(tok_dir), env={"NO_COLOR": "1"})
    assert r.returncode == 0 and "\x1b[" not in r.stdout and "11 bytes" in r.stdout

    r = run_cli("tokenizer", "eval", "--tokenizer", str(tok_dir))
    assert r.returncode == 0, r.stderr
    for genre in ("prose", "code", "math", "non-English", "validation shard"):
        assert genre in r.stdout
    if _has("rustbpe"):  # same rule, same data: identical token counts
        assert "rustbpe trained on the same texts" in r.stdout
        assert r.stdout.count("+0.00% tokens") == 5


def test_data_embedded_reports_shards(tiny_corpus, tmp_path, capsys):
    # Reusing an up-to-date corpus is a no-op that still prints the report.
    from phases.phase0_tokenizer.corpus import format_report
    assert "shard_00000.parquet" in format_report(tiny_corpus)


@pytest.mark.slow
def test_demo_runs_end_to_end(tmp_path):
    """What `make demo` runs, every stage: the full corpus, a vocab-8192 tokenizer and its evaluation,
    the demo GPT's pretraining (a 20-step look here: the full run's budget is measured and stated in
    the README), its evaluation, SFT, RL, the chat evaluation and a few exchanges; a second run
    reuses every stage."""
    env = {"MINI_NANOCHAT_BASE_DIR": os.environ.get("MINI_NANOCHAT_BASE_DIR") or str(tmp_path)}
    r = run_cli("--no-progress", "demo", "--iterations", "20", env=env)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    for stage in ("data", "tokenizer", "pretrain", "base_eval", "sft", "rl", "chat_eval", "chat"):
        assert re.search(rf"^-- {stage}: (done|reused) in \d+ s: ", r.stdout, re.M), stage
    for shown in ("== 8/8 a few exchanges with the chat model", "validation shard", "you> Lena has 47 apples and buys 38 more.",
                  "mini-nanochat chat --run cpu_rl_20steps", "mini-nanochat serve --run cpu_rl_20steps"):
        assert shown in r.stdout, shown
    card = Path(env["MINI_NANOCHAT_BASE_DIR"]) / "pipelines" / "cpu_demo_20steps" / "report.md"
    assert "## A few exchanges" in card.read_text()
    r = run_cli("--no-progress", "demo", "--iterations", "20", env=env)   # a second run reuses everything
    assert r.returncode == 0, r.stderr[-2000:]
    for stage in ("tokenizer", "pretrain", "base_eval", "sft", "rl", "chat_eval"):
        assert re.search(rf"^-- {stage}: reused in \d+ s: ", r.stdout, re.M), stage


def _has(module: str) -> bool:
    import importlib.util
    return importlib.util.find_spec(module) is not None


def test_pretrain_trains_with_muon_on_the_packed_loader_and_resumes(tiny_tokenized, tmp_path):
    """`mini-nanochat pretrain`: Phase 3's MuonAdamW and plan, Phase 5's loader, --resume continues."""
    cfg = tmp_path / "tiny.toml"
    cfg.write_text("\n".join([
        "depth = 2", "aspect_ratio = 32", "head_dim = 32", "sequence_len = 32", "device_batch_size = 4",
        "total_batch_size = 256", "warmup_steps = 1", "eval_every = 0", "eval_tokens = 1024", "save_every = 3",
        "sample_tokens = 2", f"data_dir = {json.dumps(tiny_tokenized['data_dir'])}",
        f"tokenizer_dir = {json.dumps(tiny_tokenized['tokenizer_dir'])}", f"run_dir = {json.dumps(str(tmp_path / 'run'))}"]))
    r = run_cli("--no-progress", "pretrain", "--config", str(cfg), "--num-iterations", "3")
    assert r.returncode == 0, r.stderr
    assert "optimizer: muon (MuonAdamW)" in r.stdout and "2 accumulation" in r.stdout
    assert "done: step 3" in r.stdout
    r = run_cli("--no-progress", "pretrain", "--config", str(cfg), "--num-iterations", "3")
    assert r.returncode == 2 and "pass --resume" in r.stderr          # never overwrites a run by accident
    r = run_cli("--no-progress", "pretrain", "--config", str(cfg), "--num-iterations", "5", "--resume")
    assert r.returncode == 0, r.stderr
    assert "resuming from" in r.stdout and "done: step 5" in r.stdout
    meta = json.loads((tmp_path / "run" / "checkpoints" / "step_000005" / "meta.json").read_text())
    assert meta["train_config"]["optimizer"] == "muon" and "buffer" in json.dumps(meta["data_state"])


@pytest.mark.distributed
def test_torchrun_pretrain_two_ranks_saves_and_resumes_per_rank_loader_state(tiny_tokenized, tmp_path):
    """`torchrun --nproc_per_node=2 -m mini_nanochat pretrain`: two gloo ranks on the packed loader;
    each rank's loader state is saved, so the same two ranks resume exactly where they were, and
    one rank resuming a two-rank run of the packed loader is a clear error, not a hang."""
    import pyarrow.parquet as pq
    data = tmp_path / "data"                 # the tiny corpus with row groups of 8 documents: ranks
    data.mkdir()                             # take whole row groups, so each needs several
    for shard in sorted(Path(tiny_tokenized["data_dir"]).glob("*.parquet")):
        pq.write_table(pq.read_table(shard), data / shard.name, row_group_size=8)
    cfg = tmp_path / "tiny.toml"
    cfg.write_text("\n".join([
        "depth = 2", "aspect_ratio = 32", "head_dim = 32", "sequence_len = 32", "device_batch_size = 2",
        "total_batch_size = 128", "warmup_steps = 1", "eval_every = 0", "eval_tokens = 512", "save_every = 2",
        "sample_tokens = 2", "tokenizer_threads = 1", "dist_timeout = 60", f"data_dir = {json.dumps(str(data))}",
        f"tokenizer_dir = {json.dumps(tiny_tokenized['tokenizer_dir'])}", f"run_dir = {json.dumps(str(tmp_path / 'run'))}"]))

    def torchrun(nproc, *args):
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
               "-m", "mini_nanochat", "--no-progress", "pretrain", "--config", str(cfg), *args]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=300,
                              env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore::FutureWarning"})

    r = torchrun(2, "--num-iterations", "2")
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.count("done: step 2") == 1                        # rank 0 alone reports
    meta = json.loads((tmp_path / "run" / "checkpoints" / "step_000002" / "meta.json").read_text())
    states = meta["data_state"]["per_rank"]
    assert [s["rank"] for s in states] == [0, 1] and states[0] != states[1]
    r = torchrun(2, "--num-iterations", "4", "--resume")
    assert r.returncode == 0, r.stderr[-2000:]
    assert "done: step 4" in r.stdout
    r = run_cli("--no-progress", "pretrain", "--config", str(cfg), "--num-iterations", "6", "--resume")
    assert r.returncode == 2 and "resume with the same number of ranks" in r.stderr



@pytest.mark.parametrize("argv", [["generate", "--run", "r", "hello"], ["eval", "base", "--run", "r"],
                                  ["eval", "chat", "--run", "r"], ["chat", "--run", "r"], ["serve", "--run", "r"]],
                         ids=lambda a: " ".join(a[:2]))
def test_a_commands_own_run_option_never_hides_its_entry_point(argv):
    """These commands take ``--run RUN``; the CLI's dispatch must not share that name (it did:
    ``eval base --run cpu_demo`` called the string 'cpu_demo', a TypeError traceback)."""
    from mini_nanochat.cli import build_parser
    args = build_parser().parse_args(argv)
    assert args.run == "r" and callable(args.command_run)
    assert args.command_run.__module__.startswith("phases.")


def test_ctrl_c_in_the_demo_says_how_to_continue(tmp_path, monkeypatch, capsys):
    """Issue 14 #10: not just 'interrupted': the command that resumes the run, and what it resumes."""
    from mini_nanochat.pipeline import DEMO_PIPELINE, PipelineConfig, run_pipeline
    from phases.phase5_data import pretrain as p5

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setenv("MINI_NANOCHAT_BASE_DIR", str(tmp_path))
    monkeypatch.setattr(p5, "pretrain", interrupted)
    monkeypatch.setattr("sys.argv", ["mini-nanochat", "demo", "--iterations", "7"])
    with pytest.raises(KeyboardInterrupt):
        run_pipeline(PipelineConfig(DEMO_PIPELINE, {"pretrain": {"num_iterations": 7}}, suffix="_7steps"),
                     ["pretrain"], show_progress=False)
    out = capsys.readouterr().out
    assert f"to continue: MINI_NANOCHAT_BASE_DIR={tmp_path} mini-nanochat demo --iterations 7" in out
    assert f"(it resumes {tmp_path / 'runs' / 'cpu_demo_7steps'} from its last checkpoint)" in out